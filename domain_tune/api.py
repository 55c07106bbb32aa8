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

from domain_tune.errors import BadInputError, OptionError, caller_stacklevel
from domain_tune.models.presets import DEFAULT_MODEL

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np
    import pandas as pd
    from matplotlib.figure import Figure

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


def _model(model: ModelLike, option: str = "--model") -> "keras.Model":
    if isinstance(model, (str, os.PathLike)):
        if option == "--model":
            return load_model(model)
        _tensorflow()
        from domain_tune.models.loading import load_model as _load

        return _load(model, option)
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
    """Every keyword :func:`train` accepts, with its default (the command's options), from the
    recipe (:mod:`domain_tune.training.recipe`)."""
    from domain_tune.training import recipe

    return {f.name: f.default for f in recipe.FIELDS}


@_checked
def make_train_job(pairs: PathLike, out: Optional[PathLike] = None, **options: Any):
    """The :class:`~domain_tune.training.run.TrainJob` of ``train(pairs, out, **options)``.

    Keywords are the recipe's fields (:func:`train_options`): the command's options with ``_``
    for ``-`` (``learning_rate``, ``batch_size``, ``no_sts``, ``embeddings``, ``texts`` as a list
    of strings, ...).  A bad value raises :class:`~domain_tune.errors.BadInputError` naming the
    keyword.
    """
    _tensorflow()
    from domain_tune.training.run import TrainJob

    _warn_ignored(options)
    if options.get("texts") is not None:
        options["texts"] = _plot_texts(options["texts"])
    job = TrainJob.from_options(pairs, out if out is not None else _default_out(), **options)
    if not options.get("quiet"):
        job.verbose = _fit_verbosity()
    return job


def _warn_ignored(options):
    from domain_tune.training import recipe

    for warning in recipe.ineffective(options):
        warnings.warn(warning, stacklevel=caller_stacklevel())


def _plot_texts(texts):
    texts = [str(t) for t in _texts(texts)]
    if sum(1 for t in texts if t.strip()) < 2:  # as plot_similarity
        raise BadInputError("texts: need at least 2 non-empty texts")
    return texts


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
                 similarity: str = "cosine", language: Optional[str] = None,
                 panel: bool = False, languages: Optional[str] = None,
                 file: Optional[PathLike] = None, multilingual_dir: Optional[PathLike] = None,
                 batch_size: int = 256, progress: bool = False) -> dict:
    """STS Pearson and Spearman of ``model``, in any language (``domain-tune eval-sts``).

    Without ``language``, ``panel`` or ``file``: the English STS benchmark of
    ``sts_dir`` (``sts-dev.csv`` etc.; default ``$DOMAIN_TUNE_STS_DIR``, else a
    cached download); returns ``{"split", "n", "similarity", "pearson",
    "spearman"}``.  ``language`` ("de", or "en-de" cross-lingual), ``panel``
    (every language of ``multilingual_dir``, or ``languages`` "de,fr,ja": mono and
    cross-lingual STS and translation retrieval with their means) and ``file``
    (your own STS file in the stsb-multi-mt format) read the stsb-multi-mt format.
    """
    from domain_tune.errors import OptionError

    modes = [name for name, on in (("language", language), ("panel", panel), ("file", file)) if on]
    if len(modes) > 1:
        raise OptionError(" and ".join("{%d}" % i for i in range(len(modes)))
                          + " exclude each other; give one", *modes)
    if languages is not None and not panel:
        raise OptionError("{0} chooses the languages of {1}; add {1}", "languages", "panel")
    if similarity not in ("cosine", "angular"):
        raise OptionError("{0} must be cosine or angular (got %r)" % (similarity,), "similarity")
    if limit is not None and limit < 2:
        raise OptionError("{0} must be at least 2 (got %d)" % limit, "limit")
    if sts_dir is not None and not os.fspath(sts_dir).strip():
        raise OptionError("{0} is empty; pass a path or None", "sts_dir")
    if panel:
        if similarity != "cosine":
            raise OptionError("{0} correlates cosine similarity; drop {1}", "panel", "similarity")
        from domain_tune.datasets.stsb_multi import load_multilingual
        from domain_tune.evaluation.multilingual import evaluate_panel

        data = load_multilingual(_optional_path(multilingual_dir), split, languages, limit)
        return evaluate_panel(_model(model), data, batch_size=batch_size, progress=progress)
    from domain_tune.evaluation.sts import evaluate_sts as _evaluate

    if file is not None:
        from domain_tune.datasets.stsb_multi import read_stsb_file

        data = read_stsb_file(os.fspath(file))
        data = data.head(limit) if limit else data
        head = {"file": os.fspath(file)}
    elif language is not None:
        from domain_tune.datasets.stsb_multi import load_language

        data = load_language(language, _optional_path(multilingual_dir), split, limit)
        head = {"language": language, "split": split}
    else:
        from domain_tune.datasets.sts import load_split

        data = load_split(split, _optional_path(sts_dir), limit)
        head = {"split": split}
    encoder = _model(model)
    result = _evaluate(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                       batch_size=batch_size, progress=progress)
    return {**head, **result}


def _optional_path(path):
    return None if path is None else os.fspath(path)


@_checked
def evaluate_translation(model: ModelLike = DEFAULT_MODEL, *, languages: Optional[str] = None,
                         split: str = "dev", parallel: Optional[PathLike] = None,
                         parallel_columns: Optional[Sequence[str]] = None,
                         limit: Optional[int] = None,
                         multilingual_dir: Optional[PathLike] = None, batch_size: int = 256,
                         progress: bool = False) -> dict:
    """Translation retrieval: does each sentence find its own translation (``domain-tune
    eval-translation``)?

    For parallel sentences (by default the rows of ``stsb-en-SPLIT.csv`` and
    ``stsb-LANG-SPLIT.csv`` of ``multilingual_dir``, ``languages`` "de,ja" or all;
    or your own ``parallel`` CSV, source and translation in ``parallel_columns``
    or its first two columns), the accuracy of retrieving each sentence's
    translation among all translations, both ways.  Returns ``{"pairs": {"en-de":
    {"n", "en->de", "de->en"}, ...}, "mean"}``.
    """
    from domain_tune.errors import OptionError
    from domain_tune.evaluation import multilingual as ml

    if parallel_columns is not None and parallel is None:
        raise OptionError("{0} names the columns of {1}; add {1} FILE", "parallel_columns",
                          "parallel")
    if parallel is not None and languages is not None:
        raise OptionError("{0} and {1} exclude each other; give one", "parallel", "languages")
    if parallel is not None:
        from domain_tune.datasets.parallel import read_parallel

        columns = None if parallel_columns is None else tuple(parallel_columns)
        par = read_parallel(os.fspath(parallel), columns)
        par = par.take(range(min(limit, len(par)))) if limit else par
        result = ml.evaluate_translation(_model(model), par.source, par.translation, par.columns,
                                         batch_size=batch_size, progress=progress)
        pairs = {"-".join(par.columns): result}
    else:
        from domain_tune.datasets.stsb_multi import load_multilingual

        data = load_multilingual(_optional_path(multilingual_dir), split, languages, limit)
        pairs = ml.evaluate_translation_split(_model(model), data, batch_size=batch_size,
                                              progress=progress)
    accuracies = [v for r in pairs.values() for k, v in r.items() if k != "n"]
    return {"pairs": pairs, "mean": float(sum(accuracies) / len(accuracies))}


@_checked(own=("queries", "corpus", "tune_on"))
def evaluate_retrieval(model: ModelLike, queries: PathLike, corpus: PathLike, *,
                       query_column: str = "query", label_column: str = "label",
                       id_column: Optional[str] = None, limit: Optional[int] = None,
                       lexical_weight: float = 0.0, description_column: Optional[str] = None,
                       description_weight: float = 0.0, tune_on: Optional[PathLike] = None,
                       batch_size: int = 256, progress: bool = False) -> dict:
    """Top-1/5/10 accuracy and MRR of ranking ``corpus`` for each query (``domain-tune eval-retrieval``).

    ``queries`` and ``corpus`` are CSV files (as ``pairs esco`` writes
    ``heldout_queries.csv`` and ``corpus.csv``); ``id_column`` None: ``conceptUri`` where
    both have it, else the column beside the query and the label (a pairs folder's files,
    whatever the taxonomy calls its ids).  Returns ``{"n", "corpus",
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
    from domain_tune.text_values import as_text

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
        from domain_tune.text_values import as_text

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
    models = [(name, _model(m, option)) for name, m, option in zip(names, specs, ("--model", "--compare"))]
    drawn = _plot(models, texts, out, metric)
    figure = drawn["figure"]
    # what was drawn, for a caller that wants the numbers (``domain-tune plot-similarity --json``)
    figure.similarity = {"models": names, "texts": drawn["texts"], "matrices": drawn["matrices"]}
    return figure


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


# --- files in, files out: embed, match, pairs, mining, parallel sentences ------------------


@_checked
def embed_file(model: PathLike, input: PathLike, out: PathLike, *, column: Optional[str] = None,
               precision: str = "float32", batch_size: int = 256, overwrite: bool = False,
               progress: bool = False) -> dict:
    """Embed every text of ``input`` (one per line, or the CSV ``column``) into ``out``
    (``domain-tune embed``).

    The format follows the extension of ``out``: ``.npy`` (float32 rows, with
    ``OUT.npy.json`` beside it naming the model, for ``match(corpus_embeddings=)``),
    ``.csv`` or ``.jsonl``.  ``precision`` (``.npy``): ``float32``, ``float16``,
    ``int8`` (calibrated scalar quantisation) or ``binary`` codes.  Large inputs
    stream in chunks.  Returns ``{"out", "texts", "dim", ...}``.
    """
    from domain_tune.datasets.texts import count_texts, is_csv, text_chunks
    from domain_tune.embedding_files import embed_to_file, output_format
    from domain_tune.outputs import check_out

    from domain_tune.quantization import check_precision

    model, input, out = os.fspath(model), os.fspath(input), os.fspath(out)
    check_precision(precision)
    if precision != "float32" and output_format(out) != "npy":
        raise OptionError("{0} " + precision + " needs a .npy output", "precision")
    output_format(out)
    check_out(out, overwrite, inputs=[input])
    n = count_texts(input, column)
    encoder = load_model(model)
    numbering = ("row", 2) if is_csv(input, column) else ("line", 1)
    return embed_to_file(encoder, text_chunks(input, column), n, out, batch_size=batch_size,
                         numbering=numbering, progress=progress, precision=precision,
                         record={"model": model, "source": input, "column": column})


@_checked
def match_file(model: PathLike, queries: PathLike, corpus: Optional[PathLike], out: PathLike, *,
               top_k: int = 5, min_score: Optional[float] = None,
               query_column: Optional[str] = None, corpus_column: Optional[str] = None,
               id_column: Optional[str] = None, corpus_embeddings: Optional[PathLike] = None,
               lexical_weight: float = 0.0, description_column: Optional[str] = None,
               description_weight: float = 0.5, index: Optional[PathLike] = None,
               batch_size: int = 256, overwrite: bool = False, progress: bool = False) -> dict:
    """For each query of the file ``queries``, its ``top_k`` entries of the file ``corpus``
    (or of the built ``index``, :func:`index`), written to ``out`` (``.csv`` or ``.jsonl``;
    ``domain-tune match``).

    :func:`match` on files: queries stream through in chunks, ``corpus_embeddings``
    (``.npy``) is reused when it matches the model and the texts and written when
    absent.  An ``index`` built with another model is refused.  Returns ``{"out",
    "queries", "corpus", "rows", ...}``.
    """
    from domain_tune.matching import lexical_scorer, match_files, match_index_file

    model = os.fspath(model)
    if (corpus is None) == (index is None):
        raise OptionError("give {0} or {1} to match against (one of them)", "corpus", "index")
    if index is not None:
        given = [name for name, value in (
            ("corpus_column", corpus_column), ("id_column", id_column),
            ("corpus_embeddings", corpus_embeddings), ("lexical_weight", lexical_weight),
            ("description_column", description_column)) if value]
        if given:
            raise OptionError("{0} applies to a corpus file, not to an index (the index holds "
                              "its embeddings and ids)", given[0])
        return match_index_file(os.fspath(queries), os.fspath(index), os.fspath(out),
                                loader=lambda: load_model(model), model_spec=model, top_k=top_k,
                                query_column=query_column, min_score=min_score,
                                batch_size=batch_size, progress=progress, overwrite=overwrite)
    return match_files(None, os.fspath(queries), os.fspath(corpus), os.fspath(out), top_k=top_k,
                       query_column=query_column, corpus_column=corpus_column,
                       id_column=id_column, min_score=min_score,
                       corpus_embeddings=_optional_path(corpus_embeddings), model_spec=model,
                       batch_size=batch_size, progress=progress, overwrite=overwrite,
                       scorer=lexical_scorer(lexical_weight), loader=lambda: load_model(model),
                       description_column=description_column or None,
                       description_weight=description_weight)


@_checked
def index(corpus: PathLike, out: PathLike, *, model: PathLike = DEFAULT_MODEL,
          column: Optional[str] = None, id_column: Optional[str] = None, kind: str = "flat",
          precision: str = "float32", target_recall: float = 0.95,
          recall_queries: Optional[PathLike] = None, recall_column: Optional[str] = None,
          corpus_embeddings: Optional[PathLike] = None, add: bool = False,
          batch_size: int = 256, overwrite: bool = False, progress: bool = False,
          seed: int = 0) -> dict:
    """Embed the corpus file ``corpus`` (read as :func:`match_file` reads it) into a
    persistent index directory ``out`` (``domain-tune index``), searched by
    ``match_file(..., index=out)`` and ``domain-tune serve --index``.

    ``kind``: ``"flat"`` (exact, numpy; the default), ``"ivf"``, ``"ivf-pq"``,
    ``"ivf-sq8"``, ``"hnsw"`` or a faiss ``index_factory`` string (the ``[index]``
    extra), whose search parameter is chosen to reach ``target_recall``
    recall@10 against exact search on ``recall_queries`` (a file of texts) or a
    sample of the corpus.  ``precision`` (kind flat): ``float32``, ``float16``,
    ``int8`` or ``binary`` codes, rescored with the float32 embeddings.
    ``add`` appends the corpus to the existing index ``out`` (same model).
    Returns the index record (kind, count, bytes per entry, search parameter, recall).
    """
    from domain_tune.indexing import index_file

    model = os.fspath(model)
    return index_file(os.fspath(corpus), os.fspath(out), loader=lambda: load_model(model),
                      model_spec=model, column=column, id_column=id_column, kind=kind,
                      precision=precision, target_recall=target_recall,
                      recall_queries=_optional_path(recall_queries), recall_column=recall_column,
                      corpus_embeddings=_optional_path(corpus_embeddings), add_to=add,
                      batch_size=batch_size, overwrite=overwrite, progress=progress, seed=seed)


@_checked
def service(model: PathLike = DEFAULT_MODEL, *, corpus: Optional[PathLike] = None,
            column: Optional[str] = None, id_column: Optional[str] = None,
            index: Optional[PathLike] = None, max_batch: int = 256, max_texts: int = 1024,
            max_body_bytes: int = 4 * 1024 * 1024, batch_size: int = 256,
            progress: bool = False):
    """The ASGI app of ``domain-tune serve`` (Starlette; the ``[serve]`` extra): ``GET
    /health``, ``POST /embed`` and, with a ``corpus`` file or a built ``index``, ``POST
    /match``.  Mount it in another ASGI app, or run it with :func:`serve`."""
    from domain_tune import serving

    serving._modules()
    model = os.fspath(model)
    if corpus is not None and index is not None:
        raise OptionError("give {0} or {1} to match against, not both", "corpus", "index")
    for name, value in (("column", column), ("id_column", id_column)):
        if value is not None and corpus is None:
            raise OptionError("{0} applies to {1}", name, "corpus")
    for name, value in (("max_batch", max_batch), ("max_texts", max_texts),
                        ("max_body_bytes", max_body_bytes)):
        if value < 1:
            raise OptionError("{0} must be at least 1", name)
    loaded = None
    if index is not None:
        from domain_tune.indexing import Index

        loaded = Index.load(os.fspath(index))
    elif corpus is not None:
        from domain_tune.indexing import _read_entries

        texts, ids = _read_entries(os.fspath(corpus), column, id_column)
    encoder = load_model(model)
    if index is not None:
        loaded.check_model(encoder, model)
    elif corpus is not None:
        loaded = serving.corpus_index(encoder, texts, ids, batch_size, progress)
    return serving.create_app(encoder, model, loaded, max_body_bytes=max_body_bytes,
                              max_texts=max_texts, max_batch=max_batch)


@_checked
def serve(model: PathLike = DEFAULT_MODEL, *, corpus: Optional[PathLike] = None,
          column: Optional[str] = None, id_column: Optional[str] = None,
          index: Optional[PathLike] = None, host: str = "127.0.0.1", port: int = 8080,
          max_batch: int = 256, max_texts: int = 1024, max_body_bytes: int = 4 * 1024 * 1024,
          batch_size: int = 256, progress: bool = False) -> None:
    """Serve :func:`service` over HTTP on ``host:port`` until SIGTERM or SIGINT
    (``domain-tune serve``)."""
    import socket

    from domain_tune import serving

    serving._modules()
    if not 0 <= port <= 65535:
        raise OptionError("{0} must be from 0 to 65535", "port")
    try:  # a port in use is refused before the model loads
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise BadInputError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    app = service(model, corpus=corpus, column=column, id_column=id_column, index=index,
                  max_batch=max_batch, max_texts=max_texts, max_body_bytes=max_body_bytes,
                  batch_size=batch_size, progress=progress)
    serving.run(app, host, port)


@_checked
def beam_embed(input_glob: str, out: str, *, model: PathLike = DEFAULT_MODEL,
               column: Optional[str] = None, id_column: Optional[str] = None,
               output_format: str = "npz", shards: int = 1,
               min_batch_size: Optional[int] = None, max_batch_size: int = 256,
               large_model: bool = False, pipeline_args: Sequence[str] = ()) -> dict:
    """Embed every text of the files matching ``input_glob`` on Apache Beam (``domain-tune
    beam embed``; the ``[beam]`` extra) into ``out``-prefixed ``.npz`` or ``.tfrecord``
    shards with their ids.  ``pipeline_args`` are Beam's options (the runner and its
    settings; the DirectRunner by default).  Returns ``{"files", "outputs", "texts", ...}``.
    """
    from domain_tune.beam import embed_pipeline

    return embed_pipeline(input_glob, out, os.fspath(model), column=column,
                          id_column=id_column, output_format=output_format, shards=shards,
                          min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                          large_model=large_model, pipeline_args=list(pipeline_args))


@_checked(own=("columns",))
def make_pairs(taxonomy: PathLike, out: PathLike, *, columns: Optional[dict] = None,
               separator: str = "\\n", language: str = "en",
               labels: Sequence[str] = (), holdout: float = 0.2, seed: int = 0,
               negatives: int = 1, synonym_pairs: int = 0, related: int = 3,
               positive_cosine: float = 1.0, related_cosine: float = 0.7,
               unrelated_cosine: float = 0.0, descriptions: bool = False,
               corpus_aware: bool = False, only_groups: Optional[str] = None,
               max_pairs: Optional[int] = None, hard_negatives: bool = False,
               mining_model: PathLike = DEFAULT_MODEL, mining_depth: int = 10,
               hard_negatives_per_pair: int = 1, attribution: Optional[str] = None,
               overwrite: bool = False, command: Optional[str] = None,
               progress: bool = False) -> dict:
    """Scored training pairs and a held-out retrieval set from a taxonomy CSV (``domain-tune
    pairs esco`` / ``pairs taxonomy``), written as a pairs folder ``out``.

    ``columns`` maps ``id_column``, ``label_column``, ``synonyms_column``,
    ``group_column``, ``description_column`` to the file's columns (default:
    ESCO's); ``labels`` are ``"LANG=FILE"`` files of labels in more languages,
    joined by the id.  Concepts are held out by id (``holdout``), in every
    language.  Returns the folder's counts (``stats``) with ``out`` and ``params``.
    """
    from domain_tune.datasets.pairs_folder import make_pairs_folder
    from domain_tune.datasets.taxonomy import ESCO_COLUMNS

    if columns is not None and not isinstance(columns, dict):
        raise BadInputError(f"columns must be a dict of column names, not {type(columns).__name__}")
    if isinstance(labels, (str, bytes)):
        raise BadInputError("labels must be a list of LANG=FILE strings, not one string")
    chosen = {**ESCO_COLUMNS, **(columns or {})}
    unknown = sorted(set(chosen) - set(ESCO_COLUMNS))
    if unknown:
        raise BadInputError(f"columns: unknown key {unknown[0]!r} (keys: "
                            f"{', '.join(sorted(ESCO_COLUMNS))})")
    return make_pairs_folder(
        os.fspath(taxonomy), os.fspath(out), columns=chosen, separator=separator,
        language=language, label_files=list(labels), holdout=holdout, seed=seed,
        negatives=negatives, synonyms=synonym_pairs, related=related,
        cosines={"positive": positive_cosine, "related": related_cosine,
                 "unrelated": unrelated_cosine},
        descriptions=descriptions, corpus_aware=corpus_aware, only_groups=only_groups,
        max_pairs=max_pairs,
        hard_negatives=({"model": os.fspath(mining_model), "depth": mining_depth,
                         "per_pair": hard_negatives_per_pair} if hard_negatives else None),
        attribution=attribution, overwrite=overwrite, command=command, progress=progress)


@_checked
def mine_negatives(model: PathLike, pairs: PathLike, out: PathLike, *, depth: int = 10,
                   per_pair: int = 1, seed: int = 0, text_columns: Sequence[str] = ("base", "ref"),
                   score_column: str = "similarity",
                   score_range: Sequence[float] = (0.0, 1.0), overwrite: bool = False,
                   progress: bool = False) -> dict:
    """Copy the pairs CSV ``pairs`` to ``out`` with hard negatives mined by ``model``
    (``domain-tune mine-negatives``): for each positive pair, ``per_pair`` distinct refs of other
    positive pairs among the ``depth`` best-ranked for its base.  Returns ``{"pairs",
    "positive", "hard_negatives"}``."""
    from domain_tune.datasets.mining import mine_pairs_file
    from domain_tune.errors import OptionError
    from domain_tune.outputs import check_out, check_table_out

    pairs, out = os.fspath(pairs), os.fspath(out)
    check_table_out(out, "pairs")
    check_out(out, overwrite, inputs=[pairs])
    if depth < 1:
        raise OptionError("{0} must be at least 1 (got %d)" % depth, "depth")
    if seed < 0:
        raise OptionError("{0} must be 0 or more (got %d)" % seed, "seed")
    if per_pair > depth:
        raise OptionError("{0} %d exceeds the {1} %d it draws from" % (per_pair, depth),
                          "per_pair", "depth")
    return mine_pairs_file(pairs, out, load_model(os.fspath(model)), depth, seed,
                           tuple(text_columns), score_column, tuple(score_range),
                           progress=progress, per_pair=per_pair)


@_checked
def parallel_sentences(data_dir: Optional[PathLike], out: PathLike, *,
                       languages: Optional[str] = None, source: str = "en",
                       split: str = "train", overwrite: bool = False) -> dict:
    """A parallel CSV (source, translation, language) from stsb-multi-mt files
    (``domain-tune parallel-sentences``), the input of ``train(parallel=...)``.

    ``data_dir`` holds ``stsb-LANG-SPLIT.csv`` (default ``$DOMAIN_TUNE_MULTILINGUAL_DIR``, else
    the cached download).  Returns ``{"out", "rows", "sources", "languages"}``.
    """
    from domain_tune.datasets.parallel import stsb_parallel, write_parallel
    from domain_tune.outputs import check_out, check_table_out

    data_dir, out = _optional_path(data_dir), os.fspath(out)
    check_table_out(out, "parallel sentences", (".csv",))
    inputs = ([os.path.join(data_dir, n) for n in os.listdir(data_dir)
               if n.startswith("stsb-") and n.endswith(".csv")]
              if data_dir and os.path.isdir(data_dir) else [])
    check_out(out, overwrite, inputs=inputs)  # never replace an input
    frame = stsb_parallel(data_dir, languages, split, source)
    write_parallel(frame, out)
    counts = frame["language"].value_counts(sort=False).to_dict()
    return {"out": out, "rows": len(frame), "sources": int(frame["source"].nunique()),
            "languages": {k: int(v) for k, v in counts.items()}}
