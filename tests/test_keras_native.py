"""Keras-native use: a run's model.keras loads with plain Keras, and the encoder is a layer."""

import numpy as np

from tests.conftest import make_tiny_encoder
from tests.test_api import _python

TEXTS = ["data scientist", "registered nurse", "Datenwissenschaftler"]


def test_keras_load_model_after_import_domain_tune(tmp_path, tiny_model_dir):
    import domain_tune as dt

    expected = dt.encode(dt.load_model(tiny_model_dir), TEXTS)
    np.save(tmp_path / "expected.npy", expected)
    for imports in ("import domain_tune\nimport keras", "import tensorflow\nimport domain_tune\nimport keras"):
        code = (f"{imports}\nimport numpy as np, tensorflow as tf\n"
                f"m = keras.saving.load_model({str(tiny_model_dir / 'model.keras')!r})\n"
                f"got = m(tf.constant({TEXTS!r})).numpy()\n"
                f"np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}), "
                "atol=1e-5)\nprint(type(m).__name__)")
        result = _python(code)
        assert result.returncode == 0, (imports, result.stderr[-2000:])
        assert result.stdout.strip() == "SentenceEncoder", imports


def test_encoder_as_a_layer_of_a_users_model_trains_with_fit(tmp_path, sp_model_path):
    import keras
    import tensorflow as tf

    encoder = make_tiny_encoder(sp_model_path, seed=3)
    inputs = keras.Input(shape=(), dtype="string", name="title")
    logit = keras.layers.Dense(1, name="is_health")(encoder(inputs))
    model = keras.Model(inputs, logit)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    texts = ["registered nurse", "nurse practitioner", "medical assistant", "surgeon",
             "data scientist", "data engineer", "software developer", "data analyst"]
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0], np.float32)
    x = tf.constant(texts)
    table_before = np.array(encoder.backbone.token_embedding.weights[0])
    loss_before = float(model.evaluate(x, labels, verbose=0))
    history = model.fit(x, labels, epochs=15, batch_size=4, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < loss_before * 0.8
    assert not np.allclose(np.array(encoder.backbone.token_embedding.weights[0]), table_before)
    path = tmp_path / "classifier.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_a_copy_from_the_config_alone_says_how_to_give_it_the_tokenizer(sp_model_path):
    """keras.models.clone_model rebuilds layers from their configs, which do not hold the
    SentencePiece proto (an asset): the copy says what to do instead of only 'pass proto='."""
    import keras
    import pytest
    import tensorflow as tf

    encoder = make_tiny_encoder(sp_model_path, seed=4)
    copy = keras.models.clone_model(encoder)
    with pytest.raises(ValueError,
                       match="clone_model\\) needs `copy.set_proto\\(original.proto\\)`"):
        copy(tf.constant(TEXTS))
    copy.tokenizer.set_proto(encoder.tokenizer.proto)
    assert copy(tf.constant(TEXTS)).shape == (3, 8)
