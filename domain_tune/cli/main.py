"""The ``domain-tune`` click group, its error mapping and the options the commands share.

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
import warnings

import click

from domain_tune import __version__
from domain_tune.models.presets import DEFAULT_MODEL
from domain_tune.errors import (
    BadInputError, DomainTuneWarning, OptionError, OptionWarning, TrainingInterrupted,
)

DEBUG_VAR = "DOMAIN_TUNE_DEBUG"


def flag(name):
    """The command line's spelling of an option the library names by its Python name: the one
    place where field names become flags (the train recipe's own, else ``--`` + dashes)."""
    from domain_tune.training.recipe import flag as recipe_flag

    return recipe_flag(name)


def _one_line(message):
    return " ".join(str(message).split())


def _fail(message, code):
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """domain-tune's own warnings as one line; other libraries' only when debugging."""
    if isinstance(message, OptionWarning):
        click.echo(f"Warning: {_one_line(message.spelt(flag))}", err=True)
    elif issubclass(category, DomainTuneWarning):
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
            _fail(e.spelt(flag) if isinstance(e, OptionError) else str(e), 2)
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
                full = re.sub(r"\.tmp-\d+(\.[a-z]+)?$", "", full)
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
