"""Write and read lists of variables (weights, optimizer moments) without whole-table copies.

Keras' ``save_weights`` copies each variable into a new numpy array before
writing it: for the 128,000 x 512 token table and its two Adam moment tables,
transients of 262 MB each, which set the peak memory of ``domain-tune train``.
:func:`save_variables` writes the variable's own buffer (a read of a resource
variable aliases it), or, for variables in TensorFlow's copy-on-read mode
(after sparse updates or reads, where a whole read would copy), blocks of rows
read with a ``ResourceGather`` each (``sparse=True``); either way writing
costs a few MB whatever the size of the table.  Reading sparsely a variable
that is not yet in that mode would put it there, so the caller says which
case it is in.

The file is HDF5: one dataset per variable, in the order given, named by its
position, with the variable's path as an attribute; :func:`load_variables`
checks count, shapes and dtypes against the variables it fills.
:class:`VariableSnapshot` keeps the same copies in memory, refreshed in place,
and writes them in the same format on demand.
"""

import threading

import h5py
import numpy as np
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.models.layers import tf_variable
from domain_tune.outputs import atomic_file

CHUNK_BYTES = 16 * 2**20
FORMAT = "domain-tune variables 1"


def _row_blocks(variable, chunk_bytes):
    """``(start, stop)`` row ranges of about ``chunk_bytes`` each, or ``None`` for a
    variable small enough (or without rows) to handle at once."""
    shape = tuple(int(d) for d in variable.shape)
    if not shape:
        return None
    itemsize = np.dtype(tf.as_dtype(variable.dtype).as_numpy_dtype).itemsize
    row_bytes = max(itemsize * int(np.prod(shape[1:], dtype=np.int64)), 1)
    if shape[0] * row_bytes <= chunk_bytes:
        return None
    rows = max(1, chunk_bytes // row_bytes)
    return [(start, min(start + rows, shape[0])) for start in range(0, shape[0], rows)]


def _gather(variable, start, stop):
    return tf.gather(tf_variable(variable), tf.range(start, stop))


def _pieces(variable, sparse, chunk_bytes):
    """``variable``'s values as ``(rows, tensor)`` pieces, ``rows`` the index they fill.

    With ``sparse``, a table bigger than ``chunk_bytes`` comes in blocks of
    rows, each read with a gather; otherwise (and for anything smaller) the
    whole value comes in one read, which aliases the variable's buffer.
    """
    blocks = _row_blocks(variable, chunk_bytes) if sparse else None
    if not blocks:
        yield Ellipsis, tf.convert_to_tensor(tf_variable(variable))  # 0-d values too
        return
    for start, stop in blocks:
        yield slice(start, stop), _gather(variable, start, stop)


def row_fingerprints(variable, chunk_bytes=CHUNK_BYTES):
    """A fingerprint (8 bytes) of every row of a 2-D variable, read in blocks of rows.

    For checking that rows did not change (rows whose fingerprints differ
    changed) without keeping a copy of the table.
    """
    return np.concatenate([tf.fingerprint(piece).numpy()
                           for _, piece in _pieces(variable, True, chunk_bytes)])


def all_finite(variable, sparse=False, chunk_bytes=CHUNK_BYTES):
    """Whether ``variable`` holds no NaN or infinity.

    ``sparse=True`` reads tables bigger than ``chunk_bytes`` in blocks of rows:
    a whole read of a table in copy-on-read mode is a copy (262 MB of fresh
    memory for USE-m3's, 0.3 s of the end of a ``train`` run).
    """
    if not tf.as_dtype(variable.dtype).is_floating:
        return True
    return all(bool(tf.reduce_all(tf.math.is_finite(piece)))
               for _, piece in _pieces(variable, sparse, chunk_bytes))


def save_variables(path, variables, sparse=False, chunk_bytes=CHUNK_BYTES):
    """Write ``variables`` (Keras or TF variables) to the HDF5 file ``path`` (atomically).

    ``sparse=True``: read tables bigger than ``chunk_bytes`` in blocks of rows
    (for variables in copy-on-read mode; see the module docstring).
    """

    def fill(ds, v):
        for rows, piece in _pieces(v, sparse, chunk_bytes):
            ds[rows] = np.asarray(piece)  # a view of the tensor's buffer (.numpy() copies)

    _write(path, [(np.dtype(tf.as_dtype(v.dtype).as_numpy_dtype), tuple(v.shape),
                   str(getattr(v, "path", v.name)), lambda ds, v=v: fill(ds, v))
                  for v in variables])


def _write(path, items):
    """The HDF5 file of :func:`save_variables`: ``items`` are ``(dtype, shape, name, fill(ds))``."""
    with atomic_file(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["count"] = len(items)
            for i, (dtype, shape, name, fill) in enumerate(items):
                ds = f.create_dataset(f"{i:05d}", shape=shape, dtype=dtype)
                ds.attrs["path"] = name
                fill(ds)


class VariableSnapshot:
    """Host copies of variables, taken again in place: a copy in memory instead of a file.

    The arrays are allocated at the first :meth:`capture` (or before, by
    :meth:`reserve`) and refilled by the next ones (no new 262 MB buffer, no
    page faults, per capture).  For the best weights of early stopping, which
    change at most epochs while the training state on disk is written less
    often: :meth:`save` writes them in :func:`save_variables`' format when
    needed, :meth:`restore` assigns them back.  ``sparse`` as in
    :func:`save_variables`.
    """

    def __init__(self, sparse=False, chunk_bytes=CHUNK_BYTES):
        self.sparse = sparse
        self.chunk_bytes = chunk_bytes
        self.arrays = None
        self.names = None
        self.captured = False
        self._paging = None  # the thread of reserve()

    @property
    def empty(self):
        return not self.captured

    def reserve(self, variables):
        """Allocate the copies of ``variables`` now, their pages written on a thread.

        A process's first write of fresh memory costs page faults, 0.1 s for
        a 262 MB table on a bare machine and up to 1 s on a virtual one, which
        the first :meth:`capture` would otherwise pay in the middle of
        training; the thread pays them while the caller goes on (NumPy fills
        without holding the interpreter), and :meth:`capture` waits for it.
        """
        if self.arrays is not None:
            return
        self._allocate(variables)
        self._paging = threading.Thread(target=_write_pages, args=(self.arrays,),
                                        name="snapshot-pages", daemon=True)
        self._paging.start()

    def release_unused(self):
        """Free reserved copies that no capture has used."""
        self._wait()
        if not self.captured:
            self.arrays = self.names = None

    def capture(self, variables):
        if self.arrays is None:
            self._allocate(variables)
        self._wait()
        for array, v in zip(self.arrays, variables, strict=True):
            for rows, piece in _pieces(v, self.sparse, self.chunk_bytes):
                array[rows] = np.asarray(piece)
        self.captured = True

    def _allocate(self, variables):
        self.arrays = [np.empty(tuple(int(d) for d in v.shape),
                                np.dtype(tf.as_dtype(v.dtype).as_numpy_dtype))
                       for v in variables]
        self.names = [str(getattr(v, "path", v.name)) for v in variables]

    def _wait(self):
        if self._paging is not None:
            self._paging.join()
            self._paging = None

    def save(self, path):
        _write(path, [(a.dtype, a.shape, name, lambda ds, a=a: ds.__setitem__(Ellipsis, a))
                      for a, name in zip(self.arrays, self.names)])

    def restore(self, variables, sparse=None):
        """Assign the copies back (``sparse``: in row blocks; default: as captured)."""
        sparse = self.sparse if sparse is None else sparse
        for array, v in zip(self.arrays, variables, strict=True):
            _assign(v, array, sparse, self.chunk_bytes)


def _write_pages(arrays, page=4096):
    """Write a zero in every memory page of ``arrays`` (fresh, contiguous)."""
    for array in arrays:
        flat = array.reshape(-1).view(np.uint8)
        flat[::page] = 0


def _assign(variable, ds, sparse, chunk_bytes):
    value = tf_variable(variable)
    blocks = _row_blocks(variable, chunk_bytes) if sparse else None
    if blocks and hasattr(value, "scatter_update"):
        for start, stop in blocks:
            value.scatter_update(tf.IndexedSlices(ds[start:stop], tf.range(start, stop)))
    else:
        variable.assign(ds[...])


def load_variables(path, variables, sparse=False, chunk_bytes=CHUNK_BYTES):
    """Assign the values saved by :func:`save_variables` to ``variables`` (same order).

    ``sparse=True`` assigns big tables in blocks of rows (a scatter update each,
    which puts the variable in copy-on-read mode; no whole-table transient);
    otherwise each variable is assigned at once.
    """
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadInputError(f"cannot read saved training state {path}: {e}") from None
    with f:
        if f.attrs.get("format") != FORMAT or int(f.attrs.get("count", -1)) != len(variables):
            raise BadInputError(
                f"saved training state {path} does not match this model "
                f"({f.attrs.get('count')} variables saved, {len(variables)} expected)"
            )
        for i, v in enumerate(variables):
            ds = f[f"{i:05d}"]
            if tuple(ds.shape) != tuple(int(d) for d in v.shape):
                raise BadInputError(
                    f"saved training state {path} does not match this model: "
                    f"{ds.attrs.get('path')} has shape {ds.shape}, expected {tuple(v.shape)}"
                )
            _assign(v, ds, sparse, chunk_bytes)
