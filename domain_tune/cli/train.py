"""The train command: its options are the recipe's fields (:mod:`domain_tune.training.recipe`)."""

import click
from click.core import ParameterSource

from domain_tune import api
from domain_tune.cli.main import (
    _column_pair, _count, _print_json, _read_texts_file, json_option, main, needs_tensorflow,
)
from domain_tune.errors import BadInputError
from domain_tune.training import recipe

_TYPES = {"int": int, "float": float}


def _click_option(field):
    """The click option of one recipe field."""
    names = [field.name, field.cli_flag, *field.aliases] + ([field.short] if field.short else [])
    default = None if field.needs else field.default
    kw = {"help": field.help or None, "metavar": field.metavar}
    if field.envvar:
        kw.update(envvar=field.envvar, show_envvar=True)
    if field.kind == "bool":
        if field.secondary:
            names[1] = f"{field.cli_flag}/{field.secondary}"
            kw.update(default=default, show_default=True)
        else:
            kw.update(is_flag=True, default=False)
        kw.pop("metavar")
        return click.option(*names, **kw)
    if field.kind == "choice":
        kw["type"] = click.Choice(list(field.choices))
        kw.pop("metavar")
    elif field.kind in _TYPES:
        kind = _TYPES[field.kind]
        if field.minimum is not None:
            kind = (click.IntRange(min=field.minimum) if kind is int
                    else click.FloatRange(min=field.minimum, min_open=field.min_open))
        kw["type"] = kind
    elif field.kind == "range":
        kw.update(nargs=2, type=float)
    elif field.kind == "columns":
        kw["callback"] = lambda ctx, param, v: None if v is None else _column_pair(ctx, param, v)
        default = ",".join(default) if default else None
    elif field.kind in ("path", "texts"):
        kw["type"] = click.Path()
    kw.update(default=default, show_default=default is not None)
    return click.option(*names, **kw)


def recipe_options(f):
    """Every field of the recipe as an option of the decorated command, in the recipe's order."""
    for field in reversed(recipe.FIELDS):
        f = _click_option(field)(f)
    return f


def given_options(ctx, values):
    """The options given on the command line (the rest are the recipe's defaults, or read from
    the environment by the library itself)."""
    return {name: v for name, v in values.items()
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}


@main.command("train")
@click.argument("pairs", type=click.Path())
@click.option("--out", "-o", type=click.Path(), help="Run directory [default: runs/<timestamp>].")
@recipe_options
@json_option
@needs_tensorflow
def train_cmd(pairs, out, as_json, **values):
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
    from domain_tune.training.run import TrainingFailed

    options = given_options(click.get_current_context(), values)
    if options.get("texts"):
        options["texts"] = _read_texts_file(options["texts"])
    if as_json:
        options["quiet"] = True
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        run = api.train(pairs, out, echo=echo, **options)
    except TrainingFailed as e:  # a diverged run: too high a learning rate for the data
        raise BadInputError(str(e)) from None
    metrics = run.metrics
    if as_json:
        _print_json(metrics)
    else:
        click.echo(
            f"Done in {metrics['seconds']:.0f} s: {_count(metrics['epochs_run'], 'epoch')} "
            f"(best {metrics['best_epoch']}), model in {metrics['out']}"
        )
