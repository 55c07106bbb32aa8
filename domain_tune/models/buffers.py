"""Host buffers that become TensorFlow tensors without a copy.

Two ways for a NumPy array and a tensor to share memory:

* :func:`shared_tensor` hands an aligned NumPy array to TensorFlow through
  DLPack (TensorFlow's CPU kernels require a buffer to start at a multiple of
  64 bytes; malloc gives 16, :func:`aligned_empty` gives 64).  TensorFlow does
  not own that memory, so a variable built on it copies it at its first
  sparse access (a gather, a scatter) or in-place update: 262 MB for USE-m3's
  table, at the first call of the model.
* :func:`empty_tensor` allocates the tensor in TensorFlow (uninitialised) and
  gives a writable NumPy view of it: filled through the view, it becomes a
  variable's buffer with no copy at all, then or later.  :func:`shared_tensor`
  of such a view returns its tensor.

:func:`zeros_tensor` is a tensor of the second kind whose zero pages are not
written: on Linux its memory is handed back to the kernel
(``madvise(MADV_DONTNEED)``), which maps a cleared page only where something
writes it.  The optimizer's moments of an embedding table then cost nothing
for the rows training never touches.
"""

import ctypes
import os
import sys

import numpy as np

ALIGNMENT = 64  # bytes: what TensorFlow's CPU kernels require of a tensor's buffer


def aligned_empty(shape, dtype, alignment=ALIGNMENT):
    """``np.empty(shape, dtype)`` whose data starts at a multiple of ``alignment`` bytes."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + size].view(dtype).reshape(shape)


def _memory(tensor, nbytes):
    """The bytes of a CPU ``tensor``, writable, as a ctypes array holding the tensor."""
    import tensorflow as tf

    class _Capsule:  # what np.from_dlpack takes: an object with __dlpack__
        def __init__(self, capsule):
            self.capsule = capsule

        def __dlpack__(self, stream=None, **kwargs):
            return self.capsule

        def __dlpack_device__(self):
            return (1, 0)  # kDLCPU

    address = np.from_dlpack(_Capsule(tf.experimental.dlpack.to_dlpack(tensor))).ctypes.data
    memory = (ctypes.c_byte * nbytes).from_address(address)
    memory.tensor = tensor  # the memory lives as long as a view of it
    return memory


def empty_tensor(shape, dtype):
    """``(tensor, view)``: an uninitialised tensor that TensorFlow owns, and a writable view of it.

    Write the tensor's values through ``view`` before anything reads the
    tensor; drop ``view`` (and other references to the tensor) before a
    variable is made from it, so that the variable is its only owner and
    updates it in place.

    The memory is not advised into transparent huge pages
    (``madvise(MADV_HUGEPAGE)``, as NumPy does for its own arrays of 4 MiB
    and more).  Where the kernel compacts memory for such regions when they
    are first written (``/sys/kernel/mm/transparent_hugepage/defrag`` set to
    ``madvise``, a common default), a fragmented host stalls in that
    compaction: filling USE-m3's 262 MB table took 0.79-0.83 s with the
    advice and 0.21-0.22 s without it, in fresh processes on a 2-core
    AVX-512 virtual machine (the whole cold ``eval-sts``, 5.1 -> 4.5 s).
    """
    import tensorflow as tf

    shape = tuple(int(d) for d in shape)
    dtype = np.dtype(tf.as_dtype(dtype).as_numpy_dtype)
    tensor = tf.raw_ops.Empty(shape=shape, dtype=tf.as_dtype(dtype), init=False)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes == 0:
        return tensor, np.empty(shape, dtype)
    return tensor, np.ndarray(shape, dtype, buffer=_memory(tensor, nbytes))


def _owning_tensor(array):
    """The tensor whose whole memory ``array`` is (a view from :func:`empty_tensor`), else None."""
    base = array.base
    while isinstance(base, np.ndarray):
        base = base.base
    tensor = getattr(base, "tensor", None) if isinstance(base, ctypes.Array) else None
    if (tensor is None or not array.flags.c_contiguous
            or array.ctypes.data != ctypes.addressof(base) or array.nbytes != ctypes.sizeof(base)
            or tuple(tensor.shape) != array.shape):
        return None
    return tensor


def shared_tensor(array):
    """``array`` as a ``tf.Tensor`` on the same memory (DLPack), or a copy where that fails.

    ``tf.convert_to_tensor`` of a NumPy array copies it first (and the
    tensor may copy it again for alignment): 0.2-0.5 s for the table.  A
    variable assigned a tensor takes its buffer (and copies it before an
    in-place update while another tensor still shares it).  Only an array
    aligned as TensorFlow requires (:func:`aligned_empty`) is shared: its
    kernels abort on a misaligned buffer.  A view of a whole tensor from
    :func:`empty_tensor` gives that tensor.
    """
    import tensorflow as tf

    owner = _owning_tensor(array)
    if owner is not None and owner.dtype.as_numpy_dtype == array.dtype:
        return owner
    if array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0:
        try:
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        except Exception:  # an older NumPy, or a layout DLPack refuses
            pass
    return tf.convert_to_tensor(array)


MADV_DONTNEED = 4  # Linux: private anonymous pages read back as zeros, mapped when written
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def zeros_tensor(shape, dtype="float32"):
    """A zero tensor that TensorFlow owns, whose pages are mapped only where they are written.

    For a variable's initial value (the variable takes the buffer).
    ``tf.zeros`` writes every page of it at once: for the two Adam moments of
    USE-m3's table, 524 MB and 128,000 page faults at the first step.  Here
    the tensor is allocated uninitialised and its whole pages are given back
    to the kernel (``madvise(MADV_DONTNEED)``: on Linux, private anonymous
    memory, as malloc's is, then reads as zeros and is mapped again, cleared,
    page by page when written).  The partial pages at either end are
    written.  Elsewhere, or if ``madvise`` refuses, every byte is written.
    """
    tensor, view = empty_tensor(shape, dtype)
    flat = view.reshape(-1).view(np.uint8)
    advised = _advise(flat.ctypes.data, flat.nbytes, MADV_DONTNEED, PAGE)
    if advised is None:
        flat[:] = 0
    else:
        start, stop = advised
        flat[:start] = 0
        flat[stop:] = 0
    return tensor


def _advise(address, length, advice, unit):
    """``madvise`` the whole ``unit``-aligned units of a range (Linux); their offsets, or None.

    None if there is no whole unit in the range, or the system refuses.
    """
    start = -address % unit
    stop = start + max(length - start, 0) // unit * unit
    if not sys.platform.startswith("linux") or stop <= start:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(address + start, stop - start, advice) != 0:
        return None
    return start, stop
