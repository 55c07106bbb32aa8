import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, make_tiny_encoder
from domain_tune.models.sentence_encoder import SentenceEncoder
from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone

TEXTS = ["data scientist", "a much longer sentence about nursing practice and care", "", "x"]


def test_output_is_unit_norm_and_shaped(tiny_encoder):
    emb = tiny_encoder(tf.constant(TEXTS)).numpy()
    assert emb.shape == (len(TEXTS), TINY_CONFIG["dnn_dims"][-1])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_padding_does_not_change_embeddings(tiny_encoder):
    batch = tiny_encoder(tf.constant(TEXTS)).numpy()
    alone = np.stack([tiny_encoder(tf.constant([t])).numpy()[0] for t in TEXTS])
    np.testing.assert_allclose(batch, alone, atol=1e-5)


def test_ngram_context_is_used(tiny_encoder):
    a, b = tiny_encoder(tf.constant(["dog bites man", "man bites dog"])).numpy()
    assert np.abs(a - b).max() > 1e-4  # word order matters through the n-gram branches


def test_every_weight_is_trainable_variable(tiny_encoder):
    tiny_encoder(tf.constant(["warm up"]))
    names = {w.path for w in tiny_encoder.trainable_weights}
    assert len(tiny_encoder.trainable_weights) == len(tiny_encoder.weights) == 27
    assert any("token_embedding" in n for n in names)


def test_backbone_config_round_trip(tiny_encoder):
    backbone = tiny_encoder.backbone
    config = backbone.get_config()
    assert config["dnn_dims"] == list(TINY_CONFIG["dnn_dims"])
    clone = UniversalSentenceEncoderBackbone.from_config(config)
    clone.set_weights(backbone.get_weights())
    inputs = tiny_encoder.tokenizer(tf.constant(TEXTS))
    np.testing.assert_allclose(clone(inputs).numpy(), backbone(inputs).numpy(), atol=1e-6)


def test_keras_file_round_trip(tiny_encoder, tmp_path):
    path = str(tmp_path / "model.keras")
    before = tiny_encoder(tf.constant(TEXTS)).numpy()
    tiny_encoder.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded, SentenceEncoder)
    np.testing.assert_array_equal(loaded(tf.constant(TEXTS)).numpy(), before)
    assert loaded.tokenizer.tokenize(["data scientist"]) == tiny_encoder.tokenizer.tokenize(
        ["data scientist"]
    )


def test_gradients_reach_every_weight(tiny_encoder):
    texts = tf.constant(TEXTS)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tiny_encoder(texts, training=True)[:, 0])
    grads = tape.gradient(loss, tiny_encoder.trainable_variables)
    assert all(g is not None for g in grads)
    emb_grad = grads[[i for i, v in enumerate(tiny_encoder.trainable_variables)
                      if "token_embedding" in v.path][0]]
    assert isinstance(emb_grad, tf.IndexedSlices)  # sparse: only the batch's rows


@pytest.mark.parametrize("seed", [1, 2])
def test_different_seeds_differ(sp_model_path, seed):
    a = make_tiny_encoder(sp_model_path, seed=seed)(tf.constant(["abc"])).numpy()
    b = make_tiny_encoder(sp_model_path, seed=seed + 10)(tf.constant(["abc"])).numpy()
    assert not np.allclose(a, b)
