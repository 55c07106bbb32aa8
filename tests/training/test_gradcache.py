"""GradCache: the cached-gradient step equals one full-batch step (loss and every gradient)."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.datasets.pairs import Pairs
from domain_tune.training.fit import FitOptions, compile_siamese, fit
from domain_tune.training.gradcache import cached_train_step, embed_without_gradients
from tests.conftest import make_tiny_encoder
from tests.training.test_fit import FAST, toy_pairs


def _batch(pairs, negatives=0):
    x = {"base": tf.constant(pairs.base), "ref": tf.constant(pairs.ref)}
    n = len(pairs)
    for k in range(negatives):  # another pair's ref for each positive, one column per k
        name = "negative" if k == 0 else f"negative_{k + 1}"
        x[name] = tf.constant([pairs.ref[(i + k + 1) % n] if s >= 0.99 else ""
                               for i, s in enumerate(pairs.similarity)])
    return x, tf.constant(pairs.similarity)


def _full_step(model, x, y):
    with tf.GradientTape() as tape:
        similarity, emb = model._forward(x, training=True)
        loss = model.pair_loss_value(x, y, similarity, emb)
    return loss, similarity, tape.gradient(loss, model.trainable_weights)


def _dense(g):
    return None if g is None else tf.convert_to_tensor(g).numpy()


@pytest.mark.parametrize("loss, negatives, mini", [
    ("in-batch-symmetric", 0, 5),
    ("in-batch-symmetric", 2, 7),  # two hard-negative columns; 7 does not divide 4 x 20 texts
    ("in-batch", 1, 1),
    ("mse", 0, 16),
])
@pytest.mark.parametrize("graph", [False, True])
def test_cached_step_equals_full_batch(sp_model_path, loss, negatives, mini, graph):
    pairs = toy_pairs(20, seed=3)
    assert (pairs.similarity >= 0.99).sum() >= 2
    model = compile_siamese(make_tiny_encoder(sp_model_path), FitOptions(loss=loss, **FAST))
    x, y = _batch(pairs, negatives)
    full = tf.function(_full_step) if graph else _full_step
    cached = tf.function(cached_train_step, reduce_retracing=True) if graph else cached_train_step
    loss_full, sim_full, grads_full = full(model, x, y)
    loss_cached, sim_cached, grads_cached = cached(model, x, y, mini)
    assert float(loss_full) > 0
    assert float(loss_cached) == pytest.approx(float(loss_full), abs=1e-5)
    np.testing.assert_allclose(sim_cached.numpy(), sim_full.numpy(), atol=1e-5)
    assert len(grads_cached) == len(grads_full) == len(model.trainable_weights)
    reached = 0
    for w, a, b in zip(model.trainable_weights, grads_full, grads_cached):
        a, b = _dense(a), _dense(b)
        assert (a is None) == (b is None), w.path
        if a is not None:
            reached += 1
            # summation order only (oneDNN's AVX-512 kernels: up to 1.5e-5 on values near 0.25)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=3e-5, err_msg=w.path)
    assert reached == len(model.trainable_weights)
    # the embedding table's gradient stays sparse: only the batch's rows
    table = [g for g in grads_cached if isinstance(g, tf.IndexedSlices)]
    assert table and all(int(tf.size(g.indices)) < g.dense_shape[0] for g in table)


def test_mini_batches_cover_every_text(sp_model_path):
    encoder = make_tiny_encoder(sp_model_path)
    texts = tf.constant([f"text number {i}" for i in range(11)])
    np.testing.assert_allclose(embed_without_gradients(encoder, texts, 4).numpy(),
                               encoder(texts).numpy(), atol=1e-6)


def test_training_with_mini_batches_matches_full_batches(sp_model_path, tmp_path):
    base = toy_pairs(48)
    negative = [base.ref[(i + 1) % len(base)] if s >= 0.99 else "" for i, s in
                enumerate(base.similarity)]
    pairs = Pairs(base.base, base.ref, base.similarity, base.path, negative)
    weights = []
    for mini in (None, 6):
        opts = FitOptions(epochs=2, loss="in-batch-symmetric", optimizer="lazy-adam",
                          mini_batch_size=mini, **{**FAST, "batch_size": 16})
        model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
        state = fit(model, pairs, None, opts, str(tmp_path / str(mini)), verbose=0)
        assert state.history[-1]["loss"] < state.history[0]["loss"]
        weights.append([w.numpy() for w in model.encoder.trainable_weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_mini_batch_size_is_validated():
    from domain_tune.errors import BadInputError

    with pytest.raises(BadInputError, match="mini_batch_size"):
        FitOptions(mini_batch_size=0).validate()


def test_interrupt_then_resume_with_mini_batches(sp_model_path, tmp_path):
    import signal

    from domain_tune.errors import TrainingInterrupted
    from tests.training.test_fit import _SignalAt

    pairs, val = toy_pairs(40, 1), toy_pairs(12, 2)
    opts = FitOptions(epochs=3, loss="in-batch-symmetric", mini_batch_size=5, **FAST)

    def train(state_dir, callbacks=(), resume=False):
        model = compile_siamese(make_tiny_encoder(sp_model_path, seed=5), opts)
        fit(model, pairs, val, opts, str(state_dir), resume=resume, callbacks=callbacks,
            verbose=0)
        return model

    reference = train(tmp_path / "a")
    with pytest.raises(TrainingInterrupted):
        train(tmp_path / "b", callbacks=[_SignalAt(1, 1, signal.SIGINT)])
    resumed = train(tmp_path / "b", resume=True)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["adam", "lazy-adam"])
def test_cached_step_with_distillation_equals_full_batch_step(sp_model_path, optimizer):
    """With --parallel, the cached step adds the distillation term's gradients (its own tape)."""
    from tests.training.test_distillation import SOURCES, TRANSLATIONS

    pairs = toy_pairs(20, seed=3)
    x, y = _batch(pairs, 1)
    x["parallel"] = {"source": tf.constant(SOURCES), "translation": tf.constant(TRANSLATIONS)}
    weights = []
    for mini in (None, 6):
        opts = FitOptions(loss="in-batch-symmetric", optimizer=optimizer, mini_batch_size=mini,
                          **FAST)
        model = compile_siamese(make_tiny_encoder(sp_model_path, seed=11), opts, align_weight=2.0)
        logs = model.train_step((x, y))
        assert float(model.align_tracker.result()) > 0
        weights.append(([w.numpy() for w in model.trainable_weights], float(logs["loss"])))
    (full, loss_full), (cached, loss_cached) = weights
    assert loss_cached == pytest.approx(loss_full, abs=1e-5)
    for a, b in zip(full, cached):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    initial = [w.numpy() for w in make_tiny_encoder(sp_model_path, seed=11).trainable_weights]
    moved = sum(not np.allclose(a, b) for a, b in zip(initial, full[: len(initial)]))
    assert moved > 0
