"""The Python API: what every command does, as functions a notebook can call.

``import domain_tune`` exposes these names; TensorFlow is imported (quietly) by
the first function that needs it, not by the import.  Every function takes a
model as a ``--model`` value (``"use-m3"``, a run directory, a ``.keras``
file, a SavedModel directory, a TF Hub handle) or as a model already loaded
with :func:`load_model` (or any callable of a string batch, such as
``hub.load(DIR)``; :func:`train` and :func:`interpolate`: a name or path
only).  Bad input raises
:class:`domain_tune.errors.BadInputError` with the one-line message the
command line prints.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import numbers
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from domain_tune.errors import BadInputError, DomainTuneWarning, caller_stacklevel

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

DEFAULT_MODEL = "use-m3"
PathLike = Union[str, "os.PathLike[str]"]
ModelLike = Union[str, "os.PathLike[str]", "keras.Model"]

# what an argument annotated with one of these names must be (numpy's numbers count:
# they are registered as numbers.Integral and numbers.Real; bool is not a number here)
_KINDS = {
    "int": ("an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "bool": ("True or False", lambda v: isinstance(v, bool) or (
        type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_"))),
    "str": ("a string", lambda v: isinstance(v, str)),
    "PathLike": ("a path (str or os.PathLike)", lambda v: isinstance(v, (str, os.PathLike))),
}


def check_type(name: str, value: Any, annotation: Any, none_ok: bool = False) -> None:
    """Raise :class:`BadInputError` unless ``value`` fits ``annotation`` (``int``, ``float``,
    ``bool``, ``str``, ``PathLike``, or ``Optional`` of one; a type or its name); other
    annotations are not checked.  A wrong type would otherwise fail deep inside a comparison
    or a library call, with a message that does not name the argument."""
    kind = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    kind = kind.replace("typing.", "")
    if kind.startswith("Optional[") and kind.endswith("]"):
        kind, none_ok = kind[len("Optional["):-1], True
    if kind not in _KINDS or (value is None and none_ok):
        return
    what, fits = _KINDS[kind]
    if not fits(value):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise BadInputError(f"{name} must be {what}{' or None' if none_ok else ''}, not "
                            f"{type(value).__name__} {shown}")


def _checked(fn=None, *, own=()):
    """Check the arguments of ``fn`` against its annotations (:func:`check_type`) first,
    except those named in ``own``, which ``fn`` checks with a message of its own."""
    if fn is None:
        return functools.partial(_checked, own=own)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:  # a missing or unknown argument: Python's own message
            raise TypeError(f"{fn.__name__}(): {e}") from None
        for name, value in bound.arguments.items():
            parameter = signature.parameters[name]
            if name not in own and parameter.kind not in (parameter.VAR_KEYWORD,
                                                          parameter.VAR_POSITIONAL):
                check_type(name, value, parameter.annotation)
        return fn(*args, **kwargs)

    return wrapper


def _tensorflow():
    from domain_tune._env import import_tensorflow

    import_tensorflow()


@_checked
def load_model(model: PathLike = DEFAULT_MODEL) -> "keras.Model":
    """Load a model: a Keras 3 model mapping a ``(batch,)`` string tensor to ``(batch, 512)`` embeddings.

    ``model`` is what ``--model`` takes: the preset ``"use-m3"`` (the embedded
    USE-multilingual v3 weights), a run directory written by :func:`train`, a
    ``.keras`` file, a SavedModel directory or a TF Hub handle.
    """
    _tensorflow()
    from domain_tune.models.loading import load_model as _load

    return _load(model)


def _model(model: ModelLike) -> "keras.Model":
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    _tensorflow()
    if not callable(model):
        raise BadInputError(f"model must be what --model takes (\"use-m3\", a run directory, a "
                            f".keras file, a SavedModel directory) or a loaded model "
                            f"(load_model, hub.load), not a {type(model).__name__}")
    return model


def _texts(texts: Any, what: str = "texts", items: str = "strings") -> list:
    """``texts`` as a list of texts: any iterable of strings (list, tuple, generator, pandas
    Series, one-column DataFrame, 1-d numpy array).  One string (or bytes), ``None``, a table of
    several columns or an array of more than one dimension is a :class:`BadInputError`:
    iterating over them would embed characters, column names or rows."""
    if isinstance(texts, (str, bytes)):
        raise BadInputError(f"{what} must be a list of {items}, not one string; "
                            f"pass [text] for a single text")
    if texts is None:
        raise BadInputError(f"{what} must be a list of {items}, not None")
    if isinstance(texts, (set, frozenset, dict)):  # no order to give the rows back in
        raise BadInputError(f"{what} must be an ordered sequence of {items} (a list), not a "
                            f"{type(texts).__name__}; rows come back in the order given")
    columns = getattr(texts, "columns", None)
    if columns is not None:  # a DataFrame: iterating over it gives its column names
        if len(columns) != 1:
            raise BadInputError(f"{what} is a table of {len(columns)} columns; pass one column "
                                f"(e.g. df[{str(columns[0]) if len(columns) else 'name'!r}])")
        texts = texts.iloc[:, 0]
    ndim = getattr(texts, "ndim", 1)
    if ndim != 1:
        raise BadInputError(f"{what} must be one-dimensional, not an array of shape "
                            f"{tuple(getattr(texts, 'shape', ()))}; pass one column or .ravel() it")
    try:
        return list(texts)
    except TypeError:
        raise BadInputError(f"{what} must be a list of {items}, not a "
                            f"{type(texts).__name__}") from None


def _path(value: Any, what: str, hint: str) -> str:
    """``value`` as a path (``str`` or ``os.PathLike``); anything else is a :class:`BadInputError`
    saying what to pass instead (a loaded model or a DataFrame where a file is read)."""
    if not isinstance(value, (str, os.PathLike)):
        raise BadInputError(f"{what} must be a name or a path, not a {type(value).__name__}; "
                            f"{hint}")
    return os.fspath(value)


def _spec(model: ModelLike) -> str:
    return os.fspath(model) if isinstance(model, (str, os.PathLike)) else getattr(model, "name", "model")


@_checked
def encode(model: ModelLike, texts: Sequence[str], *, batch_size: int = 256,
           progress: bool = False) -> "np.ndarray":
    """Embed ``texts``: a float32 array of shape ``(len(texts), 512)``, rows L2-normalised.

    Texts are batched by length (little padding) and returned in input order.
    """
    texts = _texts(texts)
    encoder = _model(model)
    from domain_tune.embedding import encode as _encode

    return _encode(encoder, texts, batch_size=batch_size, progress=progress)


# --- training ------------------------------------------------------------------

# Option names of ``domain-tune train`` that differ from the field they set.
_TRAIN_ALIASES = {"embeddings": ("embeddings", "strategy"), "bucket": ("fit", "bucket_by_length"),
                  "lr": ("fit", "learning_rate")}
# train's alignment options (``--parallel FILE`` ...) -> fields of AlignOptions
_ALIGN_OPTIONS = {"parallel": "parallel", "parallel_columns": "columns", "align_weight": "weight",
                  "align_teacher": "teacher", "parallel_batch_size": "batch_size",
                  "align_loss": "loss"}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the run directory and its ``metrics.json``."""

    path: str
    metrics: dict

    def load(self) -> "keras.Model":
        """The tuned encoder (``load_model(self.path)``)."""
        return load_model(self.path)

    @property
    def card(self) -> str:
        """The run's model card (``README.md``)."""
        with open(os.path.join(self.path, "README.md"), encoding="utf-8") as f:
            return f.read()


def train_options() -> dict:
    """Every keyword :func:`train` accepts, with its default (the command's options)."""
    from domain_tune.training.run import TrainJob

    job = TrainJob(pairs_path="", out="")
    out = {}
    for field in dataclasses.fields(job):
        value = getattr(job, field.name)
        if field.name in ("pairs_path", "out", "callbacks"):
            continue
        if dataclasses.is_dataclass(value):
            out.update({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
        else:
            out[field.name] = value
    out.update({"embeddings": out.pop("strategy"), "no_sts": False, "texts": None, "quiet": False})
    out.pop("plot_texts", None)
    out.pop("sts", None)
    out.pop("verbose", None)
    out.pop("align", None)
    from domain_tune.training.distillation import AlignOptions

    align = AlignOptions()
    out.update({name: getattr(align, field) for name, field in _ALIGN_OPTIONS.items()})
    return out


def _align_job(options):
    """The :class:`AlignOptions` of ``train(..., parallel=FILE, align_weight=...)`` (None without);
    takes the alignment keywords out of ``options``."""
    from domain_tune.training.distillation import align_options

    given = {field: options.pop(name, None) for name, field in sorted(_ALIGN_OPTIONS.items())}
    parallel = given.pop("parallel")
    names = {field: name for name, field in _ALIGN_OPTIONS.items()}
    return align_options(parallel, given, names, "parallel=FILE")


@_checked
def make_train_job(pairs: PathLike, out: Optional[PathLike] = None, **options: Any):
    """A :class:`~domain_tune.training.run.TrainJob` from ``domain-tune train``'s options.

    Keywords are the command's options with ``_`` for ``-`` (``learning_rate``,
    ``batch_size``, ``no_sts``, ``embeddings``, ``texts`` as a list of strings,
    ...); any field of the job or of its nested option groups is accepted by
    its own name too, so options added to the job need no change here.
    """
    _tensorflow()
    from domain_tune.training.run import TrainJob

    _warn_ignored(options)
    job = TrainJob(pairs_path=os.fspath(pairs), out=os.fspath(out) if out is not None else _default_out())
    groups = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)
              if dataclasses.is_dataclass(getattr(job, f.name))}
    for flag in ("no_sts", "quiet"):
        check_type(flag, options.get(flag, False), bool)
    if "no_sts" in options:
        job.sts = not options.pop("no_sts")
    if "texts" in options:
        texts = options.pop("texts")
        job.plot_texts = None if texts is None else _plot_texts(texts)
    job.verbose = 0 if options.pop("quiet", False) else _fit_verbosity()
    job.align = _align_job(options)
    for name, value in options.items():
        if name == "text_columns" and isinstance(value, str):
            value = tuple(v.strip() for v in value.split(","))
        if isinstance(value, list) and name in ("text_columns", "score_range"):
            value = tuple(value)
        _check_shape(name, value)
        if name in _TRAIN_ALIASES:
            group, field = _TRAIN_ALIASES[name]
            owner = groups[group]
        elif hasattr(job, name) and name not in groups:
            owner, field = job, name
        else:
            owner = next((g for g in groups.values() if hasattr(g, name)), None)
            if owner is None:
                known = ", ".join(sorted(train_options()))
                raise BadInputError(f"train: unknown option {name!r} (options: {known})")
            field = name
        _check_option(name, value, owner, field)
        setattr(owner, field, value)
    return job


def _ignored_options(options):
    """``(names, reason)`` of the given keywords that another keyword makes ineffective (the
    command line warns about the same options)."""
    from domain_tune.training.fit import FitOptions

    multilingual = options.get("multilingual")
    off = isinstance(multilingual, str) and multilingual.strip().lower() == "none"
    rules = [
        (bool(options.get("no_sts")), ["sts_dir", "sts_limit", "multilingual_dir"]
         + ([] if off else ["multilingual"]), "has no effect with no_sts=True"),
        (not options.get("add_vocab"), ["max_new_pieces", "new_rows"], "needs add_vocab"),
        (bool(options.get("validation_file")), ["validation_split"],
         "has no effect with validation_file"),
        (options.get("loss", FitOptions.loss) == "mse", ["scale"], "has no effect with loss='mse'"),
    ]
    for applies, names, reason in rules:
        given = [n for n in names if options.get(n) is not None]
        if applies and given:
            yield given, reason


def _warn_ignored(options):
    for given, reason in _ignored_options(options):
        if len(given) > 1:
            verb, _, rest = reason.partition(" ")
            reason = f"{ {'has': 'have', 'needs': 'need'}.get(verb, verb)} {rest}"
        warnings.warn(f"train: {' and '.join(given)} {reason}; ignored", DomainTuneWarning,
                      stacklevel=caller_stacklevel())


def _plot_texts(texts):
    texts = [str(t) for t in _texts(texts)]
    if sum(1 for t in texts if t.strip()) < 2:  # as plot_similarity
        raise BadInputError("texts: need at least 2 non-empty texts")
    return texts


def _check_shape(name, value):
    """Options whose type alone does not say enough (a pair, a count, a path that is set)."""
    if name == "score_range" and not (
            isinstance(value, tuple) and len(value) == 2
            and all(_KINDS["float"][1](v) for v in value)):
        raise BadInputError(f"score_range must be two numbers (low, high), not {value!r}")
    if name == "text_columns" and not (
            isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
        raise BadInputError(f"text_columns must be two column names ('base,ref' or "
                            f"('base', 'ref')), not {value!r}")
    if name == "cpu_replicas" and value is not None and _KINDS["int"][1](value) and value < 1:
        raise BadInputError(f"cpu_replicas must be at least 1 (got {value})")
    if name in ("add_vocab", "validation_file", "sts_dir", "multilingual_dir") \
            and isinstance(value, (str, os.PathLike)) and not os.fspath(value).strip():
        raise BadInputError(f"{name} is empty; pass a path or None")


def _check_option(name, value, owner, field):
    """``train``'s option ``name`` against the annotation of the field it sets (None where the
    field's default is None; paths as ``os.PathLike`` too)."""
    spec = {f.name: f for f in dataclasses.fields(owner)}.get(field)
    if spec is None:  # a method or property of the job, not an option
        raise BadInputError(f"train: unknown option {name!r} (options: "
                            f"{', '.join(sorted(train_options()))})")
    annotation = "PathLike" if spec.type in ("str", str) and isinstance(value, os.PathLike) else spec.type
    if field == "multilingual" and isinstance(value, (list, tuple)):  # a list of languages
        return
    check_type(name, value, annotation, none_ok=spec.default is None)


def _fit_verbosity():
    """Keras' progress bar (``verbose=1``) where it renders, a terminal or a notebook; else one
    line per epoch (``2``, as the command prints): the bar's in-place updates and colour codes
    would fill a log file or a captured stdout with escape sequences."""
    import sys

    stdout = sys.stdout
    return 1 if ("ipykernel" in sys.modules
                 or (hasattr(stdout, "isatty") and stdout.isatty())) else 2


def _default_out():
    import time

    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


@_checked(own=("pairs", "model"))
def train(pairs: PathLike, out: Optional[PathLike] = None, *, model: PathLike = DEFAULT_MODEL,
          echo: Optional[Callable[[str], None]] = print, **options: Any) -> TrainResult:
    """Fine-tune on a pairs CSV, as ``domain-tune train PAIRS --out OUT`` does.

    Every option of the command is a keyword (``-`` becomes ``_``), with the
    same defaults: ``epochs=20, batch_size=8, learning_rate=1e-5, loss="mse",
    sts_dir=None, no_sts=False, sts_limit=None, texts=None, overwrite=False,
    ...``; :func:`train_options` lists them all.  ``echo`` receives the
    before/after lines (``None`` for silence); Keras reports each epoch on
    stdout, as a progress bar in a terminal or a notebook and as one line per
    epoch elsewhere (a log file); ``quiet=True`` hides it.  Returns the run
    directory and its metrics.  Raises
    :class:`~domain_tune.errors.BadInputError` on bad input (nothing is left
    at ``out``) and ``TrainingFailed`` when the loss turns non-finite.
    """
    if echo is not None and not callable(echo):
        raise BadInputError(f"echo must be a function of one line (print) or None, not "
                            f"{type(echo).__name__}")
    _tensorflow()
    from domain_tune.training.run import train_run

    pairs = _path(pairs, "pairs", "write the pairs to a CSV first (DataFrame.to_csv)")
    model = _path(model, "model", "train reads the model itself: pass what --model takes "
                  "(\"use-m3\", a run directory, a .keras file, a SavedModel directory)")
    job = make_train_job(pairs, out, model=model, **options)
    metrics = train_run(job, echo=echo or (lambda line: None))
    return TrainResult(path=metrics["out"], metrics=metrics)


# --- evaluation ----------------------------------------------------------------


@_checked
def evaluate_sts(model: ModelLike = DEFAULT_MODEL, *, split: str = "dev",
                 sts_dir: Optional[PathLike] = None, limit: Optional[int] = None,
                 similarity: str = "cosine", batch_size: int = 256,
                 progress: bool = False) -> dict:
    """STS benchmark Pearson and Spearman of ``model`` (``domain-tune eval-sts``).

    ``sts_dir`` holds ``sts-dev.csv`` etc. (default: ``$DOMAIN_TUNE_STS_DIR``,
    else a cached download).  Returns ``{"split", "n", "similarity",
    "pearson", "spearman"}``.
    """
    from domain_tune.datasets.sts import load_split

    if similarity not in ("cosine", "angular"):
        raise BadInputError(f"--similarity must be cosine or angular (got {similarity!r})")
    if limit is not None and limit < 2:
        raise BadInputError(f"--limit must be at least 2 (got {limit})")
    data = load_split(split, None if sts_dir is None else os.fspath(sts_dir), limit)
    encoder = _model(model)
    from domain_tune.evaluation.sts import evaluate_sts as _evaluate

    result = _evaluate(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                       batch_size=batch_size, progress=progress)
    return {"split": split, **result}


@_checked(own=("queries", "corpus", "tune_on"))
def evaluate_retrieval(model: ModelLike, queries: PathLike, corpus: PathLike, *,
                       query_column: str = "query", label_column: str = "label",
                       id_column: str = "conceptUri", limit: Optional[int] = None,
                       lexical_weight: float = 0.0, description_column: Optional[str] = None,
                       description_weight: float = 0.0, tune_on: Optional[PathLike] = None,
                       batch_size: int = 256, progress: bool = False) -> dict:
    """Top-1/5/10 accuracy and MRR of ranking ``corpus`` for each query (``domain-tune eval-retrieval``).

    ``queries`` and ``corpus`` are CSV files (as ``pairs esco`` writes
    ``heldout_queries.csv`` and ``corpus.csv``).  Returns ``{"n", "corpus",
    "top1", "top5", "top10", "mrr"}``.

    Hybrid scoring (:mod:`domain_tune.evaluation.hybrid`): ``lexical_weight``
    adds that times the character n-gram TF-IDF cosine of query and label;
    ``description_column`` names a second text of each corpus entry, whose
    embedding joins the label's with ``description_weight``; ``tune_on``, a
    file of validation queries (never the evaluated ones), chooses both
    weights.  The result then also holds ``"weights"`` (and ``"validation"``).
    """
    from domain_tune.datasets.retrieval_set import read_retrieval_set

    hint = "write it to a CSV first (DataFrame.to_csv)"
    queries, corpus = _path(queries, "queries", hint), _path(corpus, "corpus", hint)
    if tune_on is not None:
        tune_on = _path(tune_on, "tune_on", hint)
    data = read_retrieval_set(os.fspath(queries), os.fspath(corpus), query_column, id_column,
                              label_column, limit)
    hybrid = bool(lexical_weight or description_column or tune_on)
    if description_weight and not description_column:
        raise BadInputError("--description-weight needs --description-column")
    descriptions = validation = None
    if description_column:
        from domain_tune.datasets.files import read_csv_columns

        descriptions = read_csv_columns(os.fspath(corpus), [description_column], "corpus",
                                        {description_column: "--description-column"})
        descriptions = descriptions[description_column].tolist()
    if tune_on:
        tune = read_retrieval_set(os.fspath(tune_on), os.fspath(corpus), query_column, id_column,
                                  label_column, what="--tune-on queries")
        if set(tune.queries) & set(data.queries):
            raise BadInputError(f"--tune-on {os.fspath(tune_on)} shares queries with --queries "
                                f"{os.fspath(queries)}; choose the weights on other queries")
        validation = (tune.queries, tune.query_ids)
    encoder = _model(model)
    if hybrid:
        from domain_tune.evaluation.hybrid import HybridWeights, evaluate_hybrid

        weights = None if tune_on else HybridWeights(lexical_weight, description_weight)
        return evaluate_hybrid(
            encoder, data.queries, data.query_ids, data.corpus_labels, data.corpus_ids, weights,
            corpus_descriptions=descriptions, validation=validation, batch_size=batch_size,
            progress=progress,
        )
    from domain_tune.evaluation.retrieval import evaluate_retrieval as _evaluate

    return _evaluate(encoder, data.queries, data.query_ids, data.corpus_labels, data.corpus_ids,
                     batch_size=batch_size, progress=progress)


# --- matching ------------------------------------------------------------------


@_checked
def match(model: ModelLike, queries: Sequence[str], corpus: Sequence[str], *,
          top_k: int = 5, corpus_ids: Optional[Sequence[Any]] = None,
          min_score: Optional[float] = None,
          corpus_embeddings: Optional[Union["np.ndarray", PathLike]] = None,
          lexical_weight: float = 0.0,
          descriptions: Optional[Sequence[str]] = None, description_weight: float = 0.5,
          batch_size: int = 256, progress: bool = False) -> "pd.DataFrame":
    """The ``top_k`` corpus entries for each query, best first (``domain-tune match``).

    Returns a DataFrame with one row per match: ``query``, ``rank`` (1 =
    best), ``corpus_id`` (``corpus_ids``, default the entry's position from
    1), ``corpus_text``, ``cosine`` and ``angular`` similarity.  Matches under
    ``min_score`` (cosine) are left out.  ``corpus_embeddings`` is an array,
    or a ``.npy`` file written by ``domain-tune embed`` (checked against the
    model and the corpus texts).  Exact search in memory-bounded blocks.
    ``lexical_weight`` W ranks by cosine + W x the character n-gram TF-IDF
    cosine of query and entry (hybrid; a ``score`` column is added).
    ``descriptions`` (one per corpus entry, empty for none) represents each
    entry by ``normalize(label + description_weight x description)``; the
    ``cosine`` column is then the query's cosine with that vector.
    """
    queries, corpus = _texts(queries, "queries"), _texts(corpus, "corpus")
    if descriptions is not None:
        descriptions = _texts(descriptions, "descriptions")
    encoder = _model(model)
    from domain_tune import matching
    from domain_tune.datasets.texts import as_text

    if corpus_embeddings is not None and isinstance(corpus_embeddings, (str, os.PathLike)):
        corpus_embeddings = matching.load_corpus_embeddings(
            os.fspath(corpus_embeddings), encoder, [as_text(t) for t in corpus], _spec(model))
    ids = None if corpus_ids is None else _texts(corpus_ids, "corpus_ids", "ids")
    return matching.match(encoder, queries, corpus, top_k=top_k, corpus_ids=ids,
                          min_score=min_score, corpus_embeddings=corpus_embeddings,
                          batch_size=batch_size, progress=progress, scorer=matching.lexical_scorer(lexical_weight),
                          descriptions=descriptions, description_weight=description_weight)


# --- pictures, export, interpolation ------------------------------------------------


@_checked
def plot_similarity(model: ModelLike = DEFAULT_MODEL, compare: Optional[ModelLike] = None,
                    texts: Optional[Sequence[str]] = None, *, out: Optional[PathLike] = None,
                    metric: str = "angular", titles: Optional[Sequence[str]] = None,
                    overwrite: bool = True) -> "Figure":
    """Heatmaps of the pairwise similarity of ``texts`` (default: the article's nine job titles).

    With ``compare``, its heatmap is drawn beside ``model``'s and a third
    panel shows ``compare`` minus ``model`` on a diverging scale centred on 0.
    Returns the matplotlib Figure (shown inline by a notebook); with ``out``,
    also writes it there as a PNG.
    """
    _tensorflow()
    from domain_tune.plotting import METRICS, plot_similarity as _plot

    if metric not in METRICS:
        raise BadInputError(f"--metric must be one of {', '.join(METRICS)} (got {metric!r})")
    if texts is not None:
        from domain_tune.datasets.texts import as_text

        texts = [t for t in map(as_text, _texts(texts)) if t.strip()]
        if len(texts) < 2:
            raise BadInputError("--texts: need at least 2 non-empty texts")
    if out is not None:
        out = os.fspath(out)
        if not out.lower().endswith(".png"):
            raise BadInputError(f"--out {out}: the plot is a PNG; name it *.png")
        from domain_tune.outputs import check_out

        check_out(out, overwrite)
    specs = [model] + ([compare] if compare is not None else [])
    if isinstance(titles, (str, bytes)):
        raise BadInputError("titles must be a list of strings, one per model, not one string")
    names = list(titles) if titles is not None else [_spec(m) for m in specs]
    if len(names) != len(specs):
        raise BadInputError(f"titles: give {len(specs)} titles, one per model")
    models = [(name, _model(m)) for name, m in zip(names, specs)]
    return _plot(models, texts, out, metric)["figure"]


@_checked
def export(model: ModelLike, out: PathLike, *, overwrite: bool = False) -> str:
    """Write ``model`` as a TF Hub-style SavedModel directory (``domain-tune export``).

    The directory loads with only TensorFlow and TF Text
    (``hub.load(out)(["a text"])``).  Returns its path.
    """
    from domain_tune.outputs import check_out

    check_out(os.fspath(out), overwrite, "dir",
              inputs=[model] if isinstance(model, (str, os.PathLike)) else ())
    encoder = _model(model)
    from domain_tune.export import export_saved_model

    return export_saved_model(encoder, os.fspath(out), overwrite=overwrite)


@_checked(own=("model", "base"))
def interpolate(model: PathLike, out: PathLike, *, base: PathLike = DEFAULT_MODEL,
                alpha: float = 0.8, overwrite: bool = False,
                sts_dir: Optional[PathLike] = None) -> dict:
    """Mix a tuned model's weights with its base's, WiSE-FT (``domain-tune interpolate``).

    Every weight becomes ``alpha * tuned + (1 - alpha) * base``; ``out``
    (``model.keras``, ``saved_model/``, ``README.md``) is a model for every
    function.  With ``sts_dir``, STS-B dev Pearson of base, tuned and mixed
    models is measured.  Returns the report the command prints.
    """
    from domain_tune.outputs import check_out

    hint = "interpolate reads the weights itself: pass a run directory or a .keras file"
    model, base, out = _path(model, "model", hint), _path(base, "base", hint), os.fspath(out)
    if not 0.0 <= float(alpha) <= 1.0:
        raise BadInputError(f"--alpha {alpha} must be in [0, 1]")
    if os.path.normpath(model) == os.path.normpath(base):
        raise BadInputError(f"--model and --base are both {model}; interpolating would change nothing")
    check_out(out, overwrite, "dir", inputs=[model, base])
    sts = None
    if sts_dir is not None:
        from domain_tune.datasets.sts import load_split

        sts = load_split("dev", os.fspath(sts_dir))
    _tensorflow()
    from domain_tune.training.interpolate_run import interpolate_to_dir

    return interpolate_to_dir(base, model, alpha, out, overwrite, sts)


@_checked
def read_metrics(run: PathLike) -> dict:
    """The ``metrics.json`` of a run directory."""
    path = os.path.join(os.fspath(run), "metrics.json")
    if not os.path.isfile(path):
        raise BadInputError(f"{run} is not a domain-tune run directory (no metrics.json)")
    try:
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{path} is not valid JSON ({e.__class__.__name__}: "
                            f"{str(e).splitlines()[0]})") from None
    if not isinstance(metrics, dict):
        raise BadInputError(f"{path} holds a {type(metrics).__name__}, not a run's metrics "
                            "(a JSON object)")
    return metrics
