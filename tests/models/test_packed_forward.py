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


def test_gap_narrower_than_the_widest_window_is_refused(tiny_encoder):
    tokens = tiny_encoder.tokenizer(tf.constant(["a b"]))
    with pytest.raises(ValueError, match="gap"):
        tiny_encoder.backbone.call_packed(tokens, gap=1)


@pytest.mark.real
def test_packed_equals_padded_real_weights(use_m3):
    padded, packed = _both(use_m3, TEXTS)
    np.testing.assert_allclose(packed, padded, atol=1e-6)
