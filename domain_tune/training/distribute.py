"""TensorFlow distribution strategies for ``train --distribute``.

* ``none``: the default strategy (one device).
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local GPUs, or
  over ``cpu_replicas`` logical CPU devices when asked (useful to test a
  multi-device set-up on a laptop).
* ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy``; the cluster
  and this process's role come from ``TF_CONFIG``.  Every worker runs the same
  command; only the chief writes the output directory.

``--batch-size`` is always the global batch, split across replicas.
"""

import json
import os

import tensorflow as tf

from domain_tune.errors import BadInputError

STRATEGIES = ("none", "mirrored", "multi-worker")


def configure_devices(cpu_replicas=None, memory_growth=True):
    """Device set-up that must happen before TensorFlow initialises its runtime."""
    try:
        if memory_growth:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        if cpu_replicas and cpu_replicas > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas
            )
    except RuntimeError as e:  # the runtime is already initialised (e.g. inside a notebook)
        if cpu_replicas and cpu_replicas > 1:
            raise BadInputError(
                f"--cpu-replicas {cpu_replicas}: TensorFlow devices are already initialised; "
                "set it in a fresh process"
            ) from e


def cluster_spec():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise BadInputError("--distribute multi-worker needs TF_CONFIG (cluster and task)")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, task_id = task["type"], int(task["index"])
        cluster[task_type][task_id]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise BadInputError(f"TF_CONFIG is not a valid cluster description ({e})") from e
    return cluster, task_type, task_id


def make_strategy(name="none", cpu_replicas=None):
    if name not in STRATEGIES:
        raise BadInputError(f"--distribute must be one of {', '.join(STRATEGIES)}")
    if name == "none" and cpu_replicas and cpu_replicas > 1:
        raise BadInputError(
            f"--cpu-replicas {cpu_replicas} needs --distribute mirrored (or multi-worker); "
            "without a strategy one replica trains"
        )
    if name == "multi-worker":
        cluster_spec()
        configure_devices(cpu_replicas)
        return tf.distribute.MultiWorkerMirroredStrategy()
    configure_devices(cpu_replicas)
    if name == "none":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices=devices)


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker cluster."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    cluster, task_type, task_id = cluster_spec()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


def shard_data(dataset):
    """Shard by element (the pairs are in memory, not in files)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
