"""Embeddings streamed to a file: ``.npy`` (with its cache record), ``.csv`` or ``.jsonl``.

What ``domain-tune embed INPUT --out FILE`` writes.  Texts arrive in chunks and
memory stays bounded by one chunk; the file is written under a temporary name
beside the target and appears only when complete.  A ``.npy`` gets its record
beside it (:mod:`domain_tune.embedding_cache`: the model's fingerprint, a hash
of the texts), so that ``match --corpus-embeddings`` reuses it only for the
same model and texts.
"""

import errno
import json
import os
import warnings

import numpy as np

from domain_tune import embedding_cache
from domain_tune.embedding import DEFAULT_BATCH_SIZE, EmbedWarning, encode
from domain_tune.errors import BadInputError
from domain_tune.outputs import atomic_file
from domain_tune.progress import progress_bar

OUTPUT_FORMATS = {".npy": "npy", ".csv": "csv", ".jsonl": "jsonl"}


def output_format(path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise BadInputError(
            f"--out {path}: unknown output format {ext or '(no extension)'}; use .npy, .csv or .jsonl"
        )
    return OUTPUT_FORMATS[ext]


def embed_to_file(model, chunks, n_texts, out_path, batch_size=DEFAULT_BATCH_SIZE, progress=True,
                  numbering=("line", 1), record=None, precision="float32"):
    """Embed an iterable of text chunks into ``out_path`` (.npy, .csv or .jsonl).

    Memory stays bounded by one chunk.  The file appears only when complete:
    it is written beside the target under a temporary name and renamed.
    ``numbering`` names the input's texts in warnings: ``("line", 1)`` for a
    text file, ``("row", 2)`` for a CSV column (the header is row 1).  With
    ``record`` (``{"model": the --model value, "source": input path,
    "column": ...}``), a ``.npy`` gets its record beside it (``OUT.npy.json``:
    the model's fingerprint and a hash of the texts; see
    :mod:`domain_tune.embedding_cache`), so that ``match --corpus-embeddings``
    can reuse it safely.  ``precision`` (``.npy`` only): ``float16``, ``int8``
    (calibrated per dimension on every row; the calibration goes in the record) or
    ``binary`` (signs packed 8 to a byte) codes of the rows instead of float32
    (:mod:`domain_tune.quantization`).
    """
    from domain_tune.quantization import check_precision, quantize_npy

    unit, first = numbering
    fmt = output_format(out_path)
    check_precision(precision)
    if precision != "float32" and fmt != "npy":
        raise BadInputError(f"precision {precision} needs a .npy output (got {out_path})")
    dim = None
    row = 0
    blank = []
    hashed = embedding_cache.TextsHash()
    with atomic_file(out_path) as tmp:
        with progress_bar(n_texts, "Embedding", enabled=progress) as bar:
            sink = None
            for chunk in chunks:
                emb = encode(model, chunk, batch_size=batch_size)
                blank.extend(row + k + first for k, t in enumerate(chunk) if not str(t).strip())
                if sink is None:
                    dim = emb.shape[1]
                    sink = _open_sink(fmt, tmp, n_texts, dim)
                sink.write(chunk, emb, row)
                hashed.update(chunk)
                row += len(chunk)
                bar.update(len(chunk))
            if sink is None:
                raise BadInputError("no texts to embed")
            sink.close()
        if row != n_texts:  # pragma: no cover - the counting pass and the read disagree
            raise RuntimeError(f"read {row} texts, expected {n_texts}")
        calibration = quantize_npy(tmp, precision) if fmt == "npy" else None
        if fmt == "npy" and record is not None:
            meta = embedding_cache.metadata(model, record.get("model"), row, dim,
                                            hashed.hexdigest(), record.get("source"),
                                            record.get("column"))
            meta.update({"precision": precision, "calibration": calibration})
            embedding_cache.write_sidecar(embedding_cache.sidecar_path(out_path), meta)
    if blank:
        shown = ", ".join(map(str, blank[:5])) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        what = f"1 blank text ({unit}" if len(blank) == 1 else f"{len(blank)} blank texts ({unit}s"
        warnings.warn(f"{what} {shown}) embedded as the empty string, one row each, so that rows "
                      "stay aligned with the input", EmbedWarning, stacklevel=2)
    return {"texts": row, "dim": dim, "out": out_path, "format": fmt, "blank": len(blank),
            "precision": precision}


def reserve(path):
    """Allocate the blocks of the file at ``path`` (its current size) now.

    A memory-mapped ``.npy`` is created sparse: on a disk too full for it, a
    write into the mapping kills the process with SIGBUS instead of raising.
    Reserving the space first makes that an ``OSError`` (ENOSPC) before
    anything is embedded.  Where the file system cannot reserve (EOPNOTSUPP,
    EINVAL) nothing is done.
    """
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - macOS, Windows
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise OSError(e.errno, e.strerror, path) from None
    finally:
        os.close(fd)


def _open_sink(fmt, path, n, dim):
    return {"npy": _NpySink, "csv": _CsvSink, "jsonl": _JsonlSink}[fmt](path, n, dim)


class _NpySink:
    def __init__(self, path, n, dim):
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        reserve(path)


    def write(self, texts, emb, row):
        self.array[row : row + len(emb)] = emb

    def close(self):
        self.array.flush()
        del self.array


class _CsvSink:
    def __init__(self, path, n, dim):
        import csv

        self.f = open(path, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.f)
        self.writer.writerow(["text"] + [f"e{i}" for i in range(dim)])

    def write(self, texts, emb, row):
        for text, vec in zip(texts, emb):
            self.writer.writerow([text] + [f"{v:.7g}" for v in vec])

    def close(self):
        self.f.close()


class _JsonlSink:
    def __init__(self, path, n, dim):
        self.f = open(path, "w", encoding="utf-8")

    def write(self, texts, emb, row):
        for text, vec in zip(texts, emb):
            self.f.write(json.dumps({"text": text, "embedding": [round(float(v), 7) for v in vec]}))
            self.f.write("\n")

    def close(self):
        self.f.close()
