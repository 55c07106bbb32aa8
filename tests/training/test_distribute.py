"""Mixed precision, MirroredStrategy on logical CPUs, and two loopback workers.

Device layout must be set before TensorFlow starts its runtime, so the
distributed runs are fresh ``domain-tune train`` processes.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import run

COMMON = ["--epochs", "3", "--learning-rate", "1e-3", "--patience", "10", "--no-sts", "--json",
          "--batch-size", "8", "--seed", "3"]


def _train(args, env_extra=None, background=False):
    env = dict(os.environ, **(env_extra or {}))
    cmd = [sys.executable, "-m", "domain_tune.cli", "train", *map(str, args)]
    if background:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.mark.parametrize("clipnorm, rtol", [(0, 1e-3), (1.0, 1e-3)])
def test_mirrored_on_two_cpus_matches_single_device(tmp_path, tiny_model_dir, pairs_csv,
                                                    clipnorm, rtol):
    args = [pairs_csv, "--model", tiny_model_dir, *COMMON, "--clipnorm", clipnorm]
    single = _train([*args, "--out", tmp_path / "one"])
    mirrored = _train([*args, "--out", tmp_path / "two", "--distribute", "mirrored",
                       "--cpu-replicas", "2"])
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    one = pd.read_csv(tmp_path / "one" / "history.csv")
    two = pd.read_csv(tmp_path / "two" / "history.csv")
    # Same global batches. Without clipping only the order of float sums differs; Keras clips
    # each replica's share of the gradient, so with --clipnorm the runs drift apart a little.
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=rtol)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=rtol)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_on_loopback(tmp_path, tiny_model_dir, pairs_csv):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(_train([pairs_csv, "--model", tiny_model_dir, "--out", out, *COMMON,
                             "--distribute", "multi-worker"],
                            {"TF_CONFIG": tf_config}, background=True))
    results = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-3000:]
    chief = json.loads(results[0][0])
    assert chief["replicas"] == 2 and chief["epochs_run"] == 3
    assert chief["validation"]["after"]["loss"] < chief["validation"]["before"]["loss"]
    # only the chief wrote the output directory
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run")) == ["run"]
    assert (out / "model.keras").exists()


def test_multi_worker_without_tf_config(tmp_path, pairs_csv, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = run("train", pairs_csv, "--out", tmp_path / "o", "--no-sts", "--distribute",
                 "multi-worker")
    assert result.exit_code == 2 and "needs TF_CONFIG" in result.stderr


def test_mixed_precision_trains_on_cpu(tmp_path, tiny_model_dir, pairs_csv):
    metrics = _train([pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / "mp", *COMMON,
                      "--mixed-precision", "bfloat16"])
    history = pd.read_csv(tmp_path / "mp" / "history.csv")
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert metrics["validation"]["after"]["loss"] < metrics["validation"]["before"]["loss"]


def test_mirrored_with_mini_batches_matches_full_batches(tmp_path, tiny_model_dir, pairs_csv):
    args = [pairs_csv, "--model", tiny_model_dir, *COMMON, "--clipnorm", 0, "--loss",
            "in-batch-symmetric", "--distribute", "mirrored", "--cpu-replicas", "2"]
    full = _train([*args, "--out", tmp_path / "full"])
    cached = _train([*args, "--out", tmp_path / "cached", "--mini-batch-size", 3])
    assert cached["options"]["fit"]["mini_batch_size"] == 3 and cached["replicas"] == 2
    one = pd.read_csv(tmp_path / "full" / "history.csv")
    two = pd.read_csv(tmp_path / "cached" / "history.csv")
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=1e-4)
