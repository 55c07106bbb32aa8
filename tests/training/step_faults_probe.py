"""Minor page faults per training step and per embedding batch (run by test_step_memory.py).

Prints one JSON object: ``{"pages": pages of the embedding table, "<case>": [faults of each
measured step]}``.  Run in a process of its own, with transparent huge pages turned off for
it (``PR_SET_THP_DISABLE``), so that every 4 KiB page written for the first time is one
fault, whatever the host's setting.

Usage: ``python step_faults_probe.py STATE_DIR CASE [CASE ...]`` with cases ``adam``, ``lazy-adam``,
``keras-adam`` (Keras' own Adam, whose update makes table-sized temporaries: the probe's
positive control), ``encode``, ``save`` (one ``.keras`` save after training with
``adam``, whose gathers leave the table in copy-on-read mode), ``start`` (creating each
optimizer's moments for a table and its first update: Keras writes two zero tables) and
``first-gather`` (the first read of an embedding built from a table that TensorFlow owns,
as the preset's is, and from one in NumPy's memory, which TensorFlow copies first).
"""

import ctypes
import json
import os
import resource
import sys

PR_SET_THP_DISABLE = 41
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from domain_tune import _env  # noqa: E402  (tunes malloc before TensorFlow loads)

_env.import_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from domain_tune.embedding import encode  # noqa: E402
from domain_tune.models.weights import resources_dir  # noqa: E402
from domain_tune.training import fit as fit_lib  # noqa: E402
from tests.conftest import make_tiny_encoder  # noqa: E402
from tests.training.test_fit import FAST, toy_pairs  # noqa: E402

# 128,000 x 128 float32: 65.5 MB, above the largest mmap threshold glibc accepts (32 MiB), so
# any table-sized buffer is a fresh mapping whose pages fault in when written
EMBEDDING_DIM = 128
WARM_EPOCHS = 1  # tracing, the optimizer's moments (two tables, zero-filled once)
EPOCHS = 3


def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class StepFaults(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch, self.start, self.steps = 0, 0, []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.start = faults()

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch >= WARM_EPOCHS:
            self.steps.append(faults() - self.start)


def encoder():
    return make_tiny_encoder(os.path.join(resources_dir(), "sp.model"),
                             embedding_dim=EMBEDDING_DIM)


def keras_adam(name, learning_rate, beta_1, beta_2, epsilon, clipnorm):
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                 epsilon=epsilon, clipnorm=clipnorm or None)


def train_steps(case, state_dir):
    options = fit_lib.FitOptions(epochs=EPOCHS, **{**FAST, "optimizer": (
        "adam" if case == "keras-adam" else case)})
    own = fit_lib.make_optimizer
    if case == "keras-adam":
        fit_lib.make_optimizer = keras_adam
    try:
        model = fit_lib.compile_siamese(encoder(), options)
    finally:
        fit_lib.make_optimizer = own
    probe = StepFaults()
    fit_lib.fit(model, toy_pairs(48), None, options, state_dir, callbacks=[probe], verbose=0,
                final_state=False)
    return probe.steps


def save_after_training(state_dir):
    from domain_tune.export import save_keras

    options = fit_lib.FitOptions(epochs=1, **FAST)
    encoder_ = encoder()
    model = fit_lib.compile_siamese(encoder_, options)
    fit_lib.fit(model, toy_pairs(48), None, options, state_dir, verbose=0, final_state=False)
    start = faults()
    save_keras(encoder_, os.path.join(state_dir, "model.keras"))
    return [faults() - start]


def encode_batches():
    model = encoder()
    rng = np.random.default_rng(0)
    words = ["data", "nurse", "chef", "pilot", "analyst", "baker", "driver", "teacher"]
    batches = [[" ".join(rng.choice(words, 6)) + f" {b} {i}" for i in range(64)]
               for b in range(8)]
    counts = []
    for i, batch in enumerate(batches):
        start = faults()
        encode(model, batch, batch_size=32)
        if i >= 2:  # traced, and the thread pool's stacks made
            counts.append(faults() - start)
    return counts


def optimizer_start():
    """Faults of building each optimizer's moments for a table, then one sparse update."""
    import tensorflow as tf

    from domain_tune.training.optimizers import make_optimizer

    counts = {}
    for name in ("adam", "lazy-adam", "keras-adam"):
        table = keras.Variable(keras.random.normal((128000, EMBEDDING_DIM)))
        make = keras_adam if name == "keras-adam" else make_optimizer
        optimizer = make(name, 1e-3, 0.9, 0.999, 1e-7, None)
        rows = tf.constant([3, 17, 3, 90000, 127999])
        gradient = tf.IndexedSlices(tf.ones((5, EMBEDDING_DIM)), rows, tf.constant(table.shape))
        start = faults()
        optimizer.build([table])
        optimizer.apply_gradients([(gradient, table)])
        counts[name] = faults() - start
    return counts


def first_gather():
    """Faults of the first call of an embedding built on a TensorFlow-owned or a NumPy table."""
    from domain_tune.models import buffers, layers

    counts = {}
    for owner in ("tensorflow", "numpy"):
        if owner == "tensorflow":
            tensor, table = buffers.empty_tensor((128000, EMBEDDING_DIM), "float32")
            del tensor
        else:
            table = buffers.aligned_empty((128000, EMBEDDING_DIM), np.float32)
        table[:] = 0.5
        with layers.initial_table(buffers.shared_tensor(table)):
            embedding = layers.Embedding(128000, EMBEDDING_DIM)
            embedding.build((None,))
        del table
        start = faults()
        embedding(np.array([[1, 2, 3]]))
        counts[owner] = faults() - start
    return counts


def main(cases, state_dir):
    out = {"pages": 128000 * EMBEDDING_DIM * 4 // resource.getpagesize()}
    for case in cases:
        folder = os.path.join(state_dir, case)
        if case == "encode":
            out[case] = encode_batches()
        elif case == "save":
            out[case] = save_after_training(folder)
        elif case == "start":
            out[case] = optimizer_start()
        elif case == "first-gather":
            out[case] = first_gather()
        else:
            out[case] = train_steps(case, folder)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[2:], sys.argv[1])
