"""Batched embedding of many texts, in memory or streamed to a file.

Texts are sorted by length before batching so that each padded batch holds
texts of similar length (little padding), then put back in input order.  The
model runs inside one ``tf.function`` with a ``(None,)`` string signature, so
it is traced once whatever the batch or text lengths.
"""

import collections
import errno
import json
import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from domain_tune.datasets.texts import as_text
from domain_tune.errors import BadInputError, DomainTuneWarning
from domain_tune.progress import progress_bar

DEFAULT_BATCH_SIZE = 256
IN_FLIGHT = 2  # batches computed at once by encode (see _run_batches)
_FNS = weakref.WeakKeyDictionary()


def inference_fn(model):
    """A traced-once inference function of ``model`` (cached per model).

    Traced without AutoGraph (``autograph=False``), as Keras traces its own
    steps: the model's code has no Python control flow on tensors to convert,
    and AutoGraph would parse and rewrite the source of every domain-tune
    method the call reaches (0.9 s of the first call; the graph is the same).
    """
    fn = _FNS.get(model)
    if fn is None:
        # a Keras model in inference mode; any other callable of a string batch as it is
        # (``hub.load(DIR)``'s object takes no ``training``)
        is_layer = isinstance(model, keras.layers.Layer)
        kwargs = {"training": False} if is_layer else {}

        # named like the TF Hub modules' argument: an exported SavedModel calls this function
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")],
                     reduce_retracing=True, autograph=False)
        def fn(inputs):
            if is_layer:
                return embeddings_output(model(inputs, **kwargs))
            try:
                out = model(inputs)
            except (TypeError, ValueError) as e:  # e.g. a function of numbers, not strings
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise BadInputError(f"the model failed on a batch of strings ({first}); "
                                    f"{MODEL_CONTRACT}") from e
            return embeddings_output(out)

        _FNS[model] = fn
    return fn


MODEL_CONTRACT = "a model must map a (batch,) string tensor to (batch, dim) embeddings"


def embeddings_output(out):
    """A model's output as a float32 ``(batch, dim)`` tensor, else a :class:`BadInputError`.

    A dictionary (a SavedModel signature's outputs) gives its ``outputs`` entry or its
    only entry; a one-element list or tuple its element.
    """
    if isinstance(out, dict):
        if "outputs" in out:
            out = out["outputs"]
        elif len(out) == 1:
            out = next(iter(out.values()))
        else:
            raise BadInputError(f"the model returned a dictionary of {', '.join(map(str, out))}, "
                                f"none of them 'outputs'; {MODEL_CONTRACT}")
    if isinstance(out, (list, tuple)) and len(out) == 1:
        out = out[0]
    try:
        out = tf.convert_to_tensor(out)
    except (TypeError, ValueError):
        raise BadInputError(f"the model returned a {type(out).__name__}, not a tensor; "
                            f"{MODEL_CONTRACT}") from None
    if out.shape.rank != 2 or not (out.dtype.is_floating or out.dtype.is_integer):
        article = "an" if out.dtype.name[0] in "aeiou" else "a"
        raise BadInputError(f"the model returned {article} {out.dtype.name} tensor of shape "
                            f"{out.shape.as_list() if out.shape.rank is not None else '(unknown)'}; "
                            f"{MODEL_CONTRACT}")
    return out if out.dtype == tf.float32 else tf.cast(out, tf.float32)


def encode(model, texts, batch_size=DEFAULT_BATCH_SIZE, progress=False, label="Embedding"):
    """Embed ``texts`` (a sequence of str; None and NaN are blank) as a float32
    ``(len(texts), dim)`` array.

    Each distinct text is embedded once and its row copied to every place it
    occurs (domain files repeat texts: 9% of the 24,294 STS-B sentences of
    ``scripts/bench_speed`` are repeats), so equal texts get equal rows.
    """
    if batch_size < 1:
        raise BadInputError("--batch-size must be at least 1")
    texts = [t if isinstance(t, str) else as_text(t) for t in texts]  # None, NaN: blank
    texts = _cap_lengths(texts)
    n = len(texts)
    fn = inference_fn(model)
    if n == 0:
        return np.zeros((0, int(fn(tf.constant([""])).shape[-1])), np.float32)
    index = {}
    where = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, n)
    distinct = list(index)
    order = np.argsort([len(t) for t in distinct], kind="stable")
    batches = [order[start : start + batch_size] for start in range(0, len(distinct), batch_size)]
    out = None
    with progress_bar(len(distinct), label, enabled=progress and n > batch_size) as bar:
        for idx, emb in _run_batches(fn, distinct, batches):
            if out is None:
                out = np.empty((len(distinct), emb.shape[1]), np.float32)
            out[idx] = emb
            bar.update(len(idx))
    return out if len(distinct) == n else out[where]


MAX_TEXT_CHARS = 100_000


def _cap_lengths(texts):
    """``texts`` with any text over :data:`MAX_TEXT_CHARS` cut to that length, with one warning.

    The encoder averages over every token of a text, and its memory grows with the text:
    one text of 3 million characters took 14 GB.  A sentence encoder says little about a
    whole book anyway; split long documents into passages.
    """
    long = [i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if not long:
        return texts
    warnings.warn(f"{len(long):,} text{'' if len(long) == 1 else 's'} longer than "
                  f"{MAX_TEXT_CHARS:,} characters (first: item {long[0]}, {len(texts[long[0]]):,} "
                  f"characters) embedded from {'its' if len(long) == 1 else 'their'} first "
                  f"{MAX_TEXT_CHARS:,} characters; split long documents into passages",
                  EmbedWarning, stacklevel=3)
    texts = list(texts)
    for i in long:
        texts[i] = texts[i][:MAX_TEXT_CHARS]
    return texts


def _string_batch(texts):
    """A string tensor of ``texts``; a text that is not valid Unicode (a lone surrogate) is a
    :class:`BadInputError` naming it, not TensorFlow's conversion error."""
    try:
        return tf.constant(texts)
    except (ValueError, UnicodeEncodeError):
        for t in texts:
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as e:
                raise BadInputError(f"a text is not valid Unicode ({e.reason} at character "
                                    f"{e.start}): {t[:40]!r}") from None
        raise


def _run_batches(fn, texts, batches):
    """``(indices, embeddings)`` of each batch of ``texts``, in order, :data:`IN_FLIGHT` at once.

    One batch at a time leaves a core idle while the batch's small ops run one after
    another (tokenization, the distinct tokens, segment sums) and while Python
    assembles the next batch; a second batch in flight fills those gaps: +13%
    sentences/s on a 2-core AVX2 host, +3-5% with AVX-512.  Each batch is computed
    as it would be alone (same outputs).  Until the function has been traced, the
    first batch runs alone, so that it is traced once.
    """
    def run(idx):
        emb = fn(_string_batch([texts[i] for i in idx])).numpy()
        if emb.shape[0] != len(idx):
            raise BadInputError(f"the model returned {emb.shape[0]} rows for {len(idx)} texts; "
                                f"{MODEL_CONTRACT}")
        if not np.isfinite(emb).all():
            bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
            raise BadInputError(
                f"the model gave NaN or infinite embeddings ({len(bad)} of {len(idx)} texts of a "
                f"batch, first {texts[idx[bad[0]]][:40]!r}); a model whose training diverged "
                "gives them: use another model or run")
        return idx, emb

    traced = getattr(fn, "experimental_get_tracing_count", lambda: 0)() > 0
    pending = collections.deque()
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="domain-tune-encode") as pool:
        for i, idx in enumerate(batches):
            if i == 0 and not traced:
                yield run(idx)
                continue
            pending.append(pool.submit(run, idx))
            if len(pending) >= IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --- streaming to files ------------------------------------------------------

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
    from domain_tune import embedding_cache
    from domain_tune.quantization import check_precision, quantize_npy

    unit, first = numbering
    fmt = output_format(out_path)
    check_precision(precision)
    if precision != "float32" and fmt != "npy":
        raise BadInputError(f"precision {precision} needs a .npy output (got {out_path})")
    tmp = f"{out_path}.tmp-{os.getpid()}"
    dim = None
    row = 0
    blank = []
    hashed = embedding_cache.TextsHash()
    try:
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
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    if blank:
        shown = ", ".join(map(str, blank[:5])) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        what = f"1 blank text ({unit}" if len(blank) == 1 else f"{len(blank)} blank texts ({unit}s"
        warnings.warn(f"{what} {shown}) embedded as the empty string, one row each, so that rows "
                      "stay aligned with the input", EmbedWarning, stacklevel=2)
    return {"texts": row, "dim": dim, "out": out_path, "format": fmt, "blank": len(blank),
            "precision": precision}


class EmbedWarning(DomainTuneWarning):
    """Input that was embedded, but probably not as meant."""


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
