"""Building blocks of the USE-multilingual encoder that Keras does not ship.

* :class:`MaskedNGramConv`: one n-gram convolution with ReLU and a residual
  connection, zeroing padded positions first so that a window never reads a
  neighbouring text or padding (the per-text zero padding of the reference).
* :class:`SqrtNPooling`: project token features and pool them with the
  "sqrt-n" combiner, ``(sum_t (x_t W + b)) / sqrt(n)``, computed as
  ``(sum_t x_t) W / sqrt(n) + sqrt(n) b`` so the projection runs once per text
  instead of once per token.
* :class:`Embedding`: a ``keras.layers.Embedding`` that reads only the
  rows of the batch (:func:`gather_rows`, :func:`use_sparse_reads`), and
  can start from a given table (:func:`initial_table`).
"""

import contextlib
import contextvars
import functools
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def tf_variable(variable):
    """The ``tf.Variable`` behind a Keras variable (a TF variable is returned as is)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def gather_rows(variable, ids, sparse=True):
    """Rows ``ids`` of a table variable.

    ``sparse=True`` reads the rows alone (``tf.gather`` on the variable: a
    ``ResourceGather``).  ``ops.take`` first reads the whole variable, which is
    free until a sparse access (a lazy optimizer's scatter, or a gather) puts
    the variable in TensorFlow's copy-on-read mode; from then on every whole
    read copies the table (262 MB for USE-m3: one short text took 13.6 ms
    instead of 1.2 ms after a lazy-adam step).  The mode also makes every dense
    update copy the table first, so a table that a dense optimizer updates
    is better read whole (``sparse=False``): that is what
    :func:`use_sparse_reads` arranges.
    """
    table = tf_variable(variable)
    if sparse:
        return tf.gather(table, ids)  # on a variable: ResourceGather
    # A whole read first (free outside copy-on-read mode); tf.gather on the
    # variable itself, which ops.take would also do, is a sparse access.
    return tf.gather(tf.convert_to_tensor(table), ids)


class VariableArray:
    """What a Keras weights store is given to write a big table: one copy at most.

    Keras' stores call ``np.array(value)``.  On a variable that reads it (a
    copy in TensorFlow's copy-on-read mode), copies it to numpy, and copies
    that again: three transients of 262 MB for the USE-m3 table.  Through this
    object ``np.array`` gets the read's own buffer (NumPy takes an array that
    ``__array__`` returns for ``copy=True`` as the copy).
    """

    def __init__(self, variable):
        self.variable = variable

    def __array__(self, dtype=None, copy=None):
        array = np.asarray(tf.convert_to_tensor(tf_variable(self.variable)))
        return array if dtype is None else array.astype(dtype, copy=False)


def use_sparse_reads(model, sparse):
    """Set how the token embeddings of ``model`` read their tables (see :func:`gather_rows`).

    Training sets ``sparse=False`` while a dense optimizer updates a trainable
    table, and ``True`` otherwise (the default of every embedding layer here).
    Takes effect for functions traced afterwards.
    """
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if hasattr(layer, "sparse_reads"):
            layer.sparse_reads = bool(sparse)


def share_on_read(variables):
    """Let whole reads of ``variables`` share their buffers until the next sparse access.

    A variable read sparsely (an embedding table's gathers, an optimizer's
    scatters) is in TensorFlow's copy-on-read mode: every whole read copies it,
    262 MB for USE-m3's table, because a sparse update would change the buffer
    under the read.  Before a run of whole reads with no update among them (a
    save reads each weight once or twice) this switches them to copy-on-write
    (``DisableCopyOnRead``, what TensorFlow's own checkpoints do): the reads
    share the buffer, and the next in-place update copies it only if a read is
    still alive, so every read keeps its value.  Distributed and non-TensorFlow
    variables are left as they are.
    """
    for variable in variables:
        var = tf_variable(variable)
        if _plain_resource_variable(var) and not tf.distribute.has_strategy():
            tf.raw_ops.DisableCopyOnRead(resource=var.handle)


def _plain_resource_variable(var):
    """A TensorFlow resource variable of one device (one restored from a SavedModel too)."""
    return (isinstance(var, tf.Variable) and not isinstance(var, tf.distribute.DistributedValues)
            and hasattr(var, "handle"))


def _mask(x, padding_mask):
    return x * ops.cast(padding_mask, x.dtype)[..., None]


_AVX512_ISAS = ("AVX512", "AVX10", "AMX", "ALL", "DEFAULT")


@functools.cache
def conv_as_matmul():
    """Whether n-gram convolutions run as matrix products (CPUs where oneDNN lacks AVX-512).

    True when the CPU has no AVX-512 or ``ONEDNN_MAX_CPU_ISA`` caps oneDNN below it;
    ``DOMAIN_TUNE_NGRAM_CONV=matmul`` or ``=conv`` forces either way.  Both compute
    the same function (to float rounding); only the speed differs.
    """
    forced = os.environ.get("DOMAIN_TUNE_NGRAM_CONV", "").strip().lower()
    if forced in ("matmul", "conv"):
        return forced == "matmul"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and not cap.startswith(_AVX512_ISAS):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:  # not Linux: assume the host's oneDNN has its fast path
        return False
    return bool(flags) and "avx512f" not in flags.split()


@keras.saving.register_keras_serializable(package="domain_tune")
class MaskedNGramConv(keras.layers.Layer):
    """``relu(conv_n(x * mask) + b) + x`` over a padded batch of tokens.

    The window of token ``t`` spans ``t - (n-1)//2 ... t + n//2`` (Keras
    ``padding="same"``), which is the context of the reference n-gram branches
    (bigram: t..t+1, trigram: t-1..t+1, 5-gram: t-2..t+2).

    The weights are those of a ``Conv1D`` sub-layer (``conv/kernel`` of shape
    ``(n, units, units)``, ``conv/bias``).  Where oneDNN may not use AVX-512
    (see :func:`conv_as_matmul`), the convolution is computed as the sum of
    ``n`` matrix products of the shifted tokens with the kernel's taps:
    there oneDNN's 1-D convolution takes a generic path 2-2.5x slower than
    its matrix product, while with AVX-512 the convolution is the faster.
    """

    def __init__(self, order, units, **kwargs):
        super().__init__(**kwargs)
        self.order = order
        self.units = units
        self.conv = keras.layers.Conv1D(
            units, order, padding="same", activation="relu", dtype=self.dtype_policy, name="conv"
        )

    def build(self, x_shape):
        self.conv.build(x_shape)
        self.built = True

    def call(self, x, padding_mask):
        masked = _mask(x, padding_mask)
        if not conv_as_matmul():
            return self.conv(masked) + x
        left, right = (self.order - 1) // 2, self.order // 2
        steps, channels = ops.shape(masked)[1], ops.shape(masked)[2]
        padded = ops.pad(masked, [[0, 0], [left, right], [0, 0]])
        out = None
        for tap, kernel in enumerate(self._taps(masked.dtype)):  # token t sees t - left + tap
            shifted = ops.reshape(padded[:, tap : tap + steps], (-1, channels))
            term = ops.matmul(shifted, kernel)
            out = term if out is None else out + term
        out = ops.relu(out + ops.cast(self.conv.bias, out.dtype))
        return ops.reshape(out, ops.shape(x)) + x

    def call_sequence(self, x, padding_mask):
        """The layer on one sequence: ``x`` (steps, channels), ``padding_mask`` (steps,).

        Equal to ``self(x[None], padding_mask[None])[0]``.  On the
        matrix-product path the shifted windows are row ranges of one padded
        copy of ``x``, which TensorFlow slices without copying (a batch of
        one would be sliced along its second axis, a copy per tap).
        """
        if not conv_as_matmul():  # a batch of one (expand_dims/squeeze: no slicing ops)
            return tf.squeeze(self(tf.expand_dims(x, 0), tf.expand_dims(padding_mask, 0)), 0)
        masked = _mask(x, padding_mask)
        left, right = (self.order - 1) // 2, self.order // 2
        window = tf.stack([tf.size(padding_mask), -1])  # (steps, all channels)
        padded = tf.pad(masked, [[left, right], [0, 0]])
        # token t sees t - left + tap; one pass sums the terms
        out = tf.add_n([ops.matmul(tf.slice(padded, [tap, 0], window), kernel)
                        for tap, kernel in enumerate(self._taps(masked.dtype))])
        return ops.relu(out + ops.cast(self.conv.bias, out.dtype)) + x

    def _taps(self, dtype):
        """The kernel's ``order`` taps, ``(channels, units)`` each, in ``dtype``."""
        return tf.unstack(ops.cast(self.conv.kernel, dtype), num=self.order)

    def tap_products(self, x):
        """Each row of ``x`` (rows, channels) times every tap: ``order`` arrays (rows, units).

        Item ``tap`` holds the products with ``kernel[tap]``.  A row's products
        depend on that row alone, so for rows that are a function of the
        token id (the first convolution of a branch) they can be computed
        once per distinct token; see :meth:`call_on_tap_products`.
        """
        return [ops.matmul(x, kernel) for kernel in self._taps(x.dtype)]

    def call_on_tap_products(self, products, positions, residual):
        """The layer's output on one sequence of tokens, from tap products of distinct rows.

        ``products`` (``order`` arrays (rows, units)) are :meth:`tap_products` of a table
        of distinct rows whose last row is zeros; ``positions`` (steps,) the
        table row of each slot of the sequence (the zero row at masked slots);
        ``residual`` (steps, units) the unmasked inputs.  Equal to
        ``self(residual[None], mask)[0]``: token ``t`` sums the products of
        the row at ``t - left + tap`` with ``kernel[tap]``, each tap gathered
        from its own block at shifted positions (no (steps, order * units)
        array is written, padded or sliced).
        """
        left, right = (self.order - 1) // 2, self.order // 2
        window = tf.reshape(tf.size(positions), [1])
        zero_row = tf.cast(tf.size(products[0], out_type=tf.int64) // self.units - 1, positions.dtype)
        shifted = tf.concat([tf.fill([left], zero_row), positions, tf.fill([right], zero_row)], 0)
        out = tf.add_n([tf.gather(rows, tf.slice(shifted, [tap], window))
                        for tap, rows in enumerate(products)])
        return ops.relu(out + ops.cast(self.conv.bias, out.dtype)) + residual

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"order": self.order, "units": self.units})
        return config


@keras.saving.register_keras_serializable(package="domain_tune")
class SqrtNPooling(keras.layers.Layer):
    """Masked sum of projected token features divided by ``sqrt(n)``."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, x_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(x_shape[-1], self.units), initializer="glorot_uniform"
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.built = True

    def call(self, x, padding_mask):
        n = ops.sum(ops.cast(padding_mask, x.dtype), axis=1, keepdims=True)
        n = ops.maximum(n, 1.0)
        pooled = ops.sum(_mask(x, padding_mask), axis=1) / ops.sqrt(n)
        return ops.matmul(pooled, ops.cast(self.kernel, x.dtype)) + ops.sqrt(n) * ops.cast(
            self.bias, x.dtype
        )

    def compute_output_shape(self, x_shape):
        return (x_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package="domain_tune")
class L2Normalize(keras.layers.Layer):
    """``x / sqrt(max(sum(x^2), epsilon))`` along the last axis."""

    def __init__(self, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        x = ops.cast(x, "float32")
        sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
        return x * ops.rsqrt(ops.maximum(sq, self.epsilon))

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


_INITIAL_TABLE = contextvars.ContextVar("domain_tune_initial_table", default=None)


@contextlib.contextmanager
def initial_table(table):
    """:class:`Embedding` layers built in this block start from ``table``.

    ``table`` is a ``(rows, dim)`` tensor; a layer of another shape uses its
    initializer as usual.  Building the preset with its pretrained table as
    the variable's initial value spares a 262 MB table filled by the
    initializer first, then overwritten (its page faults included, 0.1-0.5 s
    of CPU).  The layer's config keeps its initializer.
    """
    token = _INITIAL_TABLE.set(table)
    try:
        yield
    finally:
        _INITIAL_TABLE.reset(token)


@keras.saving.register_keras_serializable(package="domain_tune")
class Embedding(keras.layers.Embedding):
    """``keras.layers.Embedding`` with a sparse read of its table (:func:`gather_rows`).

    Same config, weights and outputs as the Keras layer; LoRA and quantized
    modes fall back to the Keras implementation.  It keeps the Keras class
    name because ``.keras`` files store a layer's weights under its class
    name: models saved with ``keras.layers.Embedding`` load into it unchanged.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sparse_reads = True  # run-time choice, not config: see use_sparse_reads
        self.built_from_table = False  # built in an initial_table block, from its table

    def build(self, input_shape=None):
        table = _INITIAL_TABLE.get()
        if table is not None and tuple(table.shape) == (self.input_dim, self.output_dim):
            self._build_from(table, input_shape)
            self.built_from_table = True
        elif isinstance(self.embeddings_initializer, keras.initializers.Zeros) and self._plain():
            # what a model read from a .keras file is built with before its weights are
            # loaded: zeros whose pages are never written unless something writes them
            from domain_tune.models.buffers import zeros_tensor

            shape = (self.input_dim, self.output_dim)
            self._build_from(zeros_tensor(shape, self.variable_dtype), input_shape)
        else:
            super().build(input_shape)

    def _build_from(self, table, input_shape):
        configured = self.embeddings_initializer
        self.embeddings_initializer = lambda shape, dtype=None: table
        try:
            super().build(input_shape)
        finally:
            self.embeddings_initializer = configured

    def _plain(self):
        """Neither LoRA nor a quantized mode: one float table, Keras' ``embeddings``."""
        return not self.lora_enabled and self.quantization_mode is None

    def call(self, inputs):
        if self.lora_enabled or self.quantization_mode is not None:
            return super().call(inputs)
        ids = inputs if inputs.dtype in ("int32", "int64") else ops.cast(inputs, "int32")
        rows = gather_rows(self._embeddings, ids, self.sparse_reads)
        return ops.cast(rows, self.compute_dtype)

    def save_own_variables(self, store):
        if self.built and self._plain():
            store["0"] = VariableArray(self._embeddings)
        else:
            super().save_own_variables(store)

    def load_own_variables(self, store):
        """Keras' loading, with a table from a ``.keras`` file read once, into TensorFlow's memory.

        Keras' store returns a NumPy copy of the stored table, which the assignment
        copies again into a tensor (262 MB each for USE-m3).  Here the HDF5 dataset is
        read straight into an uninitialised tensor that the variable then takes.  Any
        other store or layout goes through Keras.
        """
        dataset = _stored_table(store) if self.built and self._plain() else None
        variable = tf_variable(self._embeddings)
        if (dataset is None or tuple(dataset.shape) != tuple(variable.shape)
                or np.dtype(dataset.dtype) != np.dtype(variable.dtype.as_numpy_dtype)):
            return super().load_own_variables(store)
        from domain_tune.models.buffers import empty_tensor

        table, view = empty_tensor(dataset.shape, dataset.dtype)
        dataset.read_direct(view)
        del view
        self._embeddings.assign(table)


def _stored_table(store):
    """The HDF5 dataset of the one table in a Keras weights ``store`` (its entry ``"0"``), or
    None where the store is not Keras' HDF5 store or holds anything else."""
    from keras.src.saving import saving_lib

    group = getattr(store, "_h5_entry_group", None)
    if not isinstance(store, saving_lib.H5IOStore) or group is None:
        return None
    try:
        if list(store.keys()) != ["0"]:
            return None
        dataset = saving_lib.safe_get_h5_dataset(group, "0")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if "dtype" in getattr(dataset, "attrs", {}) or not hasattr(dataset, "read_direct"):
        return None  # bfloat16 and other types Keras converts itself
    return dataset
