"""Weight-space interpolation (WiSE-FT) of a tuned encoder with its base."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from domain_tune.errors import BadInputError
from domain_tune.models.interpolation import interpolate
from domain_tune.models.loading import load_model
from domain_tune.models.semi_frozen import split_table
from domain_tune.models.vocabulary import extend_encoder
from tests.cli_helpers import error_line, run
from tests.conftest import make_tiny_encoder

TEXTS = tf.constant(["nurse", "data scientist", "wiredrawing machine operator"])


def _weights(encoder):
    """Every backbone weight by layer name, the token table as one array."""
    backbone = encoder.backbone
    out = {"table": np.concatenate([t for t in split_table(backbone.token_embedding)
                                    if t is not None])}
    for layer in backbone.layers:
        if layer is not backbone.token_embedding:
            for i, w in enumerate(layer.get_weights()):
                out[f"{layer.name}/{i}"] = w
    return out


@pytest.fixture
def pair(sp_model_path):
    """A base and a 'tuned' encoder of the same architecture with different weights."""
    base = make_tiny_encoder(sp_model_path, seed=0)
    tuned = make_tiny_encoder(sp_model_path, seed=1)
    base(TEXTS), tuned(TEXTS)
    return base, tuned


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_every_weight_is_the_weighted_mean(pair, alpha):
    base, tuned = pair
    b, t = _weights(base), _weights(tuned)
    assert not np.allclose(b["table"], t["table"])
    every_b = {v.path: np.array(v) for v in base.weights}  # all of the model, not only layers
    every_t = {v.path: np.array(v) for v in tuned.weights}
    merged, mixed = interpolate(base, tuned, alpha)
    m = _weights(merged)
    assert m.keys() == b.keys() and mixed["weights"] == len(b) == len(every_b)
    for key in b:
        np.testing.assert_allclose(m[key], alpha * t[key] + (1 - alpha) * b[key], rtol=1e-6,
                                   atol=1e-7, err_msg=key)
    for v in merged.weights:
        expected = alpha * every_t[v.path] + (1 - alpha) * every_b[v.path]
        np.testing.assert_allclose(np.array(v), expected, rtol=1e-6, atol=1e-7, err_msg=v.path)
    assert mixed["token_rows"] == len(b["table"]) and mixed["kept_rows"] == 0
    if alpha == 0.0:  # the base itself, end to end
        np.testing.assert_allclose(merged(TEXTS).numpy(), base(TEXTS).numpy(), atol=1e-6)


def test_added_domain_rows_keep_their_tuned_values(pair):
    base, tuned = pair
    extended, added = extend_encoder(tuned, ["wiredrawing", "podiatrist"])
    assert added
    extended(TEXTS)
    before = _weights(extended)["table"]
    rows = len(_weights(base)["table"])
    merged, mixed = interpolate(base, extended, 0.5)
    after = _weights(merged)["table"]
    assert mixed["kept_rows"] == len(before) - rows == len(added)
    np.testing.assert_array_equal(after[rows:], before[rows:])
    np.testing.assert_allclose(after[:rows], 0.5 * (before[:rows] + _weights(base)["table"]),
                               rtol=1e-6, atol=1e-7)


def test_a_vocabulary_that_does_not_extend_the_base_is_refused(pair):
    base, tuned = pair
    other_base, _ = extend_encoder(base, ["podiatrist"])
    other_tuned, _ = extend_encoder(tuned, ["wiredrawing", "kubernetes"])
    other_base(TEXTS), other_tuned(TEXTS)
    with pytest.raises(BadInputError, match="does not extend the base"):
        interpolate(other_base, other_tuned, 0.5)
    interpolate(base, other_tuned, 0.5)  # the unextended base is its prefix: fine


def test_models_of_another_architecture_or_format_are_refused(pair, sp_model_path, tmp_path):
    base, tuned = pair
    wider = make_tiny_encoder(sp_model_path, seed=2, embedding_dim=48)
    wider(TEXTS)
    with pytest.raises(BadInputError, match="token tables differ|differs in shape"):
        interpolate(base, wider, 0.5)
    with pytest.raises(BadInputError, match="must be in"):
        interpolate(base, tuned, 1.5)
    from domain_tune.export import export_saved_model

    export_saved_model(tuned, tmp_path / "sm")
    with pytest.raises(BadInputError, match="SavedModel or TF Hub"):
        interpolate(base, load_model(str(tmp_path / "sm")), 0.5)


def test_cli_writes_a_model_directory_every_command_loads(pair, tmp_path):
    base, tuned = pair
    for name, model in (("base", base), ("tuned", tuned)):
        os.makedirs(tmp_path / name)
        model.save(str(tmp_path / name / "model.keras"))
    out = tmp_path / "wise"
    result = run("interpolate", "-m", tmp_path / "tuned", "--base", tmp_path / "base",
                 "--alpha", 0.25, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alpha"] == 0.25 and report["kept_rows"] == 0 and report["sts_dev_pearson"] is None
    assert sorted(os.listdir(out)) == ["README.md", "model.keras", "saved_model"]
    assert "0.25 x tuned + 0.75 x base" in (out / "README.md").read_text()
    expected, _ = interpolate(base, tuned, 0.25)
    np.testing.assert_allclose(load_model(str(out))(TEXTS).numpy(), expected(TEXTS).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(load_model(str(out / "saved_model"))(TEXTS).numpy(),
                               expected(TEXTS).numpy(), atol=1e-5)
    again = run("interpolate", "-m", tmp_path / "tuned", "--base", tmp_path / "base",
                "--out", out)
    assert again.exit_code == 2 and "already exists" in error_line(again)


def test_cli_reports_sts_of_base_tuned_and_interpolated(pair, tmp_path, sts_dir):
    base, tuned = pair
    for name, model in (("base", base), ("tuned", tuned)):
        os.makedirs(tmp_path / name)
        model.save(str(tmp_path / name / "model.keras"))
    result = run("interpolate", "-m", tmp_path / "tuned", "--base", tmp_path / "base",
                 "--alpha", 0, "--out", tmp_path / "wise", "--sts-dir", sts_dir, "--json")
    assert result.exit_code == 0, result.output
    sts = json.loads(result.stdout)["sts_dev_pearson"]
    assert sts["base"] != sts["tuned"]
    assert sts["interpolated"] == pytest.approx(sts["base"], abs=1e-5)
    assert f"{sts['tuned']:.4f}" in (tmp_path / "wise" / "README.md").read_text()
