"""Embedding caches: a ``.npy`` of embeddings and, beside it, what made it.

``domain-tune embed ... --out corpus.npy`` writes ``corpus.npy.json`` next to
the matrix: the model (as given to ``--model``), a *fingerprint* of the model
(its embeddings of a few fixed probe texts), the number of rows and a hash of
the texts embedded.  ``domain-tune match --corpus-embeddings corpus.npy``
reuses the matrix only if the model in use reproduces the fingerprint (to
within float noise) and the corpus is the same texts: a cache made by another
model, or from other texts, is refused rather than silently mixed.
"""

import hashlib
import json
import os

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.outputs import atomic_file

FORMAT = "domain-tune embeddings"
VERSION = 1
PROBES = [
    "data scientist", "registered nurse", "Datenwissenschaftler",
    "infirmière", "软件工程师", "The quick brown fox jumps over the lazy dog.",
]
TOLERANCE = 1e-4  # largest difference of a probe embedding's value accepted as the same model


def sidecar_path(npy_path):
    return f"{os.fspath(npy_path)}.json"


class TextsHash:
    """sha256 of a sequence of texts (each length-prefixed, so boundaries count)."""

    def __init__(self):
        self._h = hashlib.sha256()
        self.count = 0

    def update(self, texts):
        for t in texts:
            b = str(t).encode("utf-8")
            self._h.update(len(b).to_bytes(8, "little"))
            self._h.update(b)
            self.count += 1
        return self

    def hexdigest(self):
        return self._h.hexdigest()


def texts_sha256(texts):
    return TextsHash().update(texts).hexdigest()


def fingerprint(model):
    """The model's embeddings of :data:`PROBES` (a list of lists of floats)."""
    from domain_tune.embedding import encode

    return np.round(encode(model, PROBES), 6).tolist()


def metadata(model, model_spec, rows, dim, texts_hash, source=None, column=None):
    return {
        "format": FORMAT, "version": VERSION, "model": model_spec, "rows": int(rows),
        "dim": int(dim), "texts_sha256": texts_hash, "source": source, "column": column,
        "fingerprint": {"texts": PROBES, "embeddings": fingerprint(model)},
    }


def write_sidecar(path, meta):
    """Write ``meta`` as JSON at ``path`` (complete or not at all)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f)


def read_sidecar(npy_path, option="--corpus-embeddings"):
    side = sidecar_path(npy_path)
    if not os.path.isfile(side):
        raise BadInputError(
            f"{option} {npy_path}: no {os.path.basename(side)} beside it, so the model that made "
            "it is unknown; write it with domain-tune embed (or delete it to embed anew)"
        )
    try:
        with open(side, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInputError(f"{option} {npy_path}: cannot read {side} ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadInputError(f"{option} {npy_path}: {side} is not a domain-tune embeddings record")
    return meta


def same_model(meta, model):
    """True if ``model`` reproduces the fingerprint recorded in ``meta``."""
    recorded = np.asarray(meta["fingerprint"]["embeddings"], dtype=np.float32)
    from domain_tune.embedding import encode

    current = encode(model, meta["fingerprint"]["texts"])
    return recorded.shape == current.shape and float(np.abs(recorded - current).max()) <= TOLERANCE


def load_cache(npy_path, model, model_spec, texts, option="--corpus-embeddings"):
    """The cached matrix for ``texts`` embedded by ``model``; raises :class:`BadInputError` otherwise.

    Checks, in order: the record beside the file, the model fingerprint, the
    shape, the texts.  The matrix is read into memory (float32).
    """
    npy_path = os.fspath(npy_path)
    if not npy_path.lower().endswith(".npy"):
        raise BadInputError(f"{option} {npy_path}: name a .npy file (as domain-tune embed writes)")
    if os.path.isdir(npy_path):
        raise BadInputError(f"{option} {npy_path} is a directory; name a .npy file")
    meta = read_sidecar(npy_path, option)
    if meta.get("precision", "float32") != "float32":
        raise BadInputError(
            f"{option} {npy_path} holds {meta['precision']} codes; matching reads float32 "
            "embeddings (embed without --precision), or build an index with domain-tune index "
            f"--precision {meta['precision']}"
        )
    if not same_model(meta, model):
        raise BadInputError(
            f"{option} {npy_path} was made by another model ({meta.get('model')}), not by "
            f"{model_spec}; embed the corpus again with this model or delete the file"
        )
    try:
        matrix = np.load(npy_path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise BadInputError(f"{option} {npy_path}: not a readable .npy file ({e})") from None
    if matrix.ndim != 2 or list(matrix.shape) != [meta.get("rows"), meta.get("dim")]:
        raise BadInputError(f"{option} {npy_path}: shape {matrix.shape} does not match its record "
                            f"({meta.get('rows')} x {meta.get('dim')}); embed the corpus again")
    if matrix.shape[0] != len(texts):
        raise BadInputError(
            f"{option} {npy_path} holds {matrix.shape[0]:,} "
            f"embedding{'' if matrix.shape[0] == 1 else 's'} but the corpus has "
            f"{len(texts):,} text{'' if len(texts) == 1 else 's'}; embed the corpus again"
        )
    if meta.get("texts_sha256") != texts_sha256(texts):
        raise BadInputError(
            f"{option} {npy_path} was made from other texts than this corpus; embed the corpus again"
        )
    del matrix
    matrix = np.asarray(np.load(npy_path), dtype=np.float32)  # one copy in memory, not two
    check_finite(matrix, f"{option} {npy_path}", "; embed the corpus again")
    return matrix


def check_finite(matrix, what, hint=""):
    """Raise :class:`BadInputError` if a row of ``matrix`` holds NaN or an infinity."""
    if np.isfinite(matrix).all():
        return
    rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    raise BadInputError(f"{what}: {len(rows):,} row{'' if len(rows) == 1 else 's'} hold NaN or "
                        f"infinite values (first: row {rows[0]}){hint}")


def save_cache(npy_path, matrix, meta):
    """Write ``matrix`` and its record (each complete or not at all)."""
    npy_path = os.fspath(npy_path)
    with atomic_file(npy_path, ".npy") as tmp:
        np.save(tmp, np.asarray(matrix, dtype=np.float32))
        write_sidecar(sidecar_path(npy_path), meta)
