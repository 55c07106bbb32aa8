import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG
from domain_tune.errors import BadInputError
from domain_tune.models.semi_frozen import SemiFrozenEmbedding, with_strategy
from domain_tune.models.use_m3 import UniversalSentenceEncoderBackbone

PRETRAINED, NEW, DIM = 10, 3, 4
# ids mixing pretrained rows (0..9) and new rows (10..12); rows 4..8 and 12 are not used
IDS = np.array([[0, 10, 3, 11], [2, 2, 10, 9]], dtype=np.int32)


def _layer(mode="semi-frozen", seed=0):
    layer = SemiFrozenEmbedding(PRETRAINED, NEW, DIM, mode=mode, name="token_embedding")
    rng = np.random.default_rng(seed)
    layer.set_pretrained(rng.normal(size=(PRETRAINED, DIM)).astype("float32"))
    layer.set_new_rows(rng.normal(size=(NEW, DIM)).astype("float32"))
    return layer


def _train(layer, steps=3):
    optimizer = keras.optimizers.Adam(learning_rate=0.1)
    target = tf.ones(IDS.shape + (DIM,))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(layer(IDS) - target))
        grads = tape.gradient(loss, layer.trainable_variables)
        optimizer.apply_gradients(zip(grads, layer.trainable_variables))


def test_output_is_plain_lookup_in_full_table():
    layer = _layer()
    table = layer.full_table()
    assert table.shape == (PRETRAINED + NEW, DIM)
    np.testing.assert_array_equal(layer(IDS).numpy(), table[IDS])
    # and the same as a keras Embedding holding that table
    plain = keras.layers.Embedding(PRETRAINED + NEW, DIM)
    plain.build()
    plain.embeddings.assign(table)
    np.testing.assert_array_equal(layer(IDS).numpy(), plain(IDS).numpy())


def test_semi_frozen_training_moves_only_new_rows():
    layer = _layer()
    before = layer.full_table()
    _train(layer)
    after = layer.full_table()
    assert [v.name for v in layer.trainable_variables] == ["new_embeddings"]
    # every pretrained row bit-identical, used in the batch or not
    assert np.array_equal(after[:PRETRAINED], before[:PRETRAINED])
    # the new rows of the batch moved
    for row in (10, 11):
        assert not np.allclose(after[row], before[row])


@pytest.mark.parametrize("mode", ["semi-frozen", "trainable"])
def test_gradients_are_sparse_and_hold_only_the_batch_rows(mode):
    layer = _layer(mode)
    ids = np.array([[3, 12, 3], [12, 7, 0]], dtype=np.int32)  # new row 2 only
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(ids))
    grads = dict(zip([v.name for v in layer.trainable_variables],
                     tape.gradient(loss, layer.trainable_variables)))
    new = grads["new_embeddings"]
    assert isinstance(new, tf.IndexedSlices)
    assert sorted(new.indices.numpy().tolist()) == [2, 2]  # no placeholder rows
    np.testing.assert_array_equal(tf.convert_to_tensor(new).numpy()[:, 0], [0.0, 0.0, 2.0])
    if mode == "trainable":
        old = grads["pretrained_embeddings"]
        assert isinstance(old, tf.IndexedSlices)
        assert sorted(old.indices.numpy().tolist()) == [0, 3, 3, 7]


@pytest.mark.parametrize(
    "mode, trainable, moved",
    [
        ("semi-frozen", ["new_embeddings"], "new"),
        ("trainable", ["new_embeddings", "pretrained_embeddings"], "both"),
        ("frozen", [], "none"),
    ],
)
def test_modes(mode, trainable, moved):
    layer = _layer(mode)
    assert sorted(v.name for v in layer.trainable_variables) == trainable
    before = layer.full_table()
    if trainable:
        _train(layer)
    after = layer.full_table()
    assert np.array_equal(after[:PRETRAINED], before[:PRETRAINED]) == (moved != "both")
    assert np.array_equal(after[PRETRAINED:], before[PRETRAINED:]) == (moved == "none")


def test_unfreezing_the_layer_keeps_pretrained_rows_frozen():
    layer = _layer()
    layer.trainable = False
    assert layer.trainable_variables == []
    layer.trainable = True
    assert [v.name for v in layer.trainable_variables] == ["new_embeddings"]


def test_no_new_rows():
    layer = SemiFrozenEmbedding(PRETRAINED, 0, DIM)
    table = np.arange(PRETRAINED * DIM, dtype="float32").reshape(PRETRAINED, DIM)
    layer.set_pretrained(table)
    layer.set_new_rows(np.zeros((0, DIM)))
    np.testing.assert_array_equal(layer(IDS % PRETRAINED).numpy(), table[IDS % PRETRAINED])
    assert layer.trainable_variables == []


def test_set_pretrained_leaves_new_rows_and_checks_shapes():
    layer = _layer()
    new_before = layer.full_table()[PRETRAINED:]
    layer.set_pretrained(np.zeros((PRETRAINED, DIM)))
    np.testing.assert_array_equal(layer.full_table()[PRETRAINED:], new_before)
    assert not layer.full_table()[:PRETRAINED].any()
    with pytest.raises(ValueError, match="shape"):
        layer.set_pretrained(np.zeros((PRETRAINED + NEW, DIM)))
    with pytest.raises(ValueError, match="shape"):
        layer.set_new_rows(np.zeros((NEW + 1, DIM)))
    with pytest.raises(ValueError, match="mode"):
        SemiFrozenEmbedding(PRETRAINED, NEW, DIM, mode="half")


def test_new_rows_are_not_copies_of_pretrained_rows():
    layer = SemiFrozenEmbedding(PRETRAINED, NEW, DIM)
    table = layer.full_table()
    assert not np.allclose(table[:NEW], table[PRETRAINED:])


def test_config_round_trip():
    layer = _layer("trainable")
    config = layer.get_config()
    assert config["pretrained_rows"] == PRETRAINED
    assert config["new_rows"] == NEW
    assert config["output_dim"] == DIM
    assert config["mode"] == "trainable"
    clone = SemiFrozenEmbedding.from_config(config)
    assert clone.get_config() == config
    clone.set_pretrained(layer.full_table()[:PRETRAINED])
    clone.set_new_rows(layer.full_table()[PRETRAINED:])
    np.testing.assert_array_equal(clone(IDS).numpy(), layer(IDS).numpy())
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(revived, SemiFrozenEmbedding) and revived.mode == "trainable"


def _tiny_backbone(mode):
    embedding = SemiFrozenEmbedding(PRETRAINED, NEW, TINY_CONFIG["embedding_dim"], mode=mode,
                                    name="token_embedding")
    return UniversalSentenceEncoderBackbone(
        **TINY_CONFIG,
        vocabulary_size=PRETRAINED + NEW,
        embedding=keras.layers.serialize(embedding),
        name="backbone",
    )


@pytest.mark.parametrize("mode", ["semi-frozen", "frozen"])
def test_keras_file_round_trip_inside_backbone(tmp_path, mode):
    backbone = _tiny_backbone(mode)
    emb = backbone.token_embedding
    assert isinstance(emb, SemiFrozenEmbedding)
    names = [w.path for w in backbone.trainable_weights]
    assert ("token_embedding/new_embeddings" in names) == (mode == "semi-frozen")
    assert "token_embedding/pretrained_embeddings" not in names
    inputs = {"token_ids": IDS, "padding_mask": np.ones(IDS.shape, bool)}
    before = backbone(inputs).numpy()
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded.token_embedding, SemiFrozenEmbedding)
    assert loaded.token_embedding.get_config() == emb.get_config()
    np.testing.assert_array_equal(loaded.token_embedding.full_table(), emb.full_table())
    np.testing.assert_array_equal(loaded(inputs).numpy(), before)
    assert [w.path for w in loaded.trainable_weights] == names


def test_with_strategy_keeps_outputs(tiny_encoder):
    texts = tf.constant(["data scientist", "infermiere", ""])
    before = tiny_encoder(texts).numpy()
    n_weights = len(tiny_encoder.weights)
    for strategy, n_trainable in [("trainable", n_weights), ("frozen", n_weights - 1),
                                  ("semi-frozen", n_weights - 1)]:
        copy = with_strategy(tiny_encoder, strategy)
        assert copy.backbone.token_embedding.mode == strategy
        assert len(copy.weights) == n_weights
        assert len(copy.trainable_weights) == n_trainable
        np.testing.assert_array_equal(copy(texts).numpy(), before)
    with pytest.raises(BadInputError, match="strategy"):
        with_strategy(tiny_encoder, "half")
    with pytest.raises(BadInputError, match="Keras encoder"):
        with_strategy(tiny_encoder.backbone, "frozen")


@pytest.mark.real
def test_preset_with_semi_frozen_embedding(use_m3):
    from domain_tune.models.loading import from_preset

    embedding = SemiFrozenEmbedding(128000, 2, 512, name="token_embedding")
    model = from_preset("use-m3", embedding=keras.layers.serialize(embedding))
    emb = model.backbone.token_embedding
    np.testing.assert_array_equal(
        emb.full_table()[:128000], use_m3.backbone.token_embedding.embeddings.numpy()
    )
    texts = tf.constant(["data scientist", "infermiere", "Ein Mann spielt Gitarre."])
    np.testing.assert_array_equal(model(texts).numpy(), use_m3(texts).numpy())
