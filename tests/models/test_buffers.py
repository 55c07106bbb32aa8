"""Host buffers shared with TensorFlow: aligned arrays, TensorFlow-owned tensors, lazy zeros."""

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.models import buffers


def _address(tensor):
    return np.from_dlpack(_Capsule(tf.experimental.dlpack.to_dlpack(tensor))).ctypes.data


class _Capsule:
    def __init__(self, capsule):
        self.capsule = capsule

    def __dlpack__(self, stream=None, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return (1, 0)


def test_aligned_empty():
    for shape in [(3, 5), (1000, 7), (17, 512)]:
        a = buffers.aligned_empty(shape, np.float32)
        assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
        assert a.ctypes.data % 64 == 0


def test_shared_tensor_of_a_misaligned_array_is_a_copy():
    raw = np.arange(65, dtype=np.float32)
    a = next(raw[k:k + 64] for k in (0, 1) if raw[k:].ctypes.data % 64)  # a misaligned start
    t = buffers.shared_tensor(a)
    a[0] = -1.0
    assert isinstance(t, tf.Tensor) and float(t[0]) != -1.0


def test_shared_tensor_of_an_aligned_array_shares_its_memory():
    a = buffers.aligned_empty((40, 3), np.float32)
    a[:] = 2.0
    t = buffers.shared_tensor(a)
    assert _address(t) == a.ctypes.data
    np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_empty_tensor_is_written_through_its_view(dtype):
    tensor, view = buffers.empty_tensor((37, 5), dtype)
    assert tensor.shape == (37, 5) and tensor.dtype == tf.as_dtype(dtype)
    assert view.shape == (37, 5) and view.dtype == np.dtype(dtype) and view.flags.writeable
    view[:] = np.arange(37 * 5).reshape(37, 5)
    np.testing.assert_array_equal(tensor.numpy(), np.arange(37 * 5).reshape(37, 5))
    # the view of the whole tensor gives the tensor itself; a part of it is shared by DLPack
    assert buffers.shared_tensor(view) is tensor
    part = buffers.shared_tensor(view[:10])
    assert part is not tensor and part.shape == (10, 5)
    np.testing.assert_array_equal(part.numpy(), view[:10])


def test_a_view_keeps_its_tensor_memory_alive():
    tensor, view = buffers.empty_tensor((1000, 64), "float32")
    del tensor
    view[:] = 3.0
    for _ in range(5):  # allocations that would reuse freed memory
        buffers.empty_tensor((1000, 64), "float32")[1][:] = -1.0
    assert (view == 3.0).all()


def test_empty_tensor_of_no_elements():
    tensor, view = buffers.empty_tensor((0, 4), "float32")
    assert tensor.shape == (0, 4) and view.shape == (0, 4)


def test_a_variable_takes_the_buffer_of_an_empty_tensor():
    tensor, view = buffers.empty_tensor((64, 8), "float32")
    view[:] = 1.0
    address = view.ctypes.data
    variable = tf.Variable(tensor)
    del tensor, view
    assert _address(variable.read_value()) == address
    variable.scatter_update(tf.IndexedSlices(tf.fill((1, 8), 5.0), tf.constant([2])))
    expected = np.ones((64, 8), np.float32)
    expected[2] = 5.0
    np.testing.assert_array_equal(variable.numpy(), expected)


@pytest.mark.parametrize("shape", [(1,), (3, 7), (1024,), (2049, 3), (300, 512), (4096, 257)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_zeros_tensor_is_zero_even_on_reused_memory(shape, dtype):
    for _ in range(3):  # memory freed with other values in it, likely handed out again
        dirty, view = buffers.empty_tensor(shape, dtype)
        view[...] = 7
        del dirty, view
        zeros = buffers.zeros_tensor(shape, dtype)
        assert zeros.shape == shape and zeros.dtype == tf.as_dtype(dtype)
        assert not np.any(zeros.numpy())


def test_a_variable_of_zeros_tensor_updates_like_one_of_tf_zeros():
    ours = tf.Variable(buffers.zeros_tensor((5000, 16)))
    reference = tf.Variable(tf.zeros((5000, 16)))
    for v in (ours, reference):
        v.scatter_add(tf.IndexedSlices(tf.ones((3, 16)), tf.constant([0, 4000, 4999])))
        v.assign_add(tf.fill((5000, 16), 0.5))
    np.testing.assert_array_equal(ours.numpy(), reference.numpy())
