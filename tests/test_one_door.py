"""The command line is one door over the Python API, and the training recipe is declared once."""

import ast
import copy
import dataclasses
import inspect
import textwrap

import click
import pytest

import domain_tune as dt
from domain_tune import api
from domain_tune.cli import main
from domain_tune.errors import BadInputError, OptionError
from domain_tune.training import recipe


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))
        else:
            yield " ".join(prefix + (name,)), command


def _api_calls(function, seen=None):
    """The names ``api.NAME`` called by ``function`` and by the module-level helpers it calls."""
    seen = set() if seen is None else seen
    function = inspect.unwrap(function)
    if function in seen:
        return set()
    seen.add(function)
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    calls = set()
    module = inspect.getmodule(function)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "api":
            calls.add(f.attr)
        elif isinstance(f, ast.Name) and f.id.startswith("_"):
            helper = getattr(module, f.id, None)
            if inspect.isfunction(helper) and helper.__module__ == module.__name__:
                calls |= _api_calls(helper, seen)
    return calls


COMMANDS = sorted(_commands(main))


def test_every_command_is_known():
    names = {name for name, _ in COMMANDS}
    assert {"train", "embed", "match", "eval-sts", "eval-translation", "eval-retrieval", "export",
            "interpolate", "plot-similarity", "mine-negatives", "parallel-sentences",
            "pairs esco", "pairs taxonomy"} <= names


@pytest.mark.parametrize("name, command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_each_command_calls_exactly_one_public_api_function(name, command):
    calls = _api_calls(command.callback)
    assert len(calls) == 1, f"{name} calls {sorted(calls) or 'no'} api functions"
    (called,) = calls
    assert not called.startswith("_") and callable(getattr(api, called)), called
    assert getattr(api, called).__doc__, f"api.{called} has no docstring"


def test_train_options_are_the_recipe_fields_with_the_recipe_defaults():
    train = main.commands["train"]
    options = {p.name: p for p in train.params if isinstance(p, click.Option)}
    for field in recipe.FIELDS:
        option = options[field.name]
        assert field.cli_flag in option.opts + option.secondary_opts or \
            any(o.startswith(field.cli_flag + "/") for o in option.opts), field.name
        if field.needs:  # given or not, the default is the recipe's
            assert option.default is None
        elif field.kind == "columns" and field.default:
            assert option.default == ",".join(field.default)
        elif field.kind == "bool" and not field.secondary:
            assert option.default is False and field.default is False
        else:
            assert option.default == field.default, field.name
    assert set(options) - {f.name for f in recipe.FIELDS} == {"out", "as_json"}
    assert dt.train_options() == {f.name: f.default for f in recipe.FIELDS}


def test_the_option_groups_take_their_defaults_from_the_recipe():
    from domain_tune.training.distillation import AlignOptions
    from domain_tune.training.embeddings import EmbeddingOptions
    from domain_tune.training.fit import FitOptions
    from domain_tune.training.run import TrainJob

    job = TrainJob(pairs_path="p.csv", out="o")
    groups = {"fit": FitOptions(), "embeddings": EmbeddingOptions(),
              "align": AlignOptions(parallel="x.csv"), "job": job}
    for field in recipe.FIELDS:
        if field.target is None or field.name == "parallel":
            continue
        part, key = field.target.split(".", 1)
        assert getattr(groups[part], key) == field.default, field.name
    assert job.sts is (not recipe.default("no_sts"))
    fit_fields = {f.name for f in dataclasses.fields(FitOptions)} - {"jit_compile"}
    assert fit_fields == {f.key for f in recipe.FIELDS if (f.target or "").startswith("fit.")}


def test_no_train_default_is_written_in_the_command_line_or_the_api():
    """The train command's module and api.py hold no number of the recipe's own (its learning
    rate, betas, epsilon, min_delta) in their code."""
    import domain_tune.cli.train as cli_train

    recipe_numbers = {recipe.default(n) for n in ("learning_rate", "beta_2", "epsilon",
                                                   "min_delta", "checkpoint_every")}
    for module in (cli_train, api):
        numbers = {node.value for node in ast.walk(ast.parse(inspect.getsource(module)))
                   if isinstance(node, ast.Constant) and isinstance(node.value, float)}
        assert not numbers & recipe_numbers, module.__name__


@pytest.mark.parametrize("options, message", [
    ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"seed": -3}, "seed must be 0 or more (got -3)"),
    ({"warmup": 1.5}, "warmup must be a fraction of the steps in [0, 1)"),
    ({"loss": "hinge"}, "loss must be one of mse, cosent, in-batch, in-batch-symmetric"),
    ({"parallel": "p.csv", "parallel_batch_size": 1, "align_loss": "contrastive"},
     "align_loss contrastive compares sentences within a batch: parallel_batch_size must be at "
     "least 2"),
])
def test_a_bad_python_option_is_named_by_its_parameter(tmp_path, options, message):
    with pytest.raises(BadInputError) as e:
        dt.train(tmp_path / "pairs.csv", tmp_path / "run", no_sts=True, **options)
    assert str(e.value) == message
    assert "--" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_the_command_line_spells_the_same_error_with_flags():
    e = OptionError("{0} must be a positive number", "learning_rate")
    from domain_tune.cli.main import flag

    assert str(e) == "learning_rate must be a positive number"
    assert e.spelt(flag) == "--learning-rate must be a positive number"
    assert flag("bucket") == "--bucket" and flag("texts") == "--texts"


def test_an_old_run_renders_the_same_card_after_a_default_changes(monkeypatch):
    from domain_tune.training.model_card import render
    from tests.training.test_model_card import METRICS

    m = copy.deepcopy(METRICS)
    m["recipe"] = recipe.record()
    before = render(m)
    fields = tuple(dataclasses.replace(f, default=99) if f.name == "epochs" else f
                   for f in recipe.FIELDS)
    monkeypatch.setattr(recipe, "FIELDS", fields)
    assert recipe.record()["epochs"]["default"] == 99  # today's recipe changed
    assert render(m) == before  # the card reads the run's own record
