"""The token embedding's sparse reads and how its table is written."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from domain_tune.models import layers
from domain_tune.models.semi_frozen import SemiFrozenEmbedding


def _pair(rows=50, dim=6):
    plain = keras.layers.Embedding(rows, dim, name="e")
    ours = layers.Embedding(rows, dim, name="e")
    plain.build((None,))
    ours.build((None,))
    ours.set_weights(plain.get_weights())
    return plain, ours


@pytest.mark.parametrize("sparse", [True, False])
def test_embedding_matches_keras_and_gradient_is_sparse(sparse):
    plain, ours = _pair()
    ours.sparse_reads = sparse
    ids = tf.constant([[3, 7, 3], [0, 49, 1]])
    np.testing.assert_array_equal(ours(ids).numpy(), plain(ids).numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(ours(ids) ** 2)
    (grad,) = tape.gradient(loss, [ours.embeddings.value])
    assert isinstance(grad, tf.IndexedSlices)
    assert set(grad.indices.numpy().tolist()) == {0, 1, 3, 7, 49}


def test_sparse_read_after_scatter_update_sees_the_update():
    _, ours = _pair()
    table = ours.embeddings.value
    table.scatter_update(tf.IndexedSlices(tf.fill((1, 6), 5.0), tf.constant([7])))
    np.testing.assert_array_equal(ours(tf.constant([7])).numpy(), np.full((1, 6), 5.0))


def _read(variable):
    """A whole read of ``variable`` as an array on the read's own buffer."""
    return np.asarray(tf.convert_to_tensor(variable))


def test_share_on_read_reads_without_copies_and_every_read_keeps_its_value():
    _, ours = _pair()
    table = ours.embeddings.value
    ours(tf.constant([3, 7]))  # a gather: copy-on-read mode from here on
    first, second = _read(table), _read(table)
    assert first.ctypes.data != second.ctypes.data  # each whole read copied the table
    layers.share_on_read(ours.weights)
    first, second = _read(table), _read(table)
    assert first.ctypes.data == second.ctypes.data  # both share the variable's buffer
    before = first.copy()
    # a sparse update while those reads are alive: the variable changes, the reads do not
    table.scatter_update(tf.IndexedSlices(tf.fill((1, 6), 5.0), tf.constant([7])))
    np.testing.assert_array_equal(first, before)
    np.testing.assert_array_equal(ours(tf.constant([7])).numpy(), np.full((1, 6), 5.0))
    np.testing.assert_array_equal(_read(table)[7], np.full(6, 5.0))
    # and so does a dense in-place update
    layers.share_on_read([table])
    held = _read(table)
    table.assign_add(tf.ones_like(table))
    np.testing.assert_array_equal(held[7], np.full(6, 5.0))
    np.testing.assert_array_equal(_read(table)[7], np.full(6, 6.0))


def test_share_on_read_covers_variables_restored_from_a_saved_model(tmp_path):
    module = tf.Module()
    module.table = tf.Variable(np.arange(40, dtype=np.float32).reshape(10, 4))
    tf.saved_model.save(module, str(tmp_path / "sm"))
    table = tf.saved_model.load(str(tmp_path / "sm")).table
    assert type(table).__name__ == "UninitializedVariable"  # what TensorFlow restores
    tf.gather(table, [1, 2])  # copy-on-read mode
    assert _read(table).ctypes.data != _read(table).ctypes.data
    layers.share_on_read([table])
    first, second = _read(table), _read(table)
    assert first.ctypes.data == second.ctypes.data


def test_initial_table_starts_the_variable_from_it_without_a_copy():
    from domain_tune.models import buffers, weights

    table = buffers.aligned_empty((50, 6), np.float32)
    table[:] = np.random.default_rng(0).normal(size=table.shape)
    with layers.initial_table(weights.pretrained_table({"token_embedding/embeddings": table})):
        ours = layers.Embedding(50, 6, embeddings_initializer="zeros")
        ours.build((None,))
        other = layers.Embedding(40, 6, embeddings_initializer="zeros")  # another shape
        other.build((None,))
    np.testing.assert_array_equal(ours.embeddings.numpy(), table)
    assert _read(ours.embeddings.value).ctypes.data == table.ctypes.data  # not a copy
    assert ours.built_from_table and not other.built_from_table
    assert ours.get_config()["embeddings_initializer"]["class_name"] == "Zeros"
    np.testing.assert_array_equal(other.embeddings.numpy(), 0.0)
    after = layers.Embedding(50, 6, embeddings_initializer="zeros")  # outside the block
    after.build((None,))
    np.testing.assert_array_equal(after.embeddings.numpy(), 0.0)
    assert not after.built_from_table


def test_use_sparse_reads_sets_every_embedding_layer(tiny_encoder):
    emb = tiny_encoder.backbone.token_embedding
    assert isinstance(emb, layers.Embedding) and emb.sparse_reads
    layers.use_sparse_reads(tiny_encoder, False)
    assert emb.sparse_reads is False
    layers.use_sparse_reads(tiny_encoder, True)
    assert emb.sparse_reads is True


def test_variable_array_gives_the_values_without_a_second_copy():
    v = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
    wrapped = layers.VariableArray(v)
    first = np.array(wrapped)
    np.testing.assert_array_equal(first, v.numpy())
    assert np.array(wrapped, dtype=np.float64).dtype == np.float64


def test_model_saved_with_keras_embedding_loads_into_ours(tmp_path, sp_model_path, monkeypatch):
    """.keras files written with keras.layers.Embedding keep loading, weights intact."""
    from domain_tune.models import use_m3
    from domain_tune.models.loading import load_model
    from tests.conftest import make_tiny_encoder

    with monkeypatch.context() as m:  # build the model as an earlier version did
        m.setattr(use_m3.dt_layers, "Embedding", keras.layers.Embedding)
        old = make_tiny_encoder(sp_model_path)
    assert type(old.backbone.token_embedding) is keras.layers.Embedding
    texts = tf.constant(["a nurse", "software developer"])
    expected = old(texts).numpy()
    run = tmp_path / "run"
    run.mkdir()
    old.save(run / "model.keras")
    loaded = load_model(str(run))
    assert type(loaded.backbone.token_embedding) is layers.Embedding
    np.testing.assert_allclose(loaded(texts).numpy(), expected, atol=1e-6)


def test_semi_frozen_saves_both_tables(tmp_path):
    layer = SemiFrozenEmbedding(5, 2, 3, mode="semi-frozen")
    layer.build()
    layer.set_pretrained(np.arange(15, dtype=np.float32).reshape(5, 3))
    layer.set_new_rows(np.full((2, 3), -1.0, np.float32))
    store = {}
    layer.save_own_variables(store)
    np.testing.assert_array_equal(np.array(store["0"]), np.arange(15).reshape(5, 3))
    np.testing.assert_array_equal(np.array(store["1"]), np.full((2, 3), -1.0))


@pytest.mark.parametrize("sparse, expected, absent", [
    (True, "ResourceGather", "ReadVariableOp"),
    (False, "ReadVariableOp", "ResourceGather"),
])
def test_read_kind_follows_sparse_reads(sparse, expected, absent):
    """Sparse: a ResourceGather of the rows; dense: one whole read (no sparse access,
    which would put the variable in TensorFlow's copy-on-read mode)."""
    _, ours = _pair()
    ours.sparse_reads = sparse
    graph = tf.function(lambda ids: ours(ids)).get_concrete_function(
        tf.TensorSpec([None], tf.int32)).graph
    ops_used = {op.type for op in graph.get_operations()}
    assert expected in ops_used and absent not in ops_used


def test_a_zeros_table_is_built_as_zeros_without_writing_it():
    layer = layers.Embedding(3000, 512, embeddings_initializer="zeros", name="e")
    layer.build((None,))
    table = layer.embeddings.numpy()
    assert table.shape == (3000, 512) and not table.any()
    ids = tf.constant([5, 2999])
    layers.tf_variable(layer.embeddings).scatter_update(tf.IndexedSlices(tf.ones((2, 512)), ids))
    np.testing.assert_array_equal(layer(ids).numpy(), np.ones((2, 512)))
    other = layers.Embedding(30, 4, embeddings_initializer="ones", name="o")
    other.build((None,))
    assert (other.embeddings.numpy() == 1).all()  # other initializers as Keras builds them


def test_keras_file_table_is_read_into_the_variable_directly(tmp_path, monkeypatch):
    """A ``.keras`` file's table is read from its HDF5 dataset straight into TensorFlow's
    memory (not through Keras' NumPy copy), with the same values; other layouts still go
    through Keras."""
    ids = keras.Input((None,), dtype="int32")
    model = keras.Model(ids, layers.Embedding(40, 6, name="e")(ids))
    path = tmp_path / "m.keras"
    model.save(path)
    through_keras = []
    original = keras.layers.Embedding.load_own_variables
    monkeypatch.setattr(keras.layers.Embedding, "load_own_variables",
                        lambda self, store: through_keras.append(1) or original(self, store))
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.get_layer("e").embeddings.numpy(),
                                  model.get_layer("e").embeddings.numpy())
    assert through_keras == []
    # a table of another shape than the layer's: Keras' own loading says so
    bigger = keras.Model(ids, layers.Embedding(41, 6, name="e")(ids))
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras also warns about the containers it skips
        bigger.load_weights(path)
    assert through_keras
