"""The training recipe, declared once: every option of ``train`` as one :class:`Field`.

A field has its Python name (the keyword of :func:`domain_tune.train`, the key of
``metrics.json``), its default, its kind, its help text, its check, where it goes
in the :class:`~domain_tune.training.run.TrainJob` (``target``) and its flag.
Everything else is derived from this table: the click options of ``domain-tune
train`` (:mod:`domain_tune.cli.train`), the API's keywords and their checks
(:func:`options_from`), the settings a resumed run must share (``shapes_training``),
and the defaults and flags a run writes into ``metrics.json`` so that its model
card renders from that file alone (:func:`record`).

This module imports nothing heavy (no TensorFlow, no click), so the command line's
``--help`` reads it at once.
"""

import dataclasses
import math
import numbers
import os
from typing import Any, Callable, Optional, Tuple

from domain_tune.errors import OptionError, OptionWarning, bad_option
from domain_tune.models.presets import DEFAULT_MODEL

# the choices of the options that take one (the modules that act on them import these)
LOSSES = ("mse", "cosent", "in-batch", "in-batch-symmetric")
OPTIMIZERS = ("adam", "lazy-adam")
SCHEDULES = ("constant", "linear", "cosine")
MONITORS = ("val_loss", "loss")
EMBEDDING_STRATEGIES = ("trainable", "frozen", "semi-frozen", "random")
NEW_ROWS = ("pieces", "mean")
DISTRIBUTE = ("none", "mirrored", "multi-worker")
MIXED_PRECISION = ("bfloat16", "float16")
ALIGN_TEACHERS = ("base", "self")
ALIGN_LOSSES = ("embedding", "similarity", "contrastive")


def _positive(v):
    return None if v > 0 and math.isfinite(v) else "must be a positive number"


def _at_least(n):
    return lambda v: None if v >= n else f"must be at least {n}"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _choice(choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


@dataclasses.dataclass(frozen=True)
class Field:
    """One option of ``train``."""

    name: str  # Python keyword, metrics.json key
    default: Any
    kind: str  # int, float, str, bool, path, choice, columns, range, languages
    help: str = ""
    target: Optional[str] = None  # "fit.epochs", "embeddings.strategy", "align.weight", "job.model"; None: not in the job
    check: Optional[Callable[[Any], Optional[str]]] = None  # a value -> the problem, or None
    choices: Tuple[str, ...] = ()
    flag: Optional[str] = None  # [default: "--" + name with dashes]
    aliases: Tuple[str, ...] = ()  # other spellings on the command line ("--lr")
    short: Optional[str] = None  # "-b"
    metavar: Optional[str] = None
    minimum: Optional[float] = None  # a range the command line enforces itself (click's IntRange)
    min_open: bool = False
    envvar: Optional[str] = None
    secondary: Optional[str] = None  # "--no-bucket" of a "--bucket/--no-bucket" switch
    needs: Optional[str] = None  # the field it only works with (align_* need parallel)
    shapes_training: bool = False  # a resumed run must keep it
    default_text: Optional[str] = None  # shown as [default: ...] when the option's own default is None

    @property
    def cli_flag(self):
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def key(self):
        """The name of the job field it sets (``bucket_by_length`` for ``bucket``)."""
        return self.target.split(".", 1)[1] if self.target else self.name

    def validate(self, value, name=None):
        """Raise :class:`OptionError` naming this field (or ``name``, the spelling the caller
        used) unless ``value`` is of its kind and passes its check; ``None`` passes where the
        default is None."""
        if value is None and (self.default is None or self.needs):
            return
        problem = _kind_problem(self.kind, value, self.default is None)
        if problem is None and self.choices:
            problem = _choice(self.choices)(value)
        if problem is None and self.check is not None:
            problem = self.check(value)
        if problem is not None:
            raise bad_option(name or self.name, problem)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind_problem(kind, value, none_ok):
    orn = " or None" if none_ok else ""
    if kind == "int" and not _is_int(value):
        return f"must be an integer{orn}, not {type(value).__name__} {_shown(value)}"
    if kind == "float" and not _is_number(value):
        return f"must be a number{orn}, not {type(value).__name__} {_shown(value)}"
    if kind == "bool" and not (isinstance(value, bool) or (
            type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))):
        return f"must be True or False, not {type(value).__name__} {_shown(value)}"
    if kind in ("str", "choice") and not isinstance(value, str):
        return f"must be a string{orn}, not {type(value).__name__} {_shown(value)}"
    if kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            return f"must be a string{orn}, not {type(value).__name__} {_shown(value)}"
        if not os.fspath(value).strip():
            return "is empty; pass a path or None"
    if kind == "range" and not (isinstance(value, tuple) and len(value) == 2
                                and all(_is_number(v) for v in value)):
        return f"must be two numbers (low, high), not {value!r}"
    if kind == "columns" and not (isinstance(value, tuple) and len(value) == 2
                                  and all(isinstance(v, str) and v.strip() for v in value)):
        return f"must be two column names ('base,ref' or ('base', 'ref')), not {value!r}"
    return None


FIELDS = (
    # --- data ---------------------------------------------------------------------------
    Field("model", DEFAULT_MODEL, "str", target="job.model", short="-m", metavar="MODEL",
          shapes_training=True,
          help="Preset name, domain-tune run directory, SavedModel directory, .keras file or "
          "TF Hub handle."),
    Field("overwrite", False, "bool", target="job.overwrite", help="Replace --out if it exists."),
    Field("resume", False, "bool", target="job.resume",
          help="Continue the interrupted run at --out."),
    Field("checkpoint_every", 600.0, "float", target="fit.checkpoint_every", metavar="SECONDS",
          minimum=0, check=lambda v: None if v >= 0 and math.isfinite(v)
          else "must be a number of seconds >= 0",
          help="Write the resumable state (weights, optimizer moments: about 0.8 GB with the "
          "USE-m3 table) at the end of the first epoch that ends this long after the last "
          "write; 0: after every epoch. --resume continues from the last state written; a "
          "finished run needs none."),
    Field("text_columns", ("base", "ref"), "columns", target="job.text_columns",
          shapes_training=True, help="The two text columns of PAIRS."),
    Field("score_column", "similarity", "str", target="job.score_column", shapes_training=True),
    Field("score_range", (0.0, 1.0), "range", target="job.score_range", metavar="LO HI",
          shapes_training=True,
          help="Range of the scores, rescaled to [0, 1] (e.g. 0 5 for STS)."),
    # --- the optimisation ------------------------------------------------------------------
    Field("epochs", 20, "int", target="fit.epochs", check=_at_least(1), shapes_training=True),
    Field("batch_size", 8, "int", target="fit.batch_size", short="-b", check=_at_least(1),
          shapes_training=True),
    Field("learning_rate", 1e-5, "float", target="fit.learning_rate", aliases=("--lr",),
          check=_positive, shapes_training=True),
    Field("beta_1", 0.9, "float", target="fit.beta_1", shapes_training=True,
          check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
    Field("beta_2", 0.9999, "float", target="fit.beta_2", shapes_training=True,
          check=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
    Field("epsilon", 1e-7, "float", target="fit.epsilon", shapes_training=True,
          check=lambda v: None if v > 0 else "must be positive"),
    Field("clipnorm", 1.0, "float", target="fit.clipnorm", shapes_training=True,
          check=lambda v: None if v >= 0 else "must be >= 0 (0 disables clipping)",
          help="Clip each gradient to this norm (0: no clipping)."),
    Field("optimizer", "adam", "choice", target="fit.optimizer", choices=OPTIMIZERS,
          shapes_training=True,
          help="lazy-adam updates only the embedding rows of the batch (10x cheaper step)."),
    Field("lr_schedule", "constant", "choice", target="fit.lr_schedule", choices=SCHEDULES,
          shapes_training=True,
          help="After warm-up: keep the learning rate, or decay it (linear, cosine) to 0 at the "
          "last step."),
    Field("warmup", 0.0, "float", target="fit.warmup", shapes_training=True,
          check=lambda v: None if 0.0 <= v < 1.0 else "must be a fraction of the steps in [0, 1)",
          help="Fraction of all steps over which the learning rate rises from 0."),
    Field("mini_batch_size", None, "int", target="fit.mini_batch_size", metavar="N", minimum=1,
          check=_at_least(1), shapes_training=True,
          help="Cache gradients (GradCache): embed each batch N texts at a time, so a large "
          "--batch-size of in-batch negatives needs the memory of N texts only."),
    Field("bucket", True, "bool", target="fit.bucket_by_length", secondary="--no-bucket",
          shapes_training=True,
          help="Group pairs of similar length into batches (less padding, 3-4x faster)."),
    Field("validation_split", 0.2, "float", target="job.validation_split", shapes_training=True),
    Field("validation_file", None, "path", target="job.validation_file",
          help="Validation pairs (instead of a split)."),
    Field("patience", 3, "int", target="fit.patience", check=_non_negative, shapes_training=True,
          help="Early-stopping patience."),
    Field("min_delta", 0.001, "float", target="fit.min_delta", check=_non_negative,
          shapes_training=True),
    Field("monitor", "val_loss", "choice", target="fit.monitor", choices=MONITORS,
          shapes_training=True,
          help="Early stopping watches this (loss reproduces the article)."),
    Field("seed", 42, "int", target="fit.seed", shapes_training=True,
          check=lambda v: None if v >= 0 else f"must be 0 or more (got {v})"),
    # --- what is measured before and after ---------------------------------------------------
    Field("sts_dir", None, "path", target="job.sts_dir", envvar="DOMAIN_TUNE_STS_DIR",
          help="STS benchmark folder for the before/after check."),
    Field("no_sts", False, "bool", help="Skip the STS benchmark before/after."),
    Field("sts_limit", None, "int", target="job.sts_limit", minimum=2, check=_at_least(2),
          help="Only the first N STS dev pairs (of the multilingual panel too)."),
    Field("multilingual", None, "languages", target="job.multilingual", metavar="LIST|all|none",
          help="Languages of the multilingual STS panel before/after (mono, cross-lingual "
          "en-LANG, translation retrieval) [default: de,ja,pl, if stsb-multi-mt data is found; "
          "else skipped with a notice]."),
    Field("multilingual_dir", None, "path", target="job.multilingual_dir",
          envvar="DOMAIN_TUNE_MULTILINGUAL_DIR",
          help="Folder of stsb-LANG-SPLIT.csv files (stsb-multi-mt format) [default: a cached "
          "download of stsb-multi-mt]."),
    Field("texts", None, "texts", target="job.plot_texts",
          help="Texts of similarity.png, one per line [default: nine job titles]."),
    Field("data_attribution", None, "str", target="job.data_attribution", metavar="TEXT",
          help="Licence and attribution of PAIRS for the model card [default: the line with a "
          "(c) or licence in a README.md beside PAIRS]."),
    # --- the objective ----------------------------------------------------------------------
    Field("loss", "mse", "choice", target="fit.loss", choices=LOSSES, shapes_training=True,
          help="mse on angular similarity (the article's), CoSENT ranking, or in-batch "
          "negatives for positive pairs (best for retrieval; -symmetric ranks both ways)."),
    Field("scale", None, "float", target="fit.scale", metavar="S", minimum=0, min_open=True,
          check=_positive, shapes_training=True,
          help="Scale (inverse temperature) of the cosent and in-batch losses: cosines are "
          "multiplied by S before the softmax; lower is softer [default: 20]."),
    # --- which weights train ----------------------------------------------------------------
    Field("embeddings", "trainable", "choice", target="embeddings.strategy",
          choices=EMBEDDING_STRATEGIES, shapes_training=True,
          help="Which embedding rows train (semi-frozen: only new domain rows)."),
    Field("add_vocab", None, "path", target="embeddings.add_vocab", metavar="FILE|auto",
          shapes_training=True,
          help="Add domain terms as whole pieces: a file (one per line) or 'auto' (frequent "
          "words of PAIRS split into 3+ pieces)."),
    Field("max_new_pieces", 256, "int", target="embeddings.max_new_pieces", check=_at_least(1),
          shapes_training=True),
    Field("new_rows", "pieces", "choice", target="embeddings.new_rows", choices=NEW_ROWS,
          shapes_training=True,
          help="Start a new row from the mean of its old pieces, or of all rows."),
    Field("freeze_encoder", False, "bool", target="embeddings.freeze_encoder",
          shapes_training=True, help="Train only the embeddings."),
    # --- where it runs ----------------------------------------------------------------------
    Field("distribute", "none", "choice", target="job.distribute", choices=DISTRIBUTE,
          help="tf.distribute strategy: local GPUs (mirrored) or a TF_CONFIG cluster."),
    Field("cpu_replicas", None, "int", target="job.cpu_replicas", minimum=1, check=_at_least(1),
          help="Split the CPU into N logical devices (with --distribute mirrored)."),
    Field("mixed_precision", None, "choice", target="job.mixed_precision",
          choices=MIXED_PRECISION, shapes_training=True,
          help="Compute in 16 bits, keep float32 variables and loss (for GPUs)."),
    # --- keeping the languages aligned ---------------------------------------------------------
    Field("parallel", None, "path", target="align.parallel", metavar="FILE",
          help="Keep languages aligned while tuning: a CSV of parallel sentences (source, "
          "translation) for multilingual distillation (see `parallel-sentences`)."),
    Field("parallel_columns", None, "columns", target="align.columns", metavar="SRC,TGT",
          needs="parallel", shapes_training=True,
          help="Source and translation columns of --parallel [default: its first two]."),
    Field("align_weight", 1.0, "float", target="align.weight", metavar="W", check=_positive,
          needs="parallel", shapes_training=True,
          help="Weight of the distillation term added to the pair loss [default: 1.0]."),
    Field("align_teacher", "base", "choice", target="align.teacher", choices=ALIGN_TEACHERS,
          needs="parallel", shapes_training=True,
          help="Target of a source and its translation: the frozen base model's embedding of "
          "the source, or the tuned model's own (gradient stopped; on ESCO it collapsed the "
          "space at every --align-weight measured, 1 to 10: STS-B 0.28-0.32, see "
          "docs/languages.md) [default: base]."),
    Field("parallel_batch_size", 16, "int", target="align.batch_size", metavar="N",
          check=_at_least(1), needs="parallel", shapes_training=True,
          help="Parallel sentences per training step [default: 16]."),
    Field("align_loss", "embedding", "choice", target="align.loss", choices=ALIGN_LOSSES,
          needs="parallel", shapes_training=True,
          help="The alignment objective: 'embedding' pulls both texts onto the teacher's "
          "embedding of the source (Reimers & Gurevych); 'similarity' matches the teacher's "
          "similarities between the batch's sentences, within and across languages; "
          "'contrastive' ranks each text's own translation first among the batch's (no "
          "teacher). Measured best on ESCO: contrastive with --align-weight 5 "
          "--parallel-batch-size 32 [default: embedding]."),
    Field("quiet", False, "bool", short="-q", help="No per-epoch progress."),
)
BY_NAME = {f.name: f for f in FIELDS}
# other spellings the API takes, from the flags' aliases (``lr`` for ``learning_rate``)
ALIASES = {a.lstrip("-").replace("-", "_"): f.name for f in FIELDS for a in f.aliases}


def default(name):
    """The default of the option ``name``: the one place it is written."""
    return BY_NAME[name].default


def flag(name):
    """The command-line spelling of option ``name`` (the field's own name when it is not one)."""
    f = BY_NAME.get(name)
    return f.cli_flag if f is not None else "--" + name.replace("_", "-")


def check(name, value):
    """Raise :class:`OptionError` naming ``name`` unless ``value`` suits the field."""
    BY_NAME[name].validate(value)


def check_group(group, options):
    """Check every field of a part of the job (``fit``, ``embeddings``, ``align``) as set on the
    dataclass ``options``."""
    for f in FIELDS:
        if f.target and f.target.split(".")[0] == group:
            f.validate(getattr(options, f.key))


def normalise(name, value):
    """A value as the API takes it in the kind the job holds: ``"base,ref"`` or a list becomes a
    tuple of two names, a list of two numbers a tuple."""
    kind = BY_NAME[name].kind
    if kind == "columns" and isinstance(value, str):
        value = tuple(v.strip() for v in value.split(","))
    if kind in ("columns", "range") and isinstance(value, list):
        value = tuple(value)
    return value


def unknown(name):
    """An :class:`OptionError` for a keyword that is no option of ``train``."""
    return OptionError("train: unknown option {0!r} (options: " + ", ".join(sorted(BY_NAME)) + ")",
                       name)


def record():
    """What a run writes into ``metrics.json`` beside its options, so that its card renders from
    that file alone: ``{job field: {"default": ..., "flag": ..., "option": ...}}`` for every option
    the job holds (``align.<field>`` for the alignment's)."""
    out = {}
    for f in FIELDS:
        if f.target is None:
            continue
        value = list(f.default) if isinstance(f.default, tuple) else f.default
        # the options' own layout: job, fit and embeddings fields flat, the alignment's nested
        key = f.target if f.target.startswith("align.") else f.key
        out[key] = {"default": value, "flag": f.cli_flag, "option": f.name}
    out["sts"] = {"default": not default("no_sts"), "flag": "--no-sts", "option": "no_sts"}
    out["align"] = {"default": None, "flag": "--align", "option": "parallel"}  # no alignment
    return out


# Options that another option makes ineffective: (when, the options named, why, in the API's and
# in the command line's words).  ``train`` warns about those given, and goes on.
INEFFECTIVE = (
    (lambda o: bool(o.get("no_sts")),
     lambda o: ["sts_dir", "sts_limit", "multilingual_dir"]
     + ([] if str(o.get("multilingual") or "").strip().lower() == "none" else ["multilingual"]),
     "has no effect with no_sts=True", "has no effect with --no-sts"),
    (lambda o: not o.get("add_vocab"), lambda o: ["max_new_pieces", "new_rows"],
     "needs add_vocab", "needs --add-vocab"),
    (lambda o: bool(o.get("validation_file")), lambda o: ["validation_split"],
     "has no effect with validation_file", "has no effect with --validation-file"),
    (lambda o: o.get("loss", default("loss")) == "mse", lambda o: ["scale"],
     "has no effect with loss='mse'", "has no effect with --loss mse"),
)


def _plural(reason, n):
    if n == 1:
        return reason
    verb, _, rest = reason.partition(" ")
    return f"{ {'has': 'have', 'needs': 'need'}.get(verb, verb)} {rest}"


def ineffective(options):
    """An :class:`~domain_tune.errors.OptionWarning` for each group of ``options`` given (not
    None) that another option makes ineffective."""
    for when, names, api, cli in INEFFECTIVE:
        given = [n for n in names(options) if options.get(n) is not None]
        if when(options) and given:
            spelt = " and ".join("{%d}" % i for i in range(len(given)))
            yield OptionWarning(f"train: {' and '.join(given)} {_plural(api, len(given))}; ignored",
                                f"{spelt} {_plural(cli, len(given))}; ignored", given)
