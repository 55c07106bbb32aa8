"""Variables written in row blocks and read back, and per-row fingerprints."""

import h5py
import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.training.state_io import (
    VariableSnapshot, all_finite, load_variables, row_fingerprints, save_variables,
)


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [
        tf.Variable(rng.normal(size=(1000, 16)).astype(np.float32)),  # 64 kB: chunked below
        tf.Variable(rng.normal(size=(16,)).astype(np.float32)),
        tf.Variable(np.int64(seed)),
    ]


@pytest.mark.parametrize("sparse", [False, True])
def test_round_trip_in_row_blocks(tmp_path, sparse):
    path = str(tmp_path / "state.h5")
    saved = _variables(1)
    save_variables(path, saved, sparse=sparse, chunk_bytes=4096)  # 64 rows per block
    assert not (tmp_path / "state.h5.tmp").exists()
    with h5py.File(path) as f:
        assert f["00000"].shape == (1000, 16)
    target = _variables(2)
    load_variables(path, target, sparse=sparse, chunk_bytes=4096)
    for a, b in zip(saved, target):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mismatched_state_is_a_clear_error(tmp_path):
    path = str(tmp_path / "state.h5")
    save_variables(path, _variables(1))
    with pytest.raises(BadInputError, match="does not match"):
        load_variables(path, _variables(1)[:2])
    with pytest.raises(BadInputError, match="shape"):
        load_variables(path, [tf.Variable(np.zeros((999, 16), np.float32)), *_variables(1)[1:]])
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(BadInputError, match="cannot read"):
        load_variables(str(tmp_path / "broken.h5"), _variables(1))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("row, value", [(None, 0.0), (0, np.nan), (517, np.inf), (999, -np.inf)])
def test_all_finite_finds_a_bad_value_in_any_block(sparse, row, value):
    v = _variables(1)[0]
    if row is not None:  # a scatter, as an optimizer's: the table is in copy-on-read mode
        v.scatter_update(tf.IndexedSlices(tf.fill((1, 16), value), tf.constant([row])))
    assert all_finite(v, sparse, chunk_bytes=4096) == (row is None)  # 64 rows per block
    assert all_finite(_variables(1)[2], sparse)  # a scalar


def test_row_fingerprints_find_changed_rows():
    v = tf.Variable(np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    before = row_fingerprints(v, chunk_bytes=256)  # 8 rows per block
    assert before.shape == (300, 8)
    v.scatter_update(tf.IndexedSlices(tf.ones((2, 8)), tf.constant([5, 297])))
    after = row_fingerprints(v, chunk_bytes=256)
    assert np.flatnonzero(np.any(before != after, axis=1)).tolist() == [5, 297]


@pytest.mark.parametrize("sparse", [False, True])
def test_snapshot_captures_in_place_restores_and_saves(tmp_path, sparse):
    variables = _variables(1)
    expected = [v.numpy().copy() for v in variables]
    snap = VariableSnapshot(sparse, chunk_bytes=4096)
    assert snap.empty
    snap.capture(variables)
    buffers = [id(a) for a in snap.arrays]
    for v, other in zip(variables, _variables(2)):
        v.assign(other)
    snap.restore(variables)
    for v, e in zip(variables, expected):
        np.testing.assert_array_equal(v.numpy(), e)
    snap.save(str(tmp_path / "snap.h5"))  # the format load_variables reads
    target = _variables(3)
    load_variables(str(tmp_path / "snap.h5"), target)
    for v, e in zip(target, expected):
        np.testing.assert_array_equal(v.numpy(), e)
    snap.capture(target[:1] + _variables(4)[1:])  # refilled, not reallocated
    assert [id(a) for a in snap.arrays] == buffers
    np.testing.assert_array_equal(snap.arrays[1], _variables(4)[1].numpy())


@pytest.mark.parametrize("sparse", [False, True])
def test_snapshot_reserved_ahead_is_the_one_captured(sparse):
    variables = _variables(1)
    snap = VariableSnapshot(sparse, chunk_bytes=4096)
    snap.reserve(variables)
    assert snap.empty and [a.shape for a in snap.arrays] == [(1000, 16), (16,), ()]
    buffers = [id(a) for a in snap.arrays]
    snap.reserve(_variables(2))  # once
    snap.capture(variables)
    assert not snap.empty and [id(a) for a in snap.arrays] == buffers
    for a, v in zip(snap.arrays, variables):
        np.testing.assert_array_equal(a, v.numpy())
    snap.release_unused()  # used: kept
    assert [id(a) for a in snap.arrays] == buffers


def test_snapshot_reservation_that_no_capture_used_is_freed():
    snap = VariableSnapshot()
    snap.reserve(_variables(1))
    snap.release_unused()
    assert snap.arrays is None and snap.empty
    snap.capture(_variables(2))  # allocated again when needed
    np.testing.assert_array_equal(snap.arrays[0], _variables(2)[0].numpy())
