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
"""

import os

import h5py
import numpy as np
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.models.layers import tf_variable

CHUNK_BYTES = 16 * 2**20
FORMAT = "domain-tune variables 1"


def _read_rows(variable, start, stop):
    value = tf_variable(variable)
    return tf.gather(value, tf.range(start, stop)).numpy()


def row_fingerprints(variable, chunk_bytes=CHUNK_BYTES):
    """A fingerprint (8 bytes) of every row of a 2-D variable, read in blocks of rows.

    For checking that rows did not change (rows whose fingerprints differ
    changed) without keeping a copy of the table.
    """
    rows_total, width = (int(d) for d in variable.shape)
    itemsize = np.dtype(tf.as_dtype(tf_variable(variable).dtype).as_numpy_dtype).itemsize
    rows = max(1, chunk_bytes // max(width * itemsize, 1))
    parts = [tf.fingerprint(tf.gather(tf_variable(variable), tf.range(start, min(start + rows, rows_total)))).numpy()
             for start in range(0, rows_total, rows)]
    return np.concatenate(parts) if parts else np.zeros((0, 8), np.uint8)


def save_variables(path, variables, sparse=False, chunk_bytes=CHUNK_BYTES):
    """Write ``variables`` (Keras or TF variables) to the HDF5 file ``path`` (atomically).

    ``sparse=True``: read tables bigger than ``chunk_bytes`` in blocks of rows
    (for variables in copy-on-read mode; see the module docstring).
    """
    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["count"] = len(variables)
            for i, v in enumerate(variables):
                shape = tuple(int(d) for d in v.shape)
                dtype = np.dtype(tf.as_dtype(tf_variable(v).dtype).as_numpy_dtype)
                row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
                ds = f.create_dataset(f"{i:05d}", shape=shape, dtype=dtype)
                ds.attrs["path"] = str(getattr(v, "path", v.name))
                if sparse and len(shape) >= 1 and shape[0] * row_bytes > chunk_bytes:
                    rows = max(1, chunk_bytes // max(row_bytes, 1))
                    for start in range(0, shape[0], rows):
                        stop = min(start + rows, shape[0])
                        ds[start:stop] = _read_rows(v, start, stop)
                else:
                    # np.asarray of the read aliases the variable's buffer (.numpy() copies)
                    ds[...] = np.asarray(tf.convert_to_tensor(tf_variable(v)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _assign(variable, ds, sparse, chunk_bytes):
    value = tf_variable(variable)
    shape = ds.shape
    row_bytes = ds.dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
    if sparse and len(shape) >= 1 and shape[0] * row_bytes > chunk_bytes and hasattr(
        value, "scatter_update"
    ):
        rows = max(1, chunk_bytes // max(row_bytes, 1))
        for start in range(0, shape[0], rows):
            stop = min(start + rows, shape[0])
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
