"""Training mechanics on a tiny random encoder: loss falls, resume, reproducibility, NaN."""

import os
import signal

import keras
import numpy as np
import pytest

from domain_tune.datasets.pairs import Pairs
from domain_tune.errors import BadInputError, TrainingInterrupted
from domain_tune.training.batches import epoch_batches, epoch_order
from domain_tune.training.fit import (
    FitOptions, NonFiniteLoss, compile_siamese, eval_dataset, evaluate, fit, train_dataset,
)
from tests.conftest import make_tiny_encoder

WORDS = ["data", "nurse", "chef", "pilot", "analyst", "baker", "driver", "teacher", "judge", "clerk"]


def toy_pairs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    base, ref, sim = [], [], []
    for _ in range(n):
        i, j = rng.integers(len(WORDS), size=2)
        base.append(f"{WORDS[i]} {WORDS[(i + 1) % len(WORDS)]}")
        ref.append(f"{WORDS[j]} senior")
        sim.append(1.0 if i == j else 0.5)
    return Pairs(base, ref, np.array(sim, np.float32), "toy.csv")


# checkpoint_every=0: the resumable state after every epoch, which the interrupt tests resume from
FAST = dict(learning_rate=3e-3, batch_size=8, patience=50, seed=7, checkpoint_every=0)


def test_dataset_batches_follow_epoch_permutations():
    pairs = toy_pairs(10)
    ds, steps = train_dataset(pairs, 4, seed=3, first_epoch=1, epochs=3, bucket=False)
    batches = [b[1].numpy().tolist() for b in ds]
    assert steps == 3 and len(batches) == 6  # 4 + 4 + 2 per epoch, two epochs
    first = np.concatenate([b for b in batches[:3]])
    np.testing.assert_allclose(first, pairs.similarity[epoch_order(10, 3, 1)])


def test_pair_datasets_run_without_the_autotuning_thread():
    # destroying an autotuned iterator waits for the tuning thread's next wake-up (seconds
    # at the end of a fit); the gathers of in-memory pairs have nothing to tune
    pairs = toy_pairs(10)
    ds, _ = train_dataset(pairs, 4, seed=3, first_epoch=0, epochs=2)
    for dataset in (ds, eval_dataset(pairs, 4)):
        assert dataset.options().autotune.enabled is False
        assert dataset.options().experimental_distribute.auto_shard_policy.name == "DATA"
    assert sum(len(b[1]) for b in eval_dataset(pairs, 4)) == 10


def test_bucketed_batches_cover_the_epoch_and_group_lengths():
    lengths = np.random.default_rng(0).integers(1, 200, size=1000)
    batches = epoch_batches(lengths, 8, seed=1, epoch=2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert sum(len(b) < 8 for b in batches) == 0 and len(batches) == 125
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in epoch_batches(lengths, 8, 1, 2, False)])
    assert spread < 0.2 * random_spread
    again = epoch_batches(lengths, 8, seed=1, epoch=2)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # a function of (seed, epoch)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, epoch_batches(lengths, 8, 1, 3)))


class _CountingEncoder(keras.layers.Layer):
    """The tiny encoder, recording how many texts each call embeds."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.sizes = []

    def call(self, texts, training=False):
        self.sizes.append(int(texts.shape[0]))
        return self.inner(texts, training=training)


@pytest.mark.parametrize("loss", ["mse", "in-batch-symmetric"])
def test_repeated_texts_are_encoded_once_with_unchanged_loss_and_gradients(sp_model_path, loss):
    import tensorflow as tf

    from domain_tune.training.siamese import SiameseModel

    inner = make_tiny_encoder(sp_model_path, seed=3)
    encoder = _CountingEncoder(inner)
    model = SiameseModel(encoder, loss=loss)
    x = {"base": tf.constant(["data nurse", "chef pilot", "data nurse", "judge"]),
         "ref": tf.constant(["chef pilot", "nurse senior", "judge", "baker clerk"]),
         "negative": tf.constant(["", "baker clerk", "", ""])}
    y = tf.constant([1.0, 0.2, 1.0, 0.7])  # the in-batch losses learn from the positives (1.0)
    with tf.GradientTape(persistent=True) as tape:
        similarity, emb = model._forward(x)
        got = model.pair_loss_value(x, y, similarity, emb)
        # each place encoded on its own: what the step computed before de-duplication
        one = {k: inner(x[k]) for k in ("base", "ref", "negative")}
        want = model.pair_loss_value(x, y, model.similarity(one["base"], one["ref"]), one)
    assert set(encoder.sizes) == {6}  # 12 places, 6 distinct texts (a build may call twice)
    for k in one:
        np.testing.assert_allclose(emb[k].numpy(), one[k].numpy(), atol=1e-6)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    weights = inner.trainable_weights
    compared = 0
    for g, w in zip(tape.gradient(got, weights), tape.gradient(want, weights)):
        g, w = (tf.convert_to_tensor(t).numpy() if t is not None else None for t in (g, w))
        if w is None:
            assert g is None
            continue
        # summation order only: oneDNN's AVX-512 kernels differ by up to 2e-5 on values near 1.7
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=3e-5)
        compared += int(np.any(w))
    assert compared >= 3


def test_lazy_adam_trains_the_same_on_distinct_texts(sp_model_path, tmp_path):
    """Encoding each distinct text once is exact with lazy-adam (it sums a row's slices)."""
    pairs = toy_pairs(40, 4)  # ten words: texts repeat within every batch
    opts = FitOptions(epochs=2, optimizer="lazy-adam", **FAST)
    runs = []
    for distinct in (True, False):
        model = compile_siamese(make_tiny_encoder(sp_model_path, seed=2), opts)
        assert model.distinct_texts  # what compile_siamese chooses for lazy-adam
        model.distinct_texts = distinct
        state = fit(model, pairs, None, opts, str(tmp_path / str(distinct)), verbose=0)
        runs.append((state.history, [w.numpy() for w in model.encoder.trainable_weights]))
    (h1, w1), (h2, w2) = runs
    np.testing.assert_allclose([r["loss"] for r in h1], [r["loss"] for r in h2], rtol=1e-5)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not compile_siamese(make_tiny_encoder(sp_model_path), FitOptions(**FAST)).distinct_texts


@pytest.mark.parametrize("mini_batch_size", [None, 1])  # plain and cached-gradient steps
@pytest.mark.parametrize("optimizer,packed", [("adam", False), ("lazy-adam", True)])
def test_training_steps_run_packed_only_for_lazy_adam(sp_model_path, optimizer, packed,
                                                      mini_batch_size):
    """The packed pass gives one embedding-gradient slice per distinct token: lazy-adam only."""
    import tensorflow as tf

    encoder = make_tiny_encoder(sp_model_path)
    opts = FitOptions(epochs=1, optimizer=optimizer, mini_batch_size=mini_batch_size,
                      loss="in-batch-symmetric" if mini_batch_size else "mse", **FAST)
    model = compile_siamese(encoder, opts)
    calls = []
    for name in ("call_packed", "call"):
        original = getattr(encoder.backbone, name)
        setattr(encoder.backbone, name,
                lambda *a, _n=name, _f=original, **k: calls.append((_n, k.get("training"))) or _f(*a, **k))
    model.make_train_function()
    x = {"base": tf.constant(["data scientist"]), "ref": tf.constant(["data analyst"])}
    model.train_function(iter([(x, tf.constant([0.8]))]))
    assert calls and set(calls) == ({("call_packed", None)} if packed else {("call", True)})


def test_loss_falls(sp_model_path, tmp_path):
    pairs = toy_pairs()
    model = compile_siamese(make_tiny_encoder(sp_model_path), FitOptions(**FAST))
    before = evaluate(model, pairs)["loss"]
    state = fit(model, pairs, None, FitOptions(epochs=8, **FAST), str(tmp_path), verbose=0)
    after = evaluate(model, pairs)["loss"]
    assert after < 0.5 * before
    assert [r["epoch"] for r in state.history] == list(range(1, 9))
    assert state.history[-1]["loss"] < state.history[0]["loss"]


def test_compiling_builds_metrics_and_optimizer_without_tracing_the_model(sp_model_path, tmp_path,
                                                                        monkeypatch):
    """No symbolic pass of the encoder at compile time, and the same training as Keras' build."""
    from domain_tune.models.sentence_encoder import SentenceEncoder
    from domain_tune.training.siamese import SiameseModel

    pairs, results = toy_pairs(16), []
    original = SentenceEncoder.call
    for by_tracing in (False, True):
        calls = []
        monkeypatch.setattr(SentenceEncoder, "call",
                            lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
        if by_tracing:  # Keras' own build, which traces the forward pass
            monkeypatch.setattr(SiameseModel, "build_compiled",
                                SiameseModel._build_compiled_by_tracing)
        model = compile_siamese(make_tiny_encoder(sp_model_path), FitOptions(**FAST))
        assert len(calls) == (1 if by_tracing else 0)
        assert all(layer.built for layer in model._flatten_layers())
        assert model.optimizer.built and model._compile_metrics.built
        monkeypatch.undo()
        state = fit(model, pairs, None, FitOptions(epochs=2, **FAST), str(tmp_path / str(by_tracing)),
                    verbose=0)
        results.append(([r["loss"] for r in state.history], evaluate(model, pairs),
                         [v.numpy() for v in model.optimizer.variables]))
    assert results[0][:2] == results[1][:2]
    for a, b in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["adam", "lazy-adam"])
def test_both_optimizers_learn(sp_model_path, tmp_path, optimizer):
    pairs = toy_pairs()
    opts = FitOptions(epochs=4, optimizer=optimizer, **FAST)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    before = evaluate(model, pairs)["loss"]
    fit(model, pairs, None, opts, str(tmp_path), verbose=0)
    assert evaluate(model, pairs)["loss"] < before


def test_lazy_adam_leaves_unseen_rows_alone(sp_model_path, tmp_path):
    pairs = toy_pairs()
    opts = FitOptions(epochs=1, optimizer="lazy-adam", **FAST)
    encoder = make_tiny_encoder(sp_model_path)
    table_before = encoder.backbone.token_embedding.embeddings.numpy().copy()
    fit(compile_siamese(encoder, opts), pairs, None, opts, str(tmp_path), verbose=0)
    table_after = encoder.backbone.token_embedding.embeddings.numpy()
    changed = np.flatnonzero(np.any(table_after != table_before, axis=1))
    seen = set()
    for text in pairs.base + pairs.ref:
        seen.update(encoder.tokenizer.tokenize([text])[0])
    assert 0 < len(changed) and set(changed.tolist()) <= seen


def _train(sp_model_path, state_dir, epochs=4, callbacks=(), resume=False, encoder=None,
           checkpoint_every=0, final_state=True):
    pairs, val = toy_pairs(40, 1), toy_pairs(12, 2)
    opts = FitOptions(epochs=epochs, **{**FAST, "checkpoint_every": checkpoint_every})
    encoder = encoder or make_tiny_encoder(sp_model_path, seed=5)
    model = compile_siamese(encoder, opts)
    state = fit(model, pairs, val, opts, str(state_dir), resume=resume, callbacks=callbacks,
                verbose=0, final_state=final_state)
    return model, state


class _SignalAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch, signum=signal.SIGINT):
        super().__init__()
        self.at, self.signum, self.epoch = (epoch, batch), signum, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_then_resume_matches_uninterrupted(sp_model_path, tmp_path, signum, code):
    reference, ref_state = _train(sp_model_path, tmp_path / "a")
    with pytest.raises(TrainingInterrupted) as info:
        _train(sp_model_path, tmp_path / "b", callbacks=[_SignalAt(1, 1, signum)])
    assert info.value.exit_code == code
    resumed, state = _train(sp_model_path, tmp_path / "b", resume=True)
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["val_loss"] for r in state.history] == pytest.approx(
        [r["val_loss"] for r in ref_state.history], abs=1e-7)
    assert state.best_epoch == ref_state.best_epoch


def test_same_seed_same_result(sp_model_path, tmp_path):
    _, a = _train(sp_model_path, tmp_path / "a", epochs=2)
    _, b = _train(sp_model_path, tmp_path / "b", epochs=2)
    assert a.history == b.history


def test_nan_loss_stops(sp_model_path, tmp_path):
    pairs = toy_pairs()
    opts = FitOptions(epochs=2, learning_rate=1e30, clipnorm=0, **{k: v for k, v in FAST.items()
                                                                  if k != "learning_rate"})
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    with pytest.raises(NonFiniteLoss, match="no model was written"):
        fit(model, pairs, None, opts, str(tmp_path), verbose=0)


@pytest.mark.parametrize("validation, message", [
    (True, r"^validation loss became nan after epoch 1; lower --learning-rate"),
    (False, r"^the weights became NaN or infinite \(.+\) in the last step; lower --learning-rate"),
])
def test_a_last_step_that_breaks_the_weights_stops(sp_model_path, tmp_path, validation, message):
    """One step: its loss is that of the weights before it, so the per-batch check saw a finite
    loss and a model of NaN weights was saved (``train --lr 1e30`` on a file of 8 pairs)."""
    pairs = toy_pairs(8, 1)
    opts = FitOptions(epochs=1, learning_rate=1e39, clipnorm=0, batch_size=8, seed=7,
                      checkpoint_every=0)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    with pytest.raises(NonFiniteLoss, match=message):
        fit(model, pairs, toy_pairs(8, 2) if validation else None, opts, str(tmp_path),
            verbose=0)


def test_early_stopping_restores_best(sp_model_path, tmp_path):
    pairs, val = toy_pairs(40, 1), toy_pairs(12, 2)
    opts = FitOptions(epochs=30, learning_rate=3e-2, batch_size=8, patience=1, min_delta=0.0,
                      seed=1)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    state = fit(model, pairs, val, opts, str(tmp_path), verbose=0)
    assert state.stopped_early and len(state.history) < 30
    best = min(r["val_loss"] for r in state.history)
    assert evaluate(model, val)["loss"] == pytest.approx(best, rel=1e-5)


@pytest.mark.parametrize("loss", ["mse", "cosent", "in-batch", "in-batch-symmetric"])
def test_every_loss_learns(sp_model_path, tmp_path, loss):
    pairs = toy_pairs()
    opts = FitOptions(epochs=4, loss=loss, **FAST)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    before = evaluate(model, pairs)["loss"]
    state = fit(model, pairs, None, opts, str(tmp_path), verbose=0)
    assert evaluate(model, pairs)["loss"] < before
    assert state.history[-1]["loss"] < state.history[0]["loss"]


def test_in_batch_loss_values():
    import tensorflow as tf

    from domain_tune.training.losses import in_batch

    a = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = tf.constant([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    refs = tf.constant(["x", "y", "z"])
    y = tf.constant([1.0, 1.0, 0.5])  # the third pair is not positive: only a negative
    logits = np.array([[1, 0, -1], [0, 1, 0]], dtype=np.float64)  # cosines, scale 1
    expected = np.mean([np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(logits)])
    assert float(in_batch(y, None, a, b, refs, scale=1.0)) == pytest.approx(expected, rel=1e-5)
    same = tf.constant(["x", "x", "z"])  # the second ref repeats the first: not a negative of it
    masked = float(in_batch(y, None, a, b, same, scale=1.0))
    row0 = np.log(np.exp([1, -1]).sum()) - 1  # column 1 masked out for row 0
    row1 = np.log(np.exp([1, 0]).sum()) - 1  # column 0 masked out for row 1
    assert masked == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_symmetric_in_batch_loss_values():
    import tensorflow as tf

    from domain_tune.training.losses import in_batch, in_batch_symmetric

    a = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = tf.constant([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = tf.constant([1.0, 1.0, 0.5])
    refs, bases = tf.constant(["x", "y", "z"]), tf.constant(["p", "q", "r"])
    # ref -> base cosines (rows: refs of the two positives; columns: all bases)
    back = np.array([[1, 0, 1 / np.sqrt(2)], [0, 1, 1 / np.sqrt(2)]])
    backward = np.mean([np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(back)])
    forward = float(in_batch(y, None, a, b, refs, scale=1.0))
    value = float(in_batch_symmetric(y, None, a, b, refs, bases, scale=1.0))
    assert value == pytest.approx((forward + backward) / 2, rel=1e-5)
    # two bases of one ref are synonyms: neither is a negative of that ref
    same_ref = tf.constant(["x", "x", "z"])
    masked = float(in_batch_symmetric(y, None, a, b, same_ref, bases, scale=1.0))
    fwd = float(in_batch(y, None, a, b, same_ref, scale=1.0))
    row0 = np.log(np.exp([1, 1 / np.sqrt(2)]).sum()) - 1  # column 1 (a synonym) left out
    row1 = np.log(np.exp([1, 1 / np.sqrt(2)]).sum()) - 1  # column 0 left out
    assert masked == pytest.approx((fwd + (row0 + row1) / 2) / 2, rel=1e-5)


def test_in_batch_loss_with_hard_negatives():
    import tensorflow as tf

    from domain_tune.training.losses import in_batch, in_batch_symmetric

    a = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    b = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    refs, bases = tf.constant(["x", "y"]), tf.constant(["p", "q"])
    y = tf.constant([1.0, 1.0])
    neg = tf.constant([[0.6, 0.8], [0.0, -1.0]])
    # candidates: the two refs, then the two negatives; scale 1
    logits = np.array([[1, 0, 0.6, 0], [0, 1, 0.8, -1]])
    expected = np.mean([np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(logits)])
    value = float(in_batch(y, None, a, b, refs, scale=1.0, negative_emb=neg,
                           negative_texts=tf.constant(["n1", "n2"])))
    assert value == pytest.approx(expected, rel=1e-5)
    assert value > float(in_batch(y, None, a, b, refs, scale=1.0))  # negatives make it harder
    # an empty negative, or one that is some anchor's own ref, is no negative of that anchor
    masked = float(in_batch(y, None, a, b, refs, scale=1.0, negative_emb=neg,
                            negative_texts=tf.constant(["", "x"])))
    row0 = np.log(np.exp([1, 0]).sum()) - 1  # "" left out; "x" is row 0's own ref
    row1 = np.log(np.exp([0, 1, -1]).sum()) - 1  # "" left out
    assert masked == pytest.approx((row0 + row1) / 2, rel=1e-5)
    # the symmetric loss passes them to its base -> ref half only
    sym = float(in_batch_symmetric(y, None, a, b, refs, bases, scale=1.0, negative_emb=neg,
                                   negative_texts=tf.constant(["n1", "n2"])))
    backward = float(in_batch(y, None, b, a, bases, scale=1.0))
    assert sym == pytest.approx((expected + backward) / 2, rel=1e-5)


def with_negatives(pairs):
    """``pairs`` plus a hard negative (another pair's ref) for each positive."""
    negative = [pairs.ref[(i + 1) % len(pairs)] if s >= 0.99 else ""
                for i, s in enumerate(pairs.similarity)]
    return Pairs(pairs.base, pairs.ref, pairs.similarity, pairs.path, negative)


@pytest.mark.parametrize("loss", ["mse", "in-batch-symmetric"])
def test_training_with_hard_negatives(sp_model_path, tmp_path, loss):
    pairs = with_negatives(toy_pairs())
    assert sum(bool(n) for n in pairs.negative) > 5
    opts = FitOptions(epochs=4, loss=loss, **FAST)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts)
    before = evaluate(model, pairs)["loss"]
    fit(model, pairs, None, opts, str(tmp_path), verbose=0)
    assert evaluate(model, pairs)["loss"] < before
    batch = next(iter(train_dataset(pairs, 8, 0, 0, 1)[0]))[0]
    assert sorted(batch) == ["base", "negative", "ref"]
    # the negatives count in the in-batch loss, not in mse
    plain = evaluate(model, Pairs(pairs.base, pairs.ref, pairs.similarity))["loss"]
    assert (evaluate(model, pairs)["loss"] > plain) == (loss != "mse")


WARM = [1 / 3, 2 / 3, 1.0]  # warm-up: 3 of 10 steps, (step + 1) / 3


@pytest.mark.parametrize("kind, expected", [
    ("constant", WARM + [1.0] * 7),
    ("linear", WARM + [1 - k / 7 for k in range(7)]),  # reaches 0 at step 10, after the last
    ("cosine", WARM + [0.5 * (1 + np.cos(np.pi * k / 7)) for k in range(7)]),
])
def test_warmup_then_decay(kind, expected):
    from domain_tune.training.optimizers import WarmupDecay, learning_rate

    schedule = learning_rate(2.0, kind, warmup=0.3, total_steps=10)
    assert isinstance(schedule, WarmupDecay) and schedule.warmup_steps == 3
    got = [float(schedule(step)) for step in range(10)]
    np.testing.assert_allclose(got, 2.0 * np.array(expected), atol=1e-6)
    again = WarmupDecay.from_config(schedule.get_config())
    assert float(again(7)) == pytest.approx(got[7])
    assert learning_rate(2.0) == 2.0  # constant, no warm-up: a plain float


def test_schedule_follows_the_optimizer_steps(sp_model_path, tmp_path):
    pairs = toy_pairs(40)
    opts = FitOptions(epochs=2, lr_schedule="linear", warmup=0.25, **FAST)
    with pytest.raises(ValueError, match="number of training steps"):
        compile_siamese(make_tiny_encoder(sp_model_path), opts)
    model = compile_siamese(make_tiny_encoder(sp_model_path), opts, len(pairs))
    fit(model, pairs, None, opts, str(tmp_path), verbose=0)
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 10  # 2 epochs of 5 batches
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # decayed to 0 at the end
    # warm-up: round(0.25 * 10) = 2 steps; step 4 is 2 of the 8 decay steps in
    assert float(optimizer._learning_rate(4)) == pytest.approx(FAST["learning_rate"] * 6 / 8)


def test_bad_schedule_options():
    from domain_tune.errors import BadInputError

    with pytest.raises(BadInputError, match="warmup"):
        FitOptions(warmup=1.0).validate()
    with pytest.raises(BadInputError, match="lr_schedule"):
        FitOptions(lr_schedule="step").validate()


class _Clock:
    """``time.monotonic`` for fit: 10 s per epoch, read at the end of each (set as it begins)."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


class _Tick(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_epoch_begin(self, epoch, logs=None):
        self.clock.now = 10.0 * (epoch + 1)


@pytest.fixture
def clock(monkeypatch):
    import domain_tune.training.fit as fit_module

    fake = _Clock()
    monkeypatch.setattr(fit_module, "time", fake)
    return fake


def test_checkpoint_cadence_writes_the_final_state_and_trains_the_same(sp_model_path, tmp_path):
    every_epoch, state_a = _train(sp_model_path, tmp_path / "a", epochs=4)
    cadenced, state_b = _train(sp_model_path, tmp_path / "b", epochs=4, checkpoint_every=1e9)
    assert state_a.checkpoints == [1, 2, 3, 4] and state_b.checkpoints == [4]
    for a, b in zip(every_epoch.get_weights(), cadenced.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert state_a.history == state_b.history and state_a.best_epoch == state_b.best_epoch
    saved = state_b.saved_epoch(str(tmp_path / "b"))
    assert saved["next_epoch"] == 4 and saved["best_epoch"] == state_b.best_epoch
    # the final state is complete: resuming it trains nothing and restores the same best weights
    resumed, state_c = _train(sp_model_path, tmp_path / "b", epochs=4, resume=True,
                              checkpoint_every=1e9)
    for a, b in zip(every_epoch.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert state_c.checkpoints == []
    # without the final state (what `train` asks for): nothing written, the same best weights
    unsaved, state_d = _train(sp_model_path, tmp_path / "d", epochs=4, checkpoint_every=1e9,
                              final_state=False)
    assert state_d.checkpoints == [] and state_d.saved_epoch(str(tmp_path / "d")) is None
    # the in-memory copy of the best weights: reserved before the first epoch and used; none
    # where every epoch is written to disk
    assert state_d._best_in_memory.captured and state_a._best_in_memory.arrays is None
    assert not os.path.exists(tmp_path / "d" / state_d.WEIGHTS)
    for a, b in zip(every_epoch.get_weights(), unsaved.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_from_a_checkpoint_written_mid_run_equals_uninterrupted(sp_model_path, tmp_path,
                                                                        clock):
    reference, ref_state = _train(sp_model_path, tmp_path / "a", epochs=6, checkpoint_every=25,
                                  callbacks=[_Tick(clock)])
    assert ref_state.checkpoints == [3, 6]  # 30 s after the start, 30 s after that
    clock.now = 0.0
    with pytest.raises(TrainingInterrupted, match="the checkpoint after epoch 3 is kept"):
        _train(sp_model_path, tmp_path / "b", epochs=6, checkpoint_every=25,
               callbacks=[_Tick(clock), _SignalAt(4, 1)])
    assert TrainingState_saved(tmp_path / "b")["next_epoch"] == 3
    clock.now = 30.0  # the resumed run starts where the checkpoint was written
    resumed, state = _train(sp_model_path, tmp_path / "b", epochs=6, resume=True,
                            checkpoint_every=25, callbacks=[_Tick(clock)])
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["val_loss"] for r in state.history] == pytest.approx(
        [r["val_loss"] for r in ref_state.history], abs=1e-7)
    assert state.best_epoch == ref_state.best_epoch


def test_interrupt_before_the_first_checkpoint_keeps_nothing(sp_model_path, tmp_path):
    with pytest.raises(TrainingInterrupted, match="no checkpoint had been written yet"):
        _train(sp_model_path, tmp_path / "a", epochs=4, checkpoint_every=1e9,
               callbacks=[_SignalAt(1, 1)])
    assert TrainingState_saved(tmp_path / "a") is None


def test_checkpoint_every_must_be_a_duration():
    from domain_tune.errors import BadInputError

    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(BadInputError, match="checkpoint_every"):
            FitOptions(checkpoint_every=bad).validate()


def TrainingState_saved(state_dir):
    from domain_tune.training.fit import TrainingState

    return TrainingState.saved_epoch(str(state_dir))


def test_scale_reaches_the_loss_of_the_compiled_model(sp_model_path):
    import keras
    import tensorflow as tf

    from domain_tune.training.siamese import SiameseModel
    from domain_tune.training import losses

    a = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    b = tf.constant([[0.6, 0.8], [0.0, 1.0]])
    texts = (tf.constant(["x", "y"]), tf.constant(["p", "q"]))
    for name in ("in-batch", "in-batch-symmetric", "cosent"):
        fn = getattr(losses, name.replace("-", "_"))
        # cosent ranks the predictions: a pair scored lower is predicted more similar
        args = ((tf.constant([1.0, 0.5]), tf.constant([0.3, 0.8])) if name == "cosent"
                else (tf.constant([1.0, 1.0]), None)) + (a, b) + texts
        assert float(losses.get(name, 5.0)(*args)) == pytest.approx(float(fn(*args, scale=5.0)))
        assert float(losses.get(name)(*args)) == pytest.approx(float(fn(*args, scale=20.0)))
        assert float(losses.get(name, 5.0)(*args)) != pytest.approx(float(losses.get(name)(*args)))
    assert losses.get("mse", 5.0) is losses.mse  # no scale to set

    encoder = make_tiny_encoder(sp_model_path)
    soft = compile_siamese(encoder, FitOptions(loss="in-batch", scale=5.0, **FAST))
    default = compile_siamese(encoder, FitOptions(loss="in-batch", **FAST))
    x = {"base": tf.constant(["alpha beta", "gamma"]), "ref": tf.constant(["beta", "delta x"])}
    y = tf.constant([1.0, 1.0])
    emb = {k: encoder(v) for k, v in x.items()}
    sim = soft(x)
    assert float(soft.pair_loss_value(x, y, sim, emb)) == pytest.approx(
        float(losses.in_batch(y, sim, emb["base"], emb["ref"], x["ref"], x["base"], scale=5.0)),
        rel=1e-5)
    assert float(default.pair_loss_value(x, y, sim, emb)) == pytest.approx(
        float(losses.in_batch(y, sim, emb["base"], emb["ref"], x["ref"], x["base"])), rel=1e-5)
    config = soft.get_config()
    assert config["scale"] == 5.0
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(soft)).scale == 5.0
    assert SiameseModel.from_config(default.get_config()).scale is None


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_scale_must_be_positive(scale):
    with pytest.raises(BadInputError, match="scale must be a positive number"):
        FitOptions(scale=scale).validate()


def _rewrites_off():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    config = config_pb2.ConfigProto.FromString(
        context.context().function_call_options.config_proto_serialized)
    return config.graph_options.rewrite_options.disable_meta_optimizer


def test_without_graph_rewrites_applies_to_its_calls_only():
    from domain_tune.training.siamese import without_graph_rewrites

    seen = []

    def probe(x, fail=False):
        seen.append(_rewrites_off())
        if fail:
            raise RuntimeError("boom")
        return x + 1

    wrapped = without_graph_rewrites(probe)
    assert not _rewrites_off()
    assert wrapped(1) == 2 and wrapped(2) == 3
    with pytest.raises(RuntimeError, match="boom"):
        wrapped(3, fail=True)
    assert seen == [True, True, True]
    assert not _rewrites_off()  # restored, also after an exception
    assert wrapped.unwrapped is probe


def test_training_without_graph_rewrites_trains_the_same(sp_model_path, tmp_path, monkeypatch):
    """The training step runs without Grappler's rewrites; the numbers are those with them."""
    from domain_tune.training import siamese

    pairs = toy_pairs(32, 5)
    opts = FitOptions(epochs=2, **FAST)
    runs = []
    for rewrites in (False, True):
        if rewrites:
            monkeypatch.setattr(siamese, "without_graph_rewrites", lambda fn: fn)
        model = compile_siamese(make_tiny_encoder(sp_model_path, seed=3), opts)
        state = fit(model, pairs, None, opts, str(tmp_path / str(rewrites)), verbose=0)
        assert hasattr(model.train_function, "unwrapped") is not rewrites
        runs.append((state.history, [w.numpy() for w in model.encoder.trainable_weights]))
    (h1, w1), (h2, w2) = runs
    np.testing.assert_allclose([r["loss"] for r in h1], [r["loss"] for r in h2], rtol=1e-5)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
