"""The ``domain-tune`` command line: parse, call the library, print.

Errors the user can fix (:class:`~domain_tune.errors.BadInputError`, click's
usage errors) become one line on stderr and exit code 2, here and only here.
TensorFlow is imported inside the commands so that ``--help`` stays instant.
"""

import functools
import json
import os
import sys
import time

import click

from domain_tune import __version__
from domain_tune.errors import BadInputError, TrainingInterrupted

DEFAULT_MODEL = "use-m3"  # keep in sync with domain_tune.models.presets.DEFAULT_MODEL
DEBUG_VAR = "DOMAIN_TUNE_DEBUG"


def _one_line(message):
    return " ".join(str(message).split())


def _fail(message, code):
    click.echo(f"Error: {_one_line(message)}", err=True)
    sys.exit(code)


class DomainTuneGroup(click.Group):
    """A click group that reports every failure as one line with a fitting exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
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
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except Exception as e:  # an internal error: one line unless debugging
            if os.environ.get(DEBUG_VAR):
                raise
            _fail(f"{type(e).__name__}: {e} (set {DEBUG_VAR}=1 to see the traceback)", 1)
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
    """Import TensorFlow quietly before the command body (not for --help)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from domain_tune._env import import_tensorflow

        import_tensorflow()
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


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")(f)


def _load(model):
    from domain_tune.models.loading import load_model

    return load_model(model)


def _refuse_existing(path, overwrite):
    if os.path.exists(path) and not overwrite:
        raise BadInputError(f"--out {path} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise BadInputError(f"--out {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"--out {path}: directory {parent} is not writable")


def _print_json(obj):
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


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
    per text), .csv (text and e0..e511) or .jsonl ({"text", "embedding"}).
    Large inputs are streamed in chunks; memory does not grow with the file.

    \b
    Example:
      domain-tune embed titles.csv --column title --out titles.npy
    """
    from domain_tune.datasets.texts import count_texts, text_chunks
    from domain_tune.embedding import embed_to_file, output_format

    output_format(out)
    _refuse_existing(out, overwrite)
    n = count_texts(input_path, column)
    encoder = _load(model)
    start = time.perf_counter()
    info = embed_to_file(encoder, text_chunks(input_path, column), n, out, batch_size=batch_size)
    info.update({"model": model, "seconds": round(time.perf_counter() - start, 3)})
    if as_json:
        _print_json(info)
    else:
        click.echo(f"Wrote {info['texts']} embeddings of dimension {info['dim']} to {out}.")


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
@batch_size_option()
@json_option
@needs_tensorflow
def eval_sts_cmd(model, split, sts_dir, similarity, limit, batch_size, as_json):
    """STS benchmark Pearson and Spearman correlation of a model.

    Every pair of the split is scored (1,500 for dev); a malformed line is an
    error, never skipped.

    \b
    Example:
      domain-tune eval-sts --sts-dir ../shared/data/stsbenchmark --json
    """
    from domain_tune.datasets.sts import load_split
    from domain_tune.evaluation.sts import evaluate_sts

    data = load_split(split, sts_dir, limit)
    encoder = _load(model)
    start = time.perf_counter()
    result = evaluate_sts(
        encoder, data.sentences1, data.sentences2, data.scores, similarity,
        batch_size=batch_size, progress=not as_json,
    )
    seconds = time.perf_counter() - start
    result = {"split": split, **result, "model": model}
    if as_json:
        _print_json(result)
    else:
        click.echo(
            f"STS benchmark {split} ({result['n']} pairs, {similarity}): "
            f"Pearson {result['pearson']:.4f}  Spearman {result['spearman']:.4f}  "
            f"[{model}, {seconds:.1f} s]"
        )


@main.command("export")
@model_option
@click.option("--out", "-o", required=True, type=click.Path(), help="Directory to create.")
@overwrite_option
@needs_tensorflow
def export_cmd(model, out, overwrite):
    """Write a TF Hub-style SavedModel (strings in, embeddings out).

    Load it with only TensorFlow and tensorflow_text:

    \b
      import tensorflow_hub as hub, tensorflow_text
      embed = hub.load("DIR"); embed(["a text", "un testo"])
    """
    from domain_tune.export import export_saved_model

    _refuse_existing(out, overwrite)
    export_saved_model(_load(model), out, overwrite=overwrite)
    click.echo(f"Exported {model} to {out} (SavedModel, signature serving_default: inputs -> outputs).")


if __name__ == "__main__":  # pragma: no cover
    main()
