"""domain_tune.embedding: the traced inference function and batched encoding."""

import numpy as np
import pytest
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


def test_encode_with_batches_in_flight_equals_one_batch_at_a_time(tiny_encoder, monkeypatch):
    from domain_tune import embedding

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)]
    in_flight = encode(tiny_encoder, texts, batch_size=3)
    monkeypatch.setattr(embedding, "IN_FLIGHT", 1)
    one_at_a_time = encode(tiny_encoder, texts, batch_size=3)
    # each batch is computed as it would be alone: the same numbers, in input order
    np.testing.assert_array_equal(in_flight, one_at_a_time)
    whole = encode(tiny_encoder, texts, batch_size=64)
    np.testing.assert_allclose(in_flight, whole, rtol=1e-5, atol=1e-6)


def test_encode_in_flight_traces_a_new_model_once(sp_model_path):
    from tests.conftest import make_tiny_encoder

    model = make_tiny_encoder(sp_model_path, seed=3)
    encode(model, [f"text {i} " + "word " * (i % 5) for i in range(30)], batch_size=2)
    assert inference_fn(model).experimental_get_tracing_count() == 1


def test_encode_reports_an_error_of_a_batch_in_flight(tiny_encoder, monkeypatch):
    from domain_tune import embedding

    fn = inference_fn(tiny_encoder)
    calls = []

    def failing(t):
        calls.append(len(calls))
        if len(calls) == 3:
            raise RuntimeError("batch 3 failed")
        return fn(t)

    monkeypatch.setattr(embedding, "inference_fn", lambda model: failing)
    with pytest.raises(RuntimeError, match="batch 3 failed"):
        encode(tiny_encoder, [f"t{i}" for i in range(12)], batch_size=2)


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
