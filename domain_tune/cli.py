"""The ``domain-tune`` command line: parse, call the library, print.

Errors the user can fix (:class:`~domain_tune.errors.BadInputError`, click's
usage errors) become one line on stderr and exit code 2, here and only here.
TensorFlow is imported inside the commands so that ``--help`` stays instant.
"""

import atexit
import contextlib
import errno
import functools
import gc
import json
import os
import re
import signal
import sys
import time
import warnings

import click

from domain_tune import __version__
from domain_tune.errors import BadInputError, DomainTuneWarning, TrainingInterrupted

DEFAULT_MODEL = "use-m3"  # keep in sync with domain_tune.models.presets.DEFAULT_MODEL
DEBUG_VAR = "DOMAIN_TUNE_DEBUG"


def _one_line(message):
    return " ".join(str(message).split())


def _fail(message, code):
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """domain-tune's own warnings as one line; other libraries' only when debugging."""
    if issubclass(category, DomainTuneWarning):
        click.echo(f"Warning: {_one_line(message)}", err=True)
    elif os.environ.get(DEBUG_VAR):
        click.echo(warnings.formatwarning(message, category, filename, lineno, line), err=True)


def _quick_exit_once():
    """Let the process exit without the garbage collector's passes over TensorFlow's objects.

    Python's finalization runs full collections while it tears down modules;
    with TensorFlow and Keras loaded they took about 1 s after every command
    (``gc_collect_main`` in a profile of the exit).  ``gc.freeze()`` as the
    last exit handler moves every object out of the collector's reach, so
    those passes find nothing to scan.  Reference counting still frees
    objects, and exit handlers and stream flushing run as before; an
    in-process caller (a test's ``CliRunner``) is unaffected until its own
    interpreter exits.
    """
    if not getattr(_quick_exit_once, "done", False):
        atexit.register(gc.freeze)  # registered first, so it runs after every later handler
        _quick_exit_once.done = True


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it unwinds as Ctrl-C does: partial outputs
    (``OUT.tmp-*``) are removed on the way out."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_unwinds():
    """While a command runs, SIGTERM raises :class:`Terminated` (in the main thread, where the
    default action would end the process at once and leave half-written files behind).  A
    handler installed by the embedding program is left alone."""
    import threading

    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# errors of a path that the system refuses (a name too long, no permission, a read-only
# file system): bad input wherever they surface
_REFUSED_PATH = (errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.EROFS)


# how a full disk shows through libraries that do not raise OSError(ENOSPC): h5py (Keras'
# weights file) and TensorFlow's file writes name the errno in their message; NumPy's
# ``tofile`` says how much it wrote
_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded|errno = 28\b|"
                        r"\d+ requested and \d+ written")


def _disk_full(e):
    """The file whose write failed for lack of space ('' if unnamed), or None if ``e`` is not a
    full disk (OSError ENOSPC or EDQUOT, or one of :data:`_DISK_FULL`, anywhere in its chain)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e.filename or ""
        if _DISK_FULL.search(str(e)):
            return ""
        e = e.__cause__ or e.__context__
    return None


class DomainTuneCommand(click.Command):
    """A click command that warns when an option of one value is given twice, differently.

    Click keeps the last value, which scripts rely on to override a default they
    put first; but ``plot-similarity --model A --model B`` drew B alone without a
    word (a second model is ``--compare``).  The last value still wins.
    """

    def parse_args(self, ctx, args):
        for line in repeated_options(self.get_params(ctx), args):
            click.echo(f"Warning: {line}", err=True)
        return super().parse_args(ctx, args)


def repeated_options(params, args):
    """One line for each option of one value that ``args`` gives more than one value."""
    takes_one = {}
    for param in params:
        if (isinstance(param, click.Option) and not param.is_flag and not param.multiple
                and not param.count and param.nargs == 1):
            takes_one.update((name, param) for name in param.opts + param.secondary_opts)
    given = {}  # param name -> [(spelling, value), ...]
    i = 0
    while i < len(args) and args[i] != "--":
        name, eq, value = args[i].partition("=")
        param = takes_one.get(name) if name.startswith("-") else None
        if param is not None:
            if not eq:
                if i + 1 >= len(args):
                    break  # click reports the missing value
                i += 1
                value = args[i]
            given.setdefault(param.name, []).append((name, value))
        i += 1
    lines = []
    for uses in given.values():
        values = [v for _, v in uses]
        if len(set(values)) > 1:
            shown = ", then ".join(values)
            lines.append(f"{uses[-1][0]} given {len(values)} times ({shown}); it takes one "
                         f"value, and the last one, {values[-1]}, is used")
    return lines


class DomainTuneGroup(click.Group):
    """A click group that reports every failure as one line with a fitting exit code."""

    command_class = DomainTuneCommand
    group_class = type  # groups within (``pairs``) are of this class, with its commands

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.showwarning = _show_warning
        _quick_exit_once()
        try:
            with _sigterm_unwinds():
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help(), err=True)
            sys.exit(2)
        except click.UsageError as e:
            _fail(e.format_message(), 2)
        except BadInputError as e:
            _fail(str(e), 2)
        except TrainingInterrupted as e:
            _fail(str(e), e.exit_code)
        except (click.Abort, KeyboardInterrupt) as e:  # (click turns the latter into Abort)
            if isinstance(e, Terminated) or isinstance(e.__cause__, Terminated):
                _fail("terminated (SIGTERM)", 143)
            _fail("interrupted", 130)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except Exception as e:  # an internal error: one line unless debugging
            if os.environ.get(DEBUG_VAR):
                raise
            if isinstance(e, OSError) and e.errno in _REFUSED_PATH and e.filename:
                _fail(f"{e.strerror}: {e.filename}", 2)  # a path given that the system refuses
            full = _disk_full(e)
            if full:  # the output, not the temporary file it is written to first
                full = re.sub(r"\.tmp-\d+$", "", full)
            if full is not None:
                _fail(f"no space left on the device{f' writing {full}' if full else ''}; free "
                      "some space or write the output elsewhere", 2)
            if type(e).__name__ == "ResourceExhaustedError":  # TensorFlow's out of memory
                _fail("out of memory (TensorFlow ResourceExhaustedError): lower --batch-size, or "
                      "shorten or drop the longest texts", 1)
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            _fail(f"{type(e).__name__}: {first} (set {DEBUG_VAR}=1 to see the traceback)", 1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=DomainTuneGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="domain-tune")
def main():
    """Fine-tune the multilingual Universal Sentence Encoder for your domain.

    \b
    Quick start:
      domain-tune eval-sts --sts-dir ../shared/data/stsbenchmark
      domain-tune embed texts.txt --out embeddings.npy
      domain-tune export --out use_m3_savedmodel
    """


# --- shared options ----------------------------------------------------------


def needs_tensorflow(f):
    """Import TensorFlow quietly before the command body (not for --help).

    A command on the preset model starts reading its weights first, in a
    background thread that overlaps the import (see
    :func:`domain_tune.models.weights.prefetch_reference_arrays`).
    """

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from domain_tune._env import import_tensorflow

        from domain_tune.models import weights

        if kwargs.get("model") == DEFAULT_MODEL:
            weights.prefetch_reference_arrays()
        import_tensorflow(freeze=True)  # a command line runs one command: see gc_paused
        weights.tensorflow_imported()
        return f(*args, **kwargs)

    return wrapper


def model_option(f):
    return click.option(
        "--model", "-m", default=DEFAULT_MODEL, show_default=True, metavar="MODEL",
        help="Preset name, domain-tune run directory, SavedModel directory, .keras file "
        "or TF Hub handle.",
    )(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def batch_size_option(default=256):
    return click.option(
        "--batch-size", "-b", type=click.IntRange(min=1), default=default, show_default=True,
        help="Texts per batch.",
    )


def multilingual_dir_option(f):
    return click.option(
        "--multilingual-dir", type=click.Path(), envvar="DOMAIN_TUNE_MULTILINGUAL_DIR",
        show_envvar=True,
        help="Folder of stsb-LANG-SPLIT.csv files (stsb-multi-mt format) [default: a cached "
        "download of stsb-multi-mt].",
    )(f)


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")(f)


def _load(model, option="--model"):
    from domain_tune.models.loading import load_model

    return load_model(model, option)


def _refuse_existing(path, overwrite, kind="file", inputs=()):
    from domain_tune.outputs import check_out

    check_out(path, overwrite, kind, inputs)


def _count(n, noun, plural=None):
    """``"1 pair"``, ``"2 pairs"``; ``plural`` where adding an s is wrong (``"3 matches"``)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _warn_unused(names, reason):
    """A one-line warning naming the options of ``names`` given on the command line where
    another option makes them have no effect (``reason``); the command goes on.  Values from
    the environment or defaults are not mentioned."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    given = [p.opts[0] for p in ctx.command.params
             if p.name in names and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
    if given:
        if len(given) > 1:  # "--a and --b have no effect", "... need --add-vocab"
            verb, _, rest = reason.partition(" ")
            reason = f"{ {'has': 'have', 'needs': 'need', 'is': 'are'}.get(verb, verb)} {rest}"
        warnings.warn(f"{' and '.join(given)} {reason}", DomainTuneWarning, stacklevel=2)


def _print_json(obj):
    from domain_tune.outputs import finite_json

    click.echo(json.dumps(finite_json(obj), indent=2, sort_keys=False, allow_nan=False))


# --- commands ----------------------------------------------------------------


@main.command("embed")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
@click.option("--out", "-o", required=True, type=click.Path(), help="Output .npy, .csv or .jsonl.")
@click.option("--column", "-c", help="Column to embed when INPUT is a CSV.")
@model_option
@batch_size_option()
@overwrite_option
@json_option
@needs_tensorflow
def embed_cmd(input_path, out, column, model, batch_size, overwrite, as_json):
    """Embed every text of INPUT (one per line, or a CSV column).

    The format of --out follows its extension: .npy (float32 matrix, one row
    per text, with OUT.npy.json beside it naming the model, for `match
    --corpus-embeddings`), .csv (text and e0..e511) or .jsonl ({"text",
    "embedding"}).
    Large inputs are streamed in chunks; memory does not grow with the file.

    \b
    Example:
      domain-tune embed titles.csv --column title --out titles.npy
    """
    from domain_tune.datasets.texts import count_texts, is_csv, text_chunks
    from domain_tune.embedding import embed_to_file, output_format

    output_format(out)
    _refuse_existing(out, overwrite, inputs=[input_path])
    n = count_texts(input_path, column)
    encoder = _load(model)
    start = time.perf_counter()
    numbering = ("row", 2) if is_csv(input_path, column) else ("line", 1)
    info = embed_to_file(encoder, text_chunks(input_path, column), n, out, batch_size=batch_size,
                         numbering=numbering,
                         record={"model": model, "source": input_path, "column": column})
    info.update({"model": model, "seconds": round(time.perf_counter() - start, 3)})
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Wrote {_count(info['texts'], 'embedding')} of dimension {info['dim']} to {out}.")


@main.command("eval-sts")
@model_option
@click.option("--split", type=click.Choice(["dev", "test", "train"]), default="dev", show_default=True)
@click.option(
    "--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
    help="Folder with sts-train.csv, sts-dev.csv, sts-test.csv (default: a cached download).",
)
@click.option(
    "--similarity", type=click.Choice(["cosine", "angular"]), default="cosine", show_default=True,
    help="Similarity of two embeddings correlated with the gold scores.",
)
@click.option("--limit", type=click.IntRange(min=2), help="Only the first N pairs of the split.")
@click.option("--language", "-l", metavar="LANG|EN-LANG",
              help="STS in one language of --multilingual-dir (de), or cross-lingual (en-de: "
              "sentence 1 from stsb-en, sentence 2 from stsb-de).")
@click.option("--panel", is_flag=True,
              help="Every language of --multilingual-dir: mono and cross-lingual STS and "
              "translation retrieval, with their means.")
@click.option("--languages", metavar="LIST", help="Languages of --panel, e.g. de,fr,ja [default: all].")
@click.option("--file", "stsb_file", type=click.Path(),
              help="Your own STS file in the stsb-multi-mt format (sentence1,sentence2,score 0-5; "
              "no header).")
@multilingual_dir_option
@batch_size_option()
@json_option
@needs_tensorflow
def eval_sts_cmd(model, split, sts_dir, similarity, limit, language, panel, languages, stsb_file,
                 multilingual_dir, batch_size, as_json):
    """STS benchmark Pearson and Spearman correlation of a model, in any language.

    Without options: the English STS benchmark (--sts-dir); every pair of the
    split is scored (1,500 for dev); a malformed line is an error, never
    skipped.  --language, --panel and --file read the stsb-multi-mt format
    (stsb-LANG-SPLIT.csv, row-aligned translations of the benchmark) from
    --multilingual-dir.

    \b
    Examples:
      domain-tune eval-sts --sts-dir ../shared/data/stsbenchmark --json
      domain-tune eval-sts --language en-de --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-sts --panel --languages de,ja --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-sts --file my-sts.csv
    """
    from domain_tune.api import evaluate_sts

    modes = [name for name, on in (("--language", language), ("--panel", panel),
                                   ("--file", stsb_file)) if on]
    if len(modes) > 1:
        raise click.UsageError(f"{' and '.join(modes)} exclude each other; give one")
    if languages is not None and not panel:
        raise click.UsageError("--languages chooses the languages of --panel; add --panel")
    if stsb_file:
        _warn_unused(["split", "sts_dir", "multilingual_dir"], "has no effect with --file; ignored")
    elif modes:
        _warn_unused(["sts_dir"], "is the English benchmark's; --language and --panel read "
                     "--multilingual-dir; ignored")
    else:
        _warn_unused(["multilingual_dir"], "is read by --language or --panel only; ignored")
    if modes:
        return _eval_multilingual(model, split, similarity, limit, language, panel, languages,
                                  stsb_file, multilingual_dir, batch_size, as_json)
    start = time.perf_counter()
    result = evaluate_sts(model, split=split, sts_dir=sts_dir, limit=limit, similarity=similarity,
                          batch_size=batch_size, progress=not as_json)
    seconds = time.perf_counter() - start
    result = {**result, "model": model}
    if as_json:
        _print_json(result)
    else:
        click.echo(
            f"STS benchmark {split} ({result['n']} pairs, {similarity}): "
            f"Pearson {result['pearson']:.4f}  Spearman {result['spearman']:.4f}  "
            f"[{model}, {seconds:.1f} s]"
        )


def _eval_multilingual(model, split, similarity, limit, language, panel, languages, stsb_file,
                       multilingual_dir, batch_size, as_json):
    from domain_tune.evaluation import multilingual as ml

    if panel:
        if similarity != "cosine":
            raise click.UsageError("--panel correlates cosine similarity; drop --similarity")
        from domain_tune.datasets.stsb_multi import load_multilingual

        data = load_multilingual(multilingual_dir, split, languages, limit)
        encoder = _load(model)
        result = ml.evaluate_panel(encoder, data, batch_size=batch_size, progress=not as_json)
        result["model"] = model
        if as_json:
            _print_json(result)
            return
        click.echo(f"Multilingual STS {split} ({result['n']:,} pairs per language, cosine; "
                   f"{_count(result['sentences'], 'distinct sentence')}) [{model}, "
                   f"{result['seconds']:.1f} s]")
        for line in ml.panel_lines(result):
            click.echo(line)
        return
    from domain_tune.evaluation.sts import evaluate_sts

    if stsb_file:
        from domain_tune.datasets.stsb_multi import read_stsb_file

        data = read_stsb_file(stsb_file)
        data = data.head(limit) if limit else data
        encoder = _load(model)
        start = time.perf_counter()
        result = evaluate_sts(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                              batch_size=batch_size, progress=not as_json)
        result = {"file": stsb_file, **result}
        what = stsb_file
    else:
        from domain_tune.datasets.stsb_multi import load_language

        data = load_language(language, multilingual_dir, split, limit)
        encoder = _load(model)
        start = time.perf_counter()
        result = evaluate_sts(encoder, data.sentences1, data.sentences2, data.scores, similarity,
                              batch_size=batch_size, progress=not as_json)
        result = {"language": language, "split": split, **result}
        what = f"STS {split} {language}"
    seconds = time.perf_counter() - start
    result["model"] = model
    if as_json:
        _print_json(result)
    else:
        click.echo(f"{what} ({result['n']} pairs, {similarity}): Pearson {result['pearson']:.4f}  "
                   f"Spearman {result['spearman']:.4f}  [{model}, {seconds:.1f} s]")


@main.command("eval-translation")
@model_option
@click.option("--languages", metavar="LIST",
              help="Pairs en-LANG of --multilingual-dir, e.g. de,fr,ja [default: all].")
@click.option("--split", type=click.Choice(["dev", "test", "train"]), default="dev", show_default=True)
@click.option("--parallel", "parallel_file", type=click.Path(),
              help="Your own parallel sentences instead: a CSV with a header, source and "
              "translation in the first two columns (or --parallel-columns).")
@click.option("--parallel-columns", "columns", metavar="SRC,TGT", callback=lambda ctx, param, v:
              None if v is None else _column_pair(ctx, param, v), help="The two columns of --parallel.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows.")
@multilingual_dir_option
@batch_size_option()
@json_option
@needs_tensorflow
def eval_translation_cmd(model, languages, split, parallel_file, columns, limit, multilingual_dir,
                         batch_size, as_json):
    """Translation retrieval: does each sentence find its own translation?

    For parallel sentences (by default both columns of the rows of
    stsb-en-SPLIT.csv and stsb-LANG-SPLIT.csv), the accuracy of retrieving
    each sentence's translation, by cosine similarity, among all
    translations, in both directions.  Each distinct (sentence, translation)
    pair counts once; retrieving a row whose text equals the gold
    translation's is a hit.

    \b
    Examples:
      domain-tune eval-translation --languages de,ja --multilingual-dir ../shared/data/stsb-multi-mt
      domain-tune eval-translation --parallel en-it.csv --parallel-columns en,it --json
    """
    from domain_tune.evaluation import multilingual as ml

    if columns is not None and parallel_file is None:
        raise click.UsageError("--parallel-columns names the columns of --parallel; add --parallel FILE")
    if parallel_file is not None and languages is not None:
        raise click.UsageError("--parallel and --languages exclude each other; give one")
    if parallel_file is not None:
        _warn_unused(["split", "multilingual_dir"], "has no effect with --parallel; ignored")
        from domain_tune.datasets.parallel import read_parallel

        par = read_parallel(parallel_file, columns)
        par = par.take(range(min(limit, len(par)))) if limit else par
        encoder = _load(model)
        result = ml.evaluate_translation(encoder, par.source, par.translation, par.columns,
                                         batch_size=batch_size, progress=not as_json)
        pairs = {"-".join(par.columns): result}
    else:
        from domain_tune.datasets.stsb_multi import load_multilingual

        data = load_multilingual(multilingual_dir, split, languages, limit)
        encoder = _load(model)
        pairs = ml.evaluate_translation_split(encoder, data, batch_size=batch_size,
                                              progress=not as_json)
    accs = [v for r in pairs.values() for k, v in r.items() if k != "n"]
    out = {"pairs": pairs, "mean": float(sum(accs) / len(accs)), "model": model}
    if as_json:
        _print_json(out)
        return
    for name, r in pairs.items():
        ways = "  ".join(f"{k} {v:.4f}" for k, v in r.items() if k != "n")
        click.echo(f"{name} ({_count(r['n'], 'parallel pair')}): {ways}")
    click.echo(f"mean accuracy {out['mean']:.4f}  [{model}]")


@main.command("export")
@model_option
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create.")
@overwrite_option
@json_option
@needs_tensorflow
def export_cmd(model, out, overwrite, as_json):
    """Write a TF Hub-style SavedModel (strings in, embeddings out).

    Load it with only TensorFlow and tensorflow_text:

    \b
      import tensorflow_hub as hub, tensorflow_text
      embed = hub.load("DIR"); embed(["a text", "un testo"])
    """
    from domain_tune.api import export

    export(model, out, overwrite=overwrite)
    if as_json:
        _print_json({"out": out, "model": model, "signature": "serving_default",
                     "inputs": "inputs", "outputs": "outputs"})
    else:
        click.echo(f"Exported {model} to {out} (SavedModel, signature serving_default: "
                   "inputs -> outputs).")


@main.command("interpolate")
@click.option("--model", "-m", required=True, metavar="MODEL",
              help="The tuned model: a run directory or .keras file.")
@click.option("--base", default=DEFAULT_MODEL, show_default=True, metavar="MODEL",
              help="The pretrained model the tuning started from (for a run tuned from "
              "another run, still the first one's base).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.8, show_default=True,
              help="Weight of the tuned model (1: tuned, 0: base).")
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create.")
@overwrite_option
@click.option("--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
              help="Also report STS-B dev for base, tuned and interpolated.")
@json_option
@needs_tensorflow
def interpolate_cmd(model, base, alpha, out, overwrite, sts_dir, as_json):
    """Mix a tuned model's weights with its base's (WiSE-FT).

    Every weight becomes alpha * tuned + (1 - alpha) * base: most of the
    domain gain stays and general quality (STS-B) comes back, at no cost at
    inference.  OUT holds model.keras, saved_model/ and a README.md; it is a
    --model for every command.

    \b
    Example:
      domain-tune interpolate -m runs/esco --alpha 0.8 --out runs/esco-wise
      domain-tune eval-retrieval -m runs/esco-wise --queries Q.csv --corpus C.csv
    """
    from domain_tune.api import interpolate

    result = interpolate(model, out, base=base, alpha=alpha, overwrite=overwrite, sts_dir=sts_dir)
    if as_json:
        _print_json(result)
        return
    rows = f" and {result['kept_rows']} added token rows kept" if result["kept_rows"] else ""
    click.echo(f"Wrote {alpha:g} x {model} + {1 - alpha:g} x {base} to {out} "
               f"({result['weights']} weights mixed{rows}).")
    scores = result["sts_dev_pearson"]
    if scores is not None:
        click.echo("STS-B dev Pearson: " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))


def _read_texts_file(path):
    from domain_tune.datasets.texts import count_texts, text_chunks

    count_texts(path, what="--texts")
    texts = [t for chunk in text_chunks(path, what="--texts") for t in chunk if t.strip()]
    if len(texts) < 2:
        raise BadInputError(f"--texts {path}: need at least 2 non-empty lines")
    return texts


def _column_pair(ctx, param, value):
    names = [v.strip() for v in value.split(",")]
    if len(names) != 2 or not all(names):
        raise click.BadParameter("give two column names separated by a comma, e.g. base,ref")
    return tuple(names)


_ALIGN_FLAGS = {"columns": "--parallel-columns", "weight": "--align-weight",
                "teacher": "--align-teacher", "batch_size": "--parallel-batch-size",
                "loss": "--align-loss"}


def _align_options(parallel, columns, weight, teacher, batch_size, loss=None):
    from domain_tune.training.distillation import align_options

    given = {"columns": columns, "weight": weight, "teacher": teacher, "batch_size": batch_size,
             "loss": loss}
    return align_options(parallel, given, _ALIGN_FLAGS, "--parallel FILE")


def _default_out():
    return os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))


@main.command("train")
@click.argument("pairs", type=click.Path())
@model_option
@click.option("--out", "-o", type=click.Path(), help="Run directory [default: runs/<timestamp>].")
@overwrite_option
@click.option("--resume", is_flag=True, help="Continue the interrupted run at --out.")
@click.option("--checkpoint-every", type=click.FloatRange(min=0), default=600, show_default=True,
              metavar="SECONDS",
              help="Write the resumable state (weights, optimizer moments: about 0.8 GB with the "
              "USE-m3 table) at the end of the first epoch that ends this long after the last "
              "write; 0: after every epoch. --resume continues from the last state written; a "
              "finished run needs none.")
@click.option("--text-columns", default="base,ref", show_default=True, callback=_column_pair,
              help="The two text columns of PAIRS.")
@click.option("--score-column", default="similarity", show_default=True)
@click.option("--score-range", nargs=2, type=float, default=(0.0, 1.0), show_default=True,
              metavar="LO HI", help="Range of the scores, rescaled to [0, 1] (e.g. 0 5 for STS).")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", "-b", type=int, default=8, show_default=True)
@click.option("--learning-rate", "--lr", type=float, default=1e-5, show_default=True)
@click.option("--beta-1", type=float, default=0.9, show_default=True)
@click.option("--beta-2", type=float, default=0.9999, show_default=True)
@click.option("--epsilon", type=float, default=1e-7, show_default=True)
@click.option("--clipnorm", type=float, default=1.0, show_default=True,
              help="Clip each gradient to this norm (0: no clipping).")
@click.option("--optimizer", type=click.Choice(["adam", "lazy-adam"]), default="adam",
              show_default=True,
              help="lazy-adam updates only the embedding rows of the batch (10x cheaper step).")
@click.option("--lr-schedule", type=click.Choice(["constant", "linear", "cosine"]),
              default="constant", show_default=True,
              help="After warm-up: keep the learning rate, or decay it (linear, cosine) to 0 "
              "at the last step.")
@click.option("--warmup", type=float, default=0.0, show_default=True,
              help="Fraction of all steps over which the learning rate rises from 0.")
@click.option("--mini-batch-size", type=click.IntRange(min=1), metavar="N",
              help="Cache gradients (GradCache): embed each batch N texts at a time, so a large "
              "--batch-size of in-batch negatives needs the memory of N texts only.")
@click.option("--bucket/--no-bucket", default=True, show_default=True,
              help="Group pairs of similar length into batches (less padding, 3-4x faster).")
@click.option("--validation-split", type=float, default=0.2, show_default=True)
@click.option("--validation-file", type=click.Path(), help="Validation pairs (instead of a split).")
@click.option("--patience", type=int, default=3, show_default=True, help="Early-stopping patience.")
@click.option("--min-delta", type=float, default=0.001, show_default=True)
@click.option("--monitor", type=click.Choice(["val_loss", "loss"]), default="val_loss",
              show_default=True, help="Early stopping watches this (loss reproduces the article).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--sts-dir", type=click.Path(), envvar="DOMAIN_TUNE_STS_DIR", show_envvar=True,
              help="STS benchmark folder for the before/after check.")
@click.option("--no-sts", is_flag=True, help="Skip the STS benchmark before/after.")
@click.option("--sts-limit", type=click.IntRange(min=2),
              help="Only the first N STS dev pairs (of the multilingual panel too).")
@click.option("--multilingual", metavar="LIST|all|none",
              help="Languages of the multilingual STS panel before/after (mono, cross-lingual "
              "en-LANG, translation retrieval) [default: de,ja,pl, if stsb-multi-mt data is found; "
              "else skipped with a notice].")
@multilingual_dir_option
@click.option("--texts", "texts_file", type=click.Path(),
              help="Texts of similarity.png, one per line [default: nine job titles].")
@click.option("--data-attribution", metavar="TEXT",
              help="Licence and attribution of PAIRS for the model card [default: the line with "
              "a (c) or licence in a README.md beside PAIRS].")
@click.option("--loss", type=click.Choice(["mse", "cosent", "in-batch", "in-batch-symmetric"]),
              default="mse",
              show_default=True,
              help="mse on angular similarity (the article's), CoSENT ranking, or in-batch "
              "negatives for positive pairs (best for retrieval; -symmetric ranks both ways).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Scale (inverse temperature) of the cosent and in-batch losses: cosines are "
              "multiplied by S before the softmax; lower is softer [default: 20].")
@click.option("--embeddings", type=click.Choice(["trainable", "frozen", "semi-frozen", "random"]),
              default="trainable", show_default=True,
              help="Which embedding rows train (semi-frozen: only new domain rows).")
@click.option("--add-vocab", metavar="FILE|auto",
              help="Add domain terms as whole pieces: a file (one per line) or 'auto' "
              "(frequent words of PAIRS split into 3+ pieces).")
@click.option("--max-new-pieces", type=int, default=256, show_default=True)
@click.option("--new-rows", type=click.Choice(["pieces", "mean"]), default="pieces",
              show_default=True,
              help="Start a new row from the mean of its old pieces, or of all rows.")
@click.option("--freeze-encoder", is_flag=True, help="Train only the embeddings.")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multi-worker"]),
              default="none", show_default=True,
              help="tf.distribute strategy: local GPUs (mirrored) or a TF_CONFIG cluster.")
@click.option("--cpu-replicas", type=click.IntRange(min=1),
              help="Split the CPU into N logical devices (with --distribute mirrored).")
@click.option("--mixed-precision", type=click.Choice(["bfloat16", "float16"]),
              help="Compute in 16 bits, keep float32 variables and loss (for GPUs).")
@click.option("--parallel", "parallel", type=click.Path(), metavar="FILE",
              help="Keep languages aligned while tuning: a CSV of parallel sentences (source, "
              "translation) for multilingual distillation (see `parallel-sentences`).")
@click.option("--parallel-columns", callback=lambda c, p, v: v and _column_pair(c, p, v),
              metavar="SRC,TGT", help="Source and translation columns of --parallel "
              "[default: its first two].")
@click.option("--align-weight", type=float, metavar="W",
              help="Weight of the distillation term added to the pair loss [default: 1.0].")
@click.option("--align-teacher", type=click.Choice(["base", "self"]),
              help="Target of a source and its translation: the frozen base model's embedding "
              "of the source, or the tuned model's own (gradient stopped; it can collapse the "
              "space at a high --align-weight, see the README) [default: base].")
@click.option("--parallel-batch-size", type=int, metavar="N",
              help="Parallel sentences per training step [default: 16].")
@click.option("--align-loss", type=click.Choice(["embedding", "similarity", "contrastive"]),
              help="The alignment objective: 'embedding' pulls both texts onto the teacher's "
              "embedding of the source (Reimers & Gurevych); 'similarity' matches the teacher's "
              "similarities between the batch's sentences, within and across languages; "
              "'contrastive' ranks each text's own translation first among the batch's (no "
              "teacher). Measured best on ESCO: contrastive with --align-weight 5 "
              "--parallel-batch-size 32 (see the README) [default: embedding].")
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch progress.")
@json_option
@needs_tensorflow
def train_cmd(pairs, model, out, overwrite, resume, checkpoint_every, text_columns, score_column, score_range,
              epochs, batch_size, learning_rate, beta_1, beta_2, epsilon, clipnorm, optimizer,
              lr_schedule, warmup, mini_batch_size, bucket, validation_split, validation_file, patience, min_delta, monitor, seed,
              sts_dir, no_sts, sts_limit, texts_file, loss, scale, embeddings, add_vocab, max_new_pieces,
              new_rows, freeze_encoder, distribute, cpu_replicas, mixed_precision, parallel,
              parallel_columns, align_weight, align_teacher, parallel_batch_size, align_loss, quiet,
              as_json, multilingual, multilingual_dir, data_attribution):
    """Fine-tune the encoder on scored pairs (columns base,ref,similarity).

    A shared-weight siamese model embeds both texts; their angular similarity
    1 - arccos(cos)/pi is trained with MSE against the score (see --loss for
    ranking losses; an optional 'negative' column holds hard negatives for
    them, as `pairs esco --hard-negatives` writes).  The defaults reproduce
    the article's recipe (Adam 1e-5, batch 8, 20 epochs, early stopping on
    val_loss with patience 3).  STS-B dev, the multilingual STS panel
    (--multilingual) and validation metrics are printed before and after; the run directory holds the tuned model
    (model.keras, saved_model/), history.csv, metrics.json, similarity.png and
    a model card.

    --parallel FILE keeps the languages aligned while the domain is learnt,
    on batches of parallel sentences beside the pairs (--align-loss: the
    teacher's embeddings or similarities distilled, or translations ranked).

    \b
    Example:
      domain-tune train data/esco_pairs_sample.csv --out runs/esco --sts-dir DIR
      domain-tune train pairs.csv --parallel parallel.csv --align-loss contrastive \\
        --align-weight 5 --parallel-batch-size 32
    """
    from domain_tune.training.embeddings import EmbeddingOptions
    from domain_tune.training.fit import FitOptions
    from domain_tune.training.run import TrainJob, TrainingFailed, train_run

    if no_sts:
        _warn_unused(["sts_dir", "sts_limit", "multilingual_dir"]
                     + ([] if (multilingual or "").strip().lower() == "none" else ["multilingual"]),
                     "has no effect with --no-sts; ignored")
    if not add_vocab:
        _warn_unused(["max_new_pieces", "new_rows"], "needs --add-vocab; ignored")
    if validation_file:
        _warn_unused(["validation_split"], "has no effect with --validation-file; ignored")
    if loss == "mse":
        _warn_unused(["scale"], "has no effect with --loss mse; ignored")

    job = TrainJob(
        pairs_path=pairs, out=out if out is not None else _default_out(), model=model, text_columns=text_columns,
        score_column=score_column, score_range=tuple(score_range),
        validation_split=validation_split, validation_file=validation_file,
        fit=FitOptions(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, clipnorm=clipnorm,
                       optimizer=optimizer, patience=patience, min_delta=min_delta,
                       monitor=monitor, seed=seed, loss=loss, scale=scale,
                       bucket_by_length=bucket,
                       lr_schedule=lr_schedule, warmup=warmup,
                       mini_batch_size=mini_batch_size, checkpoint_every=checkpoint_every),
        embeddings=EmbeddingOptions(strategy=embeddings, add_vocab=add_vocab,
                                    max_new_pieces=max_new_pieces, new_rows=new_rows,
                                    freeze_encoder=freeze_encoder),
        sts=not no_sts, sts_dir=sts_dir, sts_limit=sts_limit,
        multilingual=multilingual, multilingual_dir=multilingual_dir,
        plot_texts=_read_texts_file(texts_file) if texts_file else None,
        data_attribution=data_attribution, overwrite=overwrite, resume=resume, distribute=distribute, cpu_replicas=cpu_replicas,
        mixed_precision=mixed_precision, verbose=0 if (quiet or as_json) else 2,
        align=_align_options(parallel, parallel_columns, align_weight, align_teacher,
                             parallel_batch_size, align_loss),
    )
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        metrics = train_run(job, echo=echo)
    except TrainingFailed as e:  # a diverged run: too high a learning rate for the data
        raise BadInputError(str(e)) from None
    if as_json:
        _print_json(metrics)
    else:
        click.echo(
            f"Done in {metrics['seconds']:.0f} s: {_count(metrics['epochs_run'], 'epoch')} "
            f"(best {metrics['best_epoch']}), model in {metrics['out']}"
        )


@main.command("plot-similarity")
@model_option
@click.option("--compare", metavar="MODEL", help="A second model, drawn beside the first.")
@click.option("--texts", "texts_file", type=click.Path(),
              help="One text per line [default: the article's nine job titles].")
@click.option("--metric", type=click.Choice(["angular", "cosine"]), default="angular",
              show_default=True)
@click.option("--out", "-o", default="similarity.png", show_default=True, type=click.Path(),
              help="PNG file to write.")
@overwrite_option
@json_option
@needs_tensorflow
def plot_similarity_cmd(model, compare, texts_file, metric, out, overwrite, as_json):
    """Heatmap of pairwise similarity of texts under one or two models.

    With --compare, a third panel shows the second model minus the first
    (red: drawn together, blue: pushed apart) on a colour scale of its own.

    \b
    Example:
      domain-tune plot-similarity --compare runs/esco --out base_vs_tuned.png
    """
    from domain_tune.plotting import plot_similarity

    if not out.lower().endswith(".png"):
        raise BadInputError(f"--out {out}: the plot is a PNG; name it *.png")
    _refuse_existing(out, overwrite)
    texts = _read_texts_file(texts_file) if texts_file else None
    models = [(model, _load(model))]
    if compare:
        models.append((compare, _load(compare, "--compare")))
    drawn = plot_similarity(models, texts, out, metric)
    if as_json:
        _print_json({"out": out, "metric": metric, "texts": drawn["texts"],
                     "similarity": [{"model": name, "matrix": m.round(6).tolist()}
                                    for (name, _), m in zip(models, drawn["matrices"])]})
    else:
        click.echo(f"Wrote {out}")


# --- taxonomy pairs and retrieval ---


@main.group("pairs")
def pairs_group():
    """Build scored training pairs and a held-out retrieval set from a taxonomy.

    \b
    Example:
      domain-tune pairs esco ../shared/data/esco/occupations_en.csv --out esco_pairs
    """


# Defaults of the pair recipe; keep in sync with domain_tune.datasets.taxonomy and taxonomy_pairs
# (not imported here so that --help does not load pandas).
_ESCO_COLUMNS = {
    "id_column": "conceptUri", "label_column": "preferredLabel", "synonyms_column": "altLabels",
    "group_column": "iscoGroup", "description_column": "description",
}


def _pairs_options(f):
    """Options shared by `pairs esco` and `pairs taxonomy` (the recipe and the output)."""
    options = [
        click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create."),
        click.option("--holdout", type=float, default=0.2, show_default=True,
                     help="Fraction of concepts held out (by id) for evaluation, 0 to 1."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed of the hold-out split and of the sampled pairs."),
        click.option("--negatives", type=int, default=1, show_default=True,
                     help="Unrelated pairs per positive pair."),
        click.option("--synonym-pairs", "synonyms", type=int, default=0, show_default=True,
                     help="Positive pairs of two alternative labels of one concept, per concept."),
        click.option("--related", type=int, default=3, show_default=True,
                     help="Related pairs (same group) drawn per concept."),
        click.option("--positive-cosine", type=float, default=1.0, show_default=True,
                     help="Cosine target of a preferred label and its alternative label."),
        click.option("--related-cosine", type=float, default=0.7, show_default=True,
                     help="Cosine target of two concepts of one group."),
        click.option("--unrelated-cosine", type=float, default=0.0, show_default=True,
                     help="Cosine target of concepts of different groups."),
        click.option("--descriptions", is_flag=True,
                     help="Also pair each preferred label with its own description (positive) "
                     "and with others' (unrelated)."),
        click.option("--corpus-aware", is_flag=True,
                     help="The corpus-aware setting: also train on the corpus side of every "
                     "concept, held-out ones included (preferred label with its description and "
                     "its group); no held-out alternative label (query) enters training."),
        click.option("--only-groups", metavar="PREFIXES",
                     help="Keep only concepts whose group starts with one of these "
                     "comma-separated prefixes (e.g. 25,35)."),
        click.option("--max-pairs", type=int, help="Keep a random subset of this many training pairs."),
        click.option("--hard-negatives", is_flag=True,
                     help="Mine a hard negative for each positive pair with --mining-model (a "
                     "'negative' column, read by the in-batch losses)."),
        click.option("--mining-model", default="use-m3", show_default=True, metavar="MODEL",
                     help="Model that ranks the candidates for --hard-negatives."),
        click.option("--mining-depth", type=int, default=10, show_default=True,
                     help="Draw each hard negative from this many best-ranked candidates."),
        click.option("--hard-negatives-per-pair", "per_pair", type=click.IntRange(min=1),
                     default=1, show_default=True,
                     help="Hard negatives mined per positive pair (columns negative, "
                     "negative_2, ...)."),
        overwrite_option,
        json_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _column_options(defaults):
    """--id-column etc.: ESCO's names as defaults for `pairs esco`, required for `pairs taxonomy`."""

    def option(name, key, help, required):
        if defaults:  # (click 8.3+ counts an explicit default=None as a value given)
            return click.option(name, key, default=defaults[key], show_default=True,
                                metavar="COLUMN", help=help)
        return click.option(name, key, required=required, metavar="COLUMN", help=help)

    options = [
        option("--id-column", "id_column", "Column of the concept id (the hold-out unit).", True),
        option("--label-column", "label_column", "Column of the preferred label.", True),
        option("--synonyms-column", "synonyms_column", "Column of the alternative labels.", True),
        option("--group-column", "group_column",
               "Column of the group; concepts of a group are related.", False),
        option("--description-column", "description_column",
               "Column of the description (read with --descriptions or --corpus-aware).", False),
        click.option("--separator", default="\\n", show_default=True,
                     help="Separator of the alternative labels in one cell (\\n, \\t or text)."),
        click.option("--language", default="en", show_default=True, metavar="LANG",
                     help="Language of the labels of the main file (names the other languages' "
                     "cross-lingual pairs)."),
        click.option("--labels", "label_files", multiple=True, metavar="LANG=FILE",
                     help="Labels in one more language, joined by the id column: a file with the "
                     "same id, label and synonyms columns (e.g. de=occupations_de.csv). Repeat "
                     "for more languages; adds monolingual and cross-lingual pairs and "
                     "heldout_queries_LANG.csv, corpus_LANG.csv."),
    ]

    def decorate(f):
        for o in reversed(options):
            f = o(f)
        return f

    return decorate


def _make_pairs(path, out, overwrite, as_json, attribution, columns, separator, holdout, seed,
                negatives, synonyms, related, positive_cosine, related_cosine, unrelated_cosine,
                descriptions, only_groups, max_pairs, hard_negatives, mining_model, mining_depth,
                corpus_aware, language, label_files, per_pair=1):
    from domain_tune.datasets import taxonomy as tx
    from domain_tune.datasets.pairs_folder import write_pairs
    from domain_tune.datasets.taxonomy_pairs import build_pairs

    if not hard_negatives:
        _warn_unused(["mining_model", "mining_depth", "per_pair"],
                     "needs --hard-negatives; ignored")
    _refuse_existing(out, overwrite, "dir",
                     inputs=[path, *(f.partition("=")[2] for f in label_files)])
    if not (descriptions or corpus_aware):
        columns = dict(columns, description_column=None)
    label_files = tx.parse_label_files(label_files, language)
    taxonomy = tx.read_taxonomy(path, **columns, separator=tx.unescape_separator(separator),
                                language=language)
    for lang, label_path in label_files:
        taxonomy = tx.read_translation(
            taxonomy, lang, label_path, columns["id_column"], columns["label_column"],
            columns["synonyms_column"], separator=tx.unescape_separator(separator))
    if only_groups is not None:
        taxonomy = tx.only_groups(taxonomy, only_groups.split(","))
    pairset = build_pairs(
        taxonomy, holdout=holdout, seed=seed, negatives=negatives, related=related,
        cosines={"positive": positive_cosine, "related": related_cosine,
                 "unrelated": unrelated_cosine},
        descriptions=descriptions, max_pairs=max_pairs, synonyms=synonyms, corpus_aware=corpus_aware,
    )
    if hard_negatives:
        from domain_tune._env import import_tensorflow

        import_tensorflow()  # quietly, before the mining module imports it
        from domain_tune.datasets.mining import add_hard_negatives

        add_hard_negatives(pairset, mining_model, mining_depth, seed, progress=not as_json,
                           per_pair=per_pair)
    write_pairs(pairset, out, overwrite=overwrite, source=path, attribution=attribution,
                command=_command_line())
    s = pairset.stats
    if as_json:
        _print_json({"out": out, **s, "params": pairset.params})
    else:
        k = s["pairs"]
        click.echo(
            f"Wrote {_count(s['train_pairs'], 'training pair')} ({k['positive']:,} positive, "
            + (f"{k['synonym']:,} synonym, " if synonyms else "")
            + f"{k['related']:,} related, {k['unrelated']:,} unrelated"
            + (f", {k['description'] + k['description_unrelated']:,} with descriptions"
               if descriptions else "")
            + (f", {k['corpus_related'] + k['corpus_description'] + k['corpus_description_unrelated']:,}"
               " corpus-side" if corpus_aware else "")
            + (f", {sum(k[c] for c in ('cross_positive', 'translation', 'cross_unrelated')):,} "
               "cross-lingual" if label_files else "")
            + (f", {s['hard_negatives']:,} hard negatives" if hard_negatives else "")
            + f"), {_count(s['queries'], 'held-out query', 'held-out queries')} "
            f"({s['heldout_concepts']:,} of "
            f"{_count(s['concepts'], 'concept')}) and a corpus of {_count(s['corpus'], 'label')} "
            f"to {out}."
        )
        for lang, t in s.get("languages", {}).items():
            if lang != language:
                cross = s["cross_lingual"][f"{lang}-{language}"]
                click.echo(
                    f"  {lang}: {t['concepts']:,} concepts with a label, "
                    f"{sum(t['pairs'].values()):,} pairs within {lang}, "
                    f"{sum(cross.values()):,} {lang}-{language} pairs, {t['queries']:,} held-out "
                    f"queries (heldout_queries_{lang}.csv), a corpus of {t['corpus']:,} labels "
                    f"(corpus_{lang}.csv)"
                )


def _command_line():
    """The current command as typed, with the options given on the command line (for a README)."""
    import shlex

    from click.core import ParameterSource

    ctx = click.get_current_context()
    names, c = [], ctx  # the subcommands' names; the program's own (`python -m domain_tune.cli`,
    while c.parent is not None:  # a path to the script) is replaced by the installed command
        names.append(c.info_name)
        c = c.parent
    parts = ["domain-tune", *reversed(names)]
    options = []
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            parts.append(shlex.quote(str(value)))
        elif getattr(param, "is_flag", False):
            options.append(param.opts[0] if value else param.secondary_opts[0])
        elif param.multiple:
            for item in value:
                options += [param.opts[0], shlex.quote(str(item))]
        else:
            options += [param.opts[0], shlex.quote(str(value))]
    return " ".join(parts + options)


@pairs_group.command("esco")
@click.argument("path", metavar="OCCUPATIONS_CSV", type=click.Path())
@_column_options(_ESCO_COLUMNS)
@_pairs_options
def pairs_esco_cmd(path, out, overwrite, as_json, separator, **kwargs):
    """Scored pairs from ESCO occupations (occupations_en.csv).

    `pairs taxonomy` with ESCO's columns: conceptUri, preferredLabel,
    altLabels (newline-separated), iscoGroup (ISCO-08 unit group),
    description.  Scores are the angular similarities of the cosine targets:
    1.0 for an alternative label and its preferred label, 0.7468 for two
    occupations of one unit group, 0.5 for unrelated occupations.  Writes
    train.csv, heldout_queries.csv, corpus.csv and README.md to --out.

    With --labels de=occupations_de.csv (and more), labels in other
    languages join by conceptUri: pairs within each language, cross-lingual
    pairs, and heldout_queries_LANG.csv / corpus_LANG.csv per language.
    --corpus-aware also trains on the corpus side of the held-out
    occupations (never on their alternative labels).

    \b
    Example:
      domain-tune pairs esco ../shared/data/esco/occupations_en.csv --out esco_pairs
      domain-tune eval-retrieval --queries esco_pairs/heldout_queries.csv \\
          --corpus esco_pairs/corpus.csv
    """
    columns = {k: kwargs.pop(k) for k in _ESCO_COLUMNS}
    _make_pairs(path, out, overwrite, as_json, "ESCO © European Union", columns, separator, **kwargs)


@pairs_group.command("taxonomy")
@click.argument("path", metavar="FILE", type=click.Path())
@_column_options(None)
@click.option("--attribution", help="Attribution line for the README.md (e.g. the data's licence).")
@_pairs_options
def pairs_taxonomy_cmd(path, out, overwrite, as_json, separator, attribution, **kwargs):
    """Scored pairs from any taxonomy CSV: id, preferred label, synonyms, group.

    One row per concept; the synonyms of a concept share one cell, split on
    --separator.  Concepts of one --group-column value are related (without
    it there are no related pairs).  Same recipe, options and outputs as
    `pairs esco`, including --labels LANG=FILE for other languages (files
    with the same id, label and synonyms columns) and --corpus-aware.

    \b
    Example:
      domain-tune pairs taxonomy skills.csv --id-column id --label-column name \\
          --synonyms-column synonyms --group-column family --out skill_pairs
    """
    columns = {k: kwargs.pop(k) for k in _ESCO_COLUMNS}
    _make_pairs(path, out, overwrite, as_json, attribution, columns, separator, **kwargs)


@main.command("mine-negatives")
@click.argument("pairs", type=click.Path())
@click.option("--out", "-o", required=True, type=click.Path(), help="Pairs CSV to write.")
@model_option
@click.option("--depth", type=int, default=10, show_default=True,
              help="Draw each negative from this many best-ranked candidates.")
@click.option("--per-pair", type=click.IntRange(min=1), default=1, show_default=True,
              help="Negatives per positive pair (columns negative, negative_2, ...), distinct, "
              "drawn from the --depth best.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--text-columns", default="base,ref", show_default=True, callback=_column_pair,
              help="The two text columns.")
@click.option("--score-column", default="similarity", show_default=True)
@click.option("--score-range", type=(float, float), default=(0.0, 1.0), show_default=True,
              metavar="LO HI",
              help="Range of the scores (rescaled to [0, 1]); positives score >= 0.99 of it.")
@overwrite_option
@json_option
@needs_tensorflow
def mine_negatives_cmd(pairs, out, model, depth, per_pair, seed, text_columns, score_column,
                       score_range, overwrite, as_json):
    """Add a hard negative to each positive pair of a pairs file.

    For each positive pair (score >= 0.99), --model ranks the refs of all
    positive pairs for its base and one of the --depth best that is not a
    positive of that base becomes its 'negative' (--per-pair N: N distinct
    ones, in negative, negative_2, ...).  The in-batch losses of `train` rank
    the ref above all of them.  Other columns are kept.

    \b
    Example:
      domain-tune mine-negatives pairs.csv --out pairs_hn.csv
      domain-tune train pairs_hn.csv --loss in-batch-symmetric
    """
    from domain_tune.datasets.mining import mine_pairs_file
    from domain_tune.outputs import check_table_out

    check_table_out(out, "pairs")
    _refuse_existing(out, overwrite, inputs=[pairs])
    if depth < 1:
        raise BadInputError(f"--depth must be at least 1 (got {depth})")
    if seed < 0:
        raise BadInputError(f"--seed must be 0 or more (got {seed})")
    if per_pair > depth:
        raise BadInputError(f"--per-pair {per_pair} exceeds the --depth {depth} it draws from")
    info = mine_pairs_file(pairs, out, _load(model), depth, seed, text_columns, score_column,
                           score_range, progress=not as_json, per_pair=per_pair)
    if as_json:
        _print_json({"out": out, "model": model, **info})
    else:
        click.echo(f"Wrote {_count(info['pairs'], 'pair')} with "
                   f"{_count(info['hard_negatives'], 'hard negative')} "
                   f"(of {_count(info['positive'], 'positive pair')}) to {out}.")


@main.command("eval-retrieval")
@model_option
@click.option("--queries", "-q", "queries_path", required=True, type=click.Path(),
              help="CSV of queries and their correct ids (e.g. heldout_queries.csv).")
@click.option("--corpus", "-c", "corpus_path", required=True, type=click.Path(),
              help="CSV of labels and their ids to rank (e.g. corpus.csv).")
@click.option("--query-column", default="query", show_default=True, help="Query text column.")
@click.option("--label-column", default="label", show_default=True, help="Corpus text column.")
@click.option("--id-column", default="conceptUri", show_default=True,
              help="Id column, in both files.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N distinct queries.")
@click.option("--lexical-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Add this times the character 2-4-gram TF-IDF cosine to the dense score.")
@click.option("--description-column", metavar="COLUMN",
              help="A second text of each corpus entry (e.g. its description), embedded too.")
@click.option("--description-weight", type=click.FloatRange(min=0), default=0.0,
              show_default=True,
              help="An entry's vector is normalize(label + W x description).")
@click.option("--tune-on", "tune_path", type=click.Path(), metavar="QUERIES.csv",
              help="Choose --lexical-weight and --description-weight on these validation queries "
              "(same columns as --queries; never the evaluated ones).")
@batch_size_option()
@json_option
@needs_tensorflow
def eval_retrieval_cmd(model, queries_path, corpus_path, query_column, label_column, id_column,
                       limit, lexical_weight, description_column, description_weight, tune_path,
                       batch_size, as_json):
    """Top-1/5/10 accuracy and MRR of ranking a corpus for each query.

    The corpus is embedded once; each query ranks every corpus id by cosine
    similarity.  A query listed with several ids counts as correct at the
    best-ranked one; an id with several labels scores as its best label.
    Hybrid scoring adds --lexical-weight x the character n-gram TF-IDF cosine
    of query and label, and represents each entry by normalize(label +
    --description-weight x description); --tune-on chooses both weights on
    validation queries.

    \b
    Example:
      domain-tune eval-retrieval --queries esco_pairs/heldout_queries.csv \\
          --corpus esco_pairs/corpus.csv --json
    """
    from domain_tune.api import evaluate_retrieval

    start = time.perf_counter()
    result = evaluate_retrieval(model, queries_path, corpus_path, query_column=query_column,
                                label_column=label_column, id_column=id_column, limit=limit,
                                lexical_weight=lexical_weight,
                                description_column=description_column,
                                description_weight=description_weight, tune_on=tune_path,
                                batch_size=batch_size, progress=not as_json)
    seconds = time.perf_counter() - start
    result.update({"model": model, "seconds": round(seconds, 3)})
    if as_json:
        _print_json(result)
    else:
        click.echo(
            f"Retrieval ({result['n']:,} queries, corpus of {result['corpus']:,}): "
            f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  "
            f"top-10 {result['top10']:.4f}  MRR {result['mrr']:.4f}  [{model}, {seconds:.1f} s]"
        )
        if "weights" in result:
            w = result["weights"]
            chosen = (f" (chosen on {result['validation']['n']:,} validation queries)"
                      if "validation" in result else "")
            click.echo(f"Hybrid: lexical weight {w['lexical']:g}, description weight "
                       f"{w['description']:g}{chosen}")


@main.command("match")
@click.argument("queries", type=click.Path())
@click.option("--corpus", "-c", "corpus", required=True, type=click.Path(),
              help="Texts to match against: a text file (one per line) or a CSV.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output .csv or .jsonl.")
@model_option
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Matches per query.")
@click.option("--min-score", type=float, help="Leave out matches under this cosine similarity.")
@click.option("--query-column", metavar="COLUMN",
              help="Column of QUERIES when it is a CSV [default: its only column].")
@click.option("--corpus-column", metavar="COLUMN",
              help="Column of --corpus when it is a CSV [default: its only column].")
@click.option("--id-column", metavar="COLUMN",
              help="Id column of the --corpus CSV [default: the row number; line number for a "
              "text file].")
@click.option("--corpus-embeddings", type=click.Path(), metavar="FILE.npy",
              help="Reuse the corpus embeddings in FILE.npy (written by `embed` or an earlier "
              "`match`), refused if another model or other texts made them; written if absent.")
@click.option("--lexical-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Rank by cosine + W x the character 2-4-gram TF-IDF cosine (hybrid; adds a "
              "'score' column).")
@click.option("--description-column", metavar="COLUMN",
              help="A second text of each corpus entry (e.g. its description): each entry is "
              "ranked by normalize(label + --description-weight x description).")
@click.option("--description-weight", type=click.FloatRange(min=0), default=0.5,
              show_default=True, help="Weight of the description (with --description-column).")
@batch_size_option()
@overwrite_option
@json_option
@needs_tensorflow
def match_cmd(queries, corpus, out, model, top_k, min_score, query_column, corpus_column,
              id_column, corpus_embeddings, lexical_weight, description_column,
              description_weight, batch_size, overwrite, as_json):
    """For each query, the --top-k most similar corpus entries, with scores.

    One row per match: query, rank (1 = best), corpus_id, corpus_text, cosine
    and angular similarity; CSV or JSONL by the extension of --out.  The
    search is exact and runs in memory-bounded blocks (the corpus embeddings
    plus 64 MB), so millions of queries stream through.

    \b
    Example:
      domain-tune match titles.txt --corpus ../shared/data/esco/occupations_en.csv \\
          --corpus-column preferredLabel --id-column conceptUri --out matches.csv
    """
    from domain_tune.matching import lexical_scorer, match_files

    if not description_column:
        _warn_unused(["description_weight"], "needs --description-column; ignored")
    info = match_files(None, queries, corpus, out, top_k=top_k, query_column=query_column,
                       corpus_column=corpus_column, id_column=id_column, min_score=min_score,
                       corpus_embeddings=corpus_embeddings, model_spec=model,
                       batch_size=batch_size, progress=not as_json, overwrite=overwrite,
                       scorer=lexical_scorer(lexical_weight), loader=lambda: _load(model),
                       description_column=description_column or None,
                       description_weight=description_weight)
    info["model"] = model
    if as_json:
        _print_json(info)
    else:
        reused = " (corpus embeddings reused)" if (info["corpus_embeddings"] or {}).get("reused") else ""
        queries_n = f"{info['queries']:,} quer{'y' if info['queries'] == 1 else 'ies'}"
        corpus_n = f"{info['corpus']:,} corpus entr{'y' if info['corpus'] == 1 else 'ies'}"
        click.echo(f"Wrote {_count(info['rows'], 'match', 'matches')} for {queries_n} against {corpus_n} "
                   f"to {out}{reused}.")


def _stsb_files(data_dir):
    """The stsb-LANG-SPLIT.csv files of ``data_dir`` (inputs that --out must not replace)."""
    if not data_dir or not os.path.isdir(data_dir):
        return []
    return [os.path.join(data_dir, n) for n in os.listdir(data_dir)
            if n.startswith("stsb-") and n.endswith(".csv")]


@main.command("parallel-sentences")
@click.argument("data_dir", type=click.Path(), required=False)
@click.option("--out", "-o", required=True, type=click.Path(), help="Parallel CSV to write.")
@click.option("--languages", metavar="LANG,...",
              help="Target languages [default: every language in DATA_DIR].")
@click.option("--source", default="en", show_default=True, help="The source language.")
@click.option("--split", type=click.Choice(["train", "dev", "test"]), default="train",
              show_default=True, help="Which stsb-LANG-SPLIT.csv files to read.")
@overwrite_option
@json_option
def parallel_sentences_cmd(data_dir, out, languages, source, split, overwrite, as_json):
    """Build a parallel CSV (source, translation, language) from stsb-multi-mt files.

    DATA_DIR holds the machine-translated STS benchmark, stsb-LANG-SPLIT.csv,
    row i of each language the translation of row i of the source language's
    file (default: $DOMAIN_TUNE_MULTILINGUAL_DIR, else the published files,
    downloaded once).  Each source sentence is paired with its translation in
    every other language.  The file is the input of `train --parallel`.

    \b
    Example:
      domain-tune parallel-sentences ../shared/data/stsb-multi-mt --out parallel.csv
      domain-tune train pairs.csv --parallel parallel.csv
    """
    from domain_tune.datasets.parallel import stsb_parallel, write_parallel
    from domain_tune.outputs import check_table_out

    check_table_out(out, "parallel sentences", (".csv",))
    _refuse_existing(out, overwrite, inputs=_stsb_files(data_dir))
    frame = stsb_parallel(data_dir, languages, split, source)
    write_parallel(frame, out)
    counts = frame["language"].value_counts(sort=False).to_dict()
    if as_json:
        _print_json({"out": out, "rows": len(frame), "sources": int(frame["source"].nunique()),
                     "languages": {k: int(v) for k, v in counts.items()}})
    else:
        click.echo(f"Wrote {_count(len(frame), 'parallel sentence')} "
                   f"({_count(int(frame['source'].nunique()), 'distinct source')}, "
                   f"{source} -> {', '.join(counts)}) to {out}.")


if __name__ == "__main__":  # pragma: no cover
    main()
