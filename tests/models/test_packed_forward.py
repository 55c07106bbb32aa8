"""The padding-free (packed) forward pass equals the padded one."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.models.sentence_encoder import use_packed_forward

TEXTS = [
    "data scientist",
    "",
    "a much longer text with many more pieces than the others, to make padding matter",
    "Datenwissenschaftler",
    "x",
    "scienziato dei dati e ingegnere del software",
]


def _both(model, texts):
    use_packed_forward(model, False)
    padded = model(tf.constant(texts)).numpy()
    use_packed_forward(model, True)
    packed = model(tf.constant(texts)).numpy()
    return padded, packed


def test_packed_equals_padded(tiny_encoder):
    assert tiny_encoder.packed  # the default
    padded, packed = _both(tiny_encoder, TEXTS)
    assert packed.shape == padded.shape == (len(TEXTS), tiny_encoder.output_dim)
    np.testing.assert_allclose(packed, padded, atol=1e-6)


def test_packed_texts_do_not_see_each_other(tiny_encoder):
    alone = tiny_encoder(tf.constant(TEXTS[2:3])).numpy()
    together = tiny_encoder(tf.constant(TEXTS)).numpy()[2:3]
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_packed_gradients_equal_padded(tiny_encoder):
    weights = tiny_encoder.trainable_weights
    grads = {}
    for packed in (False, True):
        use_packed_forward(tiny_encoder, packed)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tiny_encoder(tf.constant(TEXTS)) * np.arange(8, dtype="float32"))
        grads[packed] = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, weights)]
    for a, b in zip(grads[True], grads[False]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_training_calls_run_padded(tiny_encoder):
    calls = []
    original = tiny_encoder.backbone.call_packed
    tiny_encoder.backbone.call_packed = lambda *a, **k: calls.append(1) or original(*a, **k)
    tiny_encoder(tf.constant(TEXTS), training=True)
    assert calls == []
    tiny_encoder(tf.constant(TEXTS))
    assert calls == [1]
    tiny_encoder(tf.constant(TEXTS), training=True, packed=True)  # for optimizers summing slices
    assert calls == [1, 1]
    tiny_encoder(tf.constant(TEXTS), packed=False)
    assert calls == [1, 1]


def test_gap_narrower_than_the_widest_window_is_refused(tiny_encoder):
    tokens = tiny_encoder.tokenizer(tf.constant(["a b"]))
    with pytest.raises(ValueError, match="gap"):
        tiny_encoder.backbone.call_packed(tokens, gap=1)


@pytest.mark.real
def test_packed_equals_padded_real_weights(use_m3):
    padded, packed = _both(use_m3, TEXTS)
    np.testing.assert_allclose(packed, padded, atol=1e-6)


def test_packed_with_repeated_and_identical_texts(tiny_encoder):
    """Tokens shared across texts are computed once and gathered back to every place."""
    texts = ["data data data scientist", "scientist data", "data scientist", "data scientist",
             "a", "a a a a a a a a a a a a a a a a"]
    padded, packed = _both(tiny_encoder, texts)
    np.testing.assert_allclose(packed, padded, atol=1e-6)
    np.testing.assert_array_equal(packed[2], packed[3])
    padded, packed = _both(tiny_encoder, ["same text"] * 5)
    np.testing.assert_allclose(packed, padded, atol=1e-6)


def test_packed_empty_batch(tiny_encoder):
    out = tiny_encoder(tf.constant([], tf.string)).numpy()
    assert out.shape == (0, tiny_encoder.output_dim)


def test_pooled_feature_norm_equals_norm_then_sum(tiny_encoder):
    """The fold of the feature norm into the pooling, against the layer it replaces."""
    backbone = tiny_encoder.backbone
    rng = np.random.default_rng(0)
    widths = [backbone.embedding_dim] + [backbone.ngram_dim] * len(backbone.ngram_orders)
    # features far from zero mean, as the fold must not lose the variance to cancellation
    pieces = [tf.constant((rng.normal(size=(9, w)) * 3 + 50).astype("float32")) for w in widths]
    mask = np.array([1, 1, 0, 1, 0, 0, 1, 1, 0], bool)
    segments = tf.constant([0, 0, 0, 1, 1, 1, 2, 2, 2], tf.int64)
    lengths = tf.constant([2, 1, 2])
    norm = backbone.feature_norm
    norm.gamma.assign(rng.normal(size=norm.gamma.shape).astype("float32"))
    norm.beta.assign(rng.normal(size=norm.beta.shape).astype("float32"))
    normed = norm(tf.concat(pieces, axis=-1)).numpy() * mask[:, None]
    expected = np.stack([normed[0:3].sum(0), normed[3:6].sum(0), normed[6:9].sum(0)])
    got = backbone._pooled_feature_norm(pieces, tf.constant(mask), segments, lengths).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_packed_equals_padded_in_bfloat16(sp_model_path):
    from tests.conftest import make_tiny_encoder

    model = make_tiny_encoder(sp_model_path, dtype="mixed_bfloat16")
    padded, packed = _both(model, TEXTS)
    assert np.isfinite(packed).all()
    np.testing.assert_allclose(packed, padded, atol=3e-2)


@pytest.mark.parametrize("gap", [2, 3])
def test_pack_tokens_lays_texts_end_to_end_with_gaps(gap):
    from domain_tune.models.use_m3 import pack_tokens

    ids = np.array([[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 11, 12]], np.int32)  # last row full
    mask = ids > 0
    flat, segments, lengths = pack_tokens(tf.constant(ids), tf.constant(mask), gap)
    expected, rows = [], []
    for r, (row, m) in enumerate(zip(ids, mask)):
        expected += row[m].tolist() + [-1] * gap
        rows += [r] * (int(m.sum()) + gap)
    assert flat.numpy().tolist() == expected
    assert segments.numpy().tolist() == rows
    assert lengths.numpy().tolist() == [3, 1, 4]


@pytest.mark.parametrize("ngram_conv", ["matmul", "conv"])  # AVX2-only and AVX-512 hosts
def test_inference_graph_stays_small(sp_model_path, ngram_conv, monkeypatch):
    """The traced inference function stays a few hundred ops (a cold start traces it)."""
    from domain_tune.embedding import inference_fn
    from domain_tune.models import layers
    from tests.conftest import make_tiny_encoder

    monkeypatch.setenv("DOMAIN_TUNE_NGRAM_CONV", ngram_conv)
    layers.conv_as_matmul.cache_clear()
    try:
        assert layers.conv_as_matmul() is (ngram_conv == "matmul")
        graph = inference_fn(make_tiny_encoder(sp_model_path)).get_concrete_function().graph
    finally:
        monkeypatch.undo()
        layers.conv_as_matmul.cache_clear()
    ops = [op.type for op in graph.get_operations()]
    assert len(ops) < 600, len(ops)
    assert ops.count("StridedSlice") < 15
