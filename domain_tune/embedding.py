"""Batched embedding of many texts in memory (files: :mod:`domain_tune.embedding_files`).

Texts are sorted by length before batching so that each padded batch holds
texts of similar length (little padding), then put back in input order.  The
model runs inside one ``tf.function`` with a ``(None,)`` string signature, so
it is traced once whatever the batch or text lengths.
"""

import collections
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from domain_tune.text_values import as_text
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


class EmbedWarning(DomainTuneWarning):
    """Input that was embedded, but probably not as meant."""
