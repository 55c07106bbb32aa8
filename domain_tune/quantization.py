"""Compact embeddings: float16, int8 (calibrated scalar quantisation) and binary codes.

As sentence-transformers' ``quantize_embeddings`` does: ``int8`` maps each
dimension's calibrated range ``[low, high]`` (from calibration embeddings, by
default the embeddings themselves) onto 256 steps; ``binary`` keeps the sign of
each dimension, packed 8 to a byte.  A search over codes ranks by an
approximate score and rescores its best candidates with the float32
embeddings (:mod:`domain_tune.indexing`).

Scores against codes are asymmetric: the query stays float32.  For int8 the
score is ``q . dequantize(code)`` up to a per-query constant, so
``(q * scale) . code`` ranks the same; for binary it is ``q . sign(code)``.
"""

from typing import Optional

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.outputs import atomic_file

PRECISIONS = ("float32", "float16", "int8", "binary")
STORED = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise BadInputError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    return precision


def bytes_per_entry(precision: str, dim: int) -> int:
    """Memory of one embedding's codes."""
    check_precision(precision)
    return {"float32": 4 * dim, "float16": 2 * dim, "int8": dim,
            "binary": (dim + 7) // 8}[precision]


def calibrate(embeddings: np.ndarray) -> dict:
    """Per-dimension ``low``/``high`` of ``embeddings`` (the int8 calibration)."""
    e = np.asarray(embeddings, dtype=np.float32)
    if not len(e):
        raise BadInputError("int8 calibration needs at least one embedding")
    return {"low": e.min(axis=0).tolist(), "high": e.max(axis=0).tolist()}


def _scale(calibration):
    low = np.asarray(calibration["low"], dtype=np.float32)
    high = np.asarray(calibration["high"], dtype=np.float32)
    return low, np.maximum(high - low, 1e-12) / np.float32(255.0)


def quantize(embeddings: np.ndarray, precision: str, calibration: Optional[dict] = None):
    """``embeddings`` (float32 rows) as ``precision`` codes; int8 uses ``calibration``
    (:func:`calibrate`, computed from ``embeddings`` when ``None``).  Returns
    ``(codes, calibration or None)``."""
    check_precision(precision)
    e = np.asarray(embeddings, dtype=np.float32)
    if precision == "float32":
        return e, None
    if precision == "float16":
        return e.astype(np.float16), None
    if precision == "binary":
        return np.packbits(e > 0, axis=1), None
    calibration = calibration or calibrate(e)
    low, step = _scale(calibration)
    codes = np.clip(np.rint((e - low) / step), 0, 255) - 128
    return codes.astype(np.int8), calibration


def dequantize(codes: np.ndarray, precision: str, dim: int,
               calibration: Optional[dict] = None) -> np.ndarray:
    """float32 rows that the codes stand for (binary: +-1 per dimension)."""
    check_precision(precision)
    if precision in ("float32", "float16"):
        return np.asarray(codes, dtype=np.float32)
    if precision == "binary":
        return np.unpackbits(codes, axis=1, count=dim).astype(np.float32) * 2 - 1
    low, step = _scale(calibration)
    return (codes.astype(np.float32) + 128) * step + low


class CodeScorer:
    """Approximate scores of float32 queries against codes, one corpus tile at a time
    (the ``block`` protocol of :func:`domain_tune.similarity.exact_top_k`)."""

    keys = None

    def __init__(self, codes: np.ndarray, precision: str, dim: int,
                 calibration: Optional[dict] = None):
        self.rows, self.precision, self.dim = codes, check_precision(precision), dim
        self.step = _scale(calibration)[1] if precision == "int8" else None

    def block(self, queries, query_embeddings):
        q = np.asarray(query_embeddings, dtype=np.float32)
        if self.precision == "int8":  # q . (code * step + low) ranks as (q * step) . code
            q = q * self.step
            return lambda rows: q @ self.rows[rows].astype(np.float32).T
        if self.precision == "binary":
            return lambda rows: q @ dequantize(self.rows[rows], "binary", self.dim).T
        return lambda rows: q @ self.rows[rows].astype(np.float32).T


def quantize_npy(path: str, precision: str, chunk: int = 65536) -> Optional[dict]:
    """Rewrite the float32 ``.npy`` at ``path`` as ``precision`` codes, in chunks of rows
    (int8 calibrated on every row); returns the calibration (int8) or ``None``."""

    check_precision(precision)
    if precision == "float32":
        return None
    source = np.load(path, mmap_mode="r")
    calibration = None
    if precision == "int8":
        low = np.full(source.shape[1], np.inf, np.float32)
        high = np.full(source.shape[1], -np.inf, np.float32)
        for s in range(0, len(source), chunk):
            part = np.asarray(source[s : s + chunk])
            np.minimum(low, part.min(axis=0), out=low)
            np.maximum(high, part.max(axis=0), out=high)
        calibration = {"low": low.tolist(), "high": high.tolist()}
    width = bytes_per_entry(precision, source.shape[1]) // np.dtype(STORED[precision]).itemsize
    with atomic_file(path, ".npy") as tmp:
        codes = np.lib.format.open_memmap(tmp, mode="w+", dtype=STORED[precision],
                                          shape=(len(source), width))
        for s in range(0, len(source), chunk):
            codes[s : s + chunk] = quantize(np.asarray(source[s : s + chunk]), precision,
                                            calibration)[0]
        codes.flush()
        del codes, source
    return calibration
