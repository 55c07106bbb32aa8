"""domain_tune.embedding: the traced inference function and batched encoding."""

import numpy as np
import tensorflow as tf

from domain_tune.embedding import encode, inference_fn


def test_inference_fn_is_traced_once_and_equals_the_model(tiny_encoder):
    fn = inference_fn(tiny_encoder)
    assert inference_fn(tiny_encoder) is fn  # cached per model
    batches = [["a cat"], ["a dog", "the sun is out today", ""], ["x"] * 7]
    for texts in batches:
        got = fn(tf.constant(texts)).numpy()
        expected = tiny_encoder(tf.constant(texts), training=False).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert fn.experimental_get_tracing_count() == 1


def test_encode_keeps_input_order_across_length_sorted_batches(tiny_encoder):
    texts = ["a much longer text than the others", "b", "a cat", "b", "the sun"]
    out = encode(tiny_encoder, texts, batch_size=2)
    one_by_one = np.concatenate([encode(tiny_encoder, [t], batch_size=1) for t in texts])
    np.testing.assert_allclose(out, one_by_one, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[1], out[3])


def test_encode_embeds_each_distinct_text_once(tiny_encoder, monkeypatch):
    from domain_tune import embedding

    seen = []
    fn = inference_fn(tiny_encoder)
    monkeypatch.setattr(embedding, "inference_fn",
                        lambda model: lambda t: seen.extend(t.numpy().tolist()) or fn(t))
    texts = ["b", "a cat", "b", 7, "a cat", "b", "7", ""]
    out = encode(tiny_encoder, texts, batch_size=3)
    assert sorted(seen) == sorted(t.encode() for t in {"b", "a cat", "7", ""})
    assert out.shape == (8, tiny_encoder.output_dim)
    expected = fn(tf.constant([str(t) for t in texts])).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    for i, j in [(0, 2), (0, 5), (1, 4), (3, 6)]:
        np.testing.assert_array_equal(out[i], out[j])


def test_encode_treats_missing_values_as_blank(tiny_encoder):
    """None and NaN (an empty cell of a pandas column) embed as the empty string, not as the
    texts 'None' and 'nan'; other non-strings as their str()."""
    out = encode(tiny_encoder, ["", None, float("nan"), np.float32("nan"), 7, "7", "nan"])
    np.testing.assert_array_equal(out[1], out[0])
    np.testing.assert_array_equal(out[2], out[0])
    np.testing.assert_array_equal(out[3], out[0])
    np.testing.assert_array_equal(out[4], out[5])
    assert not np.array_equal(out[6], out[0])
