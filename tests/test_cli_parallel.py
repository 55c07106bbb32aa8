"""`train --parallel` (alignment-preserving tuning) and `parallel-sentences` through the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import error_line, run
from tests.training.test_distillation import SOURCES, TRANSLATIONS

FAST = ["--epochs", "2", "--learning-rate", "3e-3", "--patience", "10", "--no-sts", "--seed", "3",
        "--batch-size", "8"]


@pytest.fixture
def parallel_csv(tmp_path):
    path = tmp_path / "parallel.csv"
    pd.DataFrame({"en": SOURCES, "de": TRANSLATIONS, "language": "de"}).to_csv(path, index=False)
    return path


def test_train_with_parallel_sentences(tmp_path, tiny_model_dir, pairs_csv, parallel_csv):
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, *FAST, "--json",
                 "--parallel", parallel_csv, "--align-teacher", "self", "--align-weight", "2",
                 "--parallel-batch-size", "4")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    align = metrics["alignment"]
    assert align["teacher"] == "self" and align["weight"] == 2.0 and align["batch_size"] == 4
    assert align["sentences"] == 8 and align["columns"] == ["en", "de"]
    assert len(align["loss_per_epoch"]) == 2 and all(v > 0 for v in align["loss_per_epoch"])
    history = pd.read_csv(out / "history.csv")
    assert "align_loss" in history.columns and "val_align_loss" not in history.columns
    # metrics.json rounds the losses to 6 decimals
    np.testing.assert_allclose(np.round(history["align_loss"], 6), align["loss_per_epoch"],
                               rtol=1e-5)
    card = (out / "README.md").read_text()
    assert "multilingual distillation: 8 parallel sentences" in card and "teacher `self`" in card
    # the tuned model interpolates with its base like any run
    mixed = run("interpolate", "--model", out, "--base", tiny_model_dir, "--alpha", "0.5",
                "--out", tmp_path / "wise", "--json")
    assert mixed.exit_code == 0, mixed.output
    assert json.loads(mixed.stdout)["weights"] > 0
    # without --parallel there is no alignment entry
    plain = run("train", pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / "plain", *FAST,
                "--json")
    assert json.loads(plain.stdout)["alignment"] is None


def test_train_with_the_contrastive_objective(tmp_path, tiny_model_dir, pairs_csv, parallel_csv):
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--model", tiny_model_dir, "--out", out, *FAST, "--json",
                 "--parallel", parallel_csv, "--align-loss", "contrastive", "--align-weight", "5",
                 "--parallel-batch-size", "4")
    assert result.exit_code == 0, result.output
    align = json.loads(result.stdout)["alignment"]
    assert align["loss"] == "contrastive" and align["weight"] == 5.0 and align["batch_size"] == 4
    assert len(align["loss_per_epoch"]) == 2 and all(v > 0 for v in align["loss_per_epoch"])
    card = (out / "README.md").read_text()
    assert "objective `contrastive`, weight 5, 4 sentences per step" in card
    assert "teacher `" not in card  # no teacher is used


@pytest.mark.parametrize("content, extra, message", [
    ("en,de\nA cat.,\n", [], "is misaligned: row 2"),
    ("", [], "is empty"),
    ("en,de\n", [], "has a header but no sentences"),
    ("en,de\nA cat.,Eine Katze.\n", ["--parallel-columns", "source,translation"],
     "has no column 'source', 'translation' (columns: en, de)"),
])
def test_bad_parallel_file_exits_2(tmp_path, pairs_csv, content, extra, message):
    p = tmp_path / "p.csv"
    p.write_text(content)
    out = tmp_path / "run"
    result = run("train", pairs_csv, "--out", out, "--no-sts", "--parallel", p, *extra)
    assert result.exit_code == 2
    assert message in error_line(result)
    assert not out.exists() and not (tmp_path / "run.partial").exists()


def test_non_utf8_parallel_file_exits_2(tmp_path, pairs_csv):
    p = tmp_path / "p.csv"
    p.write_bytes("en,de\ncafé,Kaffee\n".encode("latin-1"))
    result = run("train", pairs_csv, "--out", tmp_path / "run", "--no-sts", "--parallel", p)
    assert result.exit_code == 2 and "not valid UTF-8" in error_line(result)


@pytest.mark.parametrize("args, message", [
    (["--align-weight", "2"], "--align-weight needs --parallel FILE"),
    (["--align-teacher", "self", "--parallel-batch-size", "8"],
     "--align-teacher, --parallel-batch-size need --parallel FILE"),
    (["--parallel", "P", "--align-weight", "-1"], "--align-weight must be a positive number"),
    (["--parallel", "P", "--parallel-batch-size", "0"], "--parallel-batch-size must be at least 1"),
    (["--parallel", "P", "--parallel-columns", "en"], "give two column names"),
    (["--parallel", "P", "--align-teacher", "student"], "'student' is not one of 'base', 'self'"),
    (["--align-loss", "similarity"], "--align-loss needs --parallel FILE"),
    (["--parallel", "P", "--align-loss", "contrastive", "--parallel-batch-size", "1"],
     "--align-loss contrastive compares sentences within a batch: --parallel-batch-size must be "
     "at least 2"),
    (["--parallel", "P", "--align-loss", "cosine"], "'cosine' is not one of 'embedding', "
     "'similarity', 'contrastive'"),
])
def test_bad_align_options_exit_2(tmp_path, pairs_csv, parallel_csv, args, message):
    args = [str(parallel_csv) if a == "P" else a for a in args]
    result = run("train", pairs_csv, "--out", tmp_path / "run", "--no-sts", *args)
    assert result.exit_code == 2 and message in error_line(result)


def test_parallel_sentences_command(tmp_path):
    from tests.conftest import shared_path

    folder = shared_path("stsb-multi-mt")
    out = tmp_path / "parallel.csv"
    result = run("parallel-sentences", folder, "--out", out, "--languages", "de,ja", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == ["source", "translation", "language"]
    assert info["rows"] == len(frame) and set(info["languages"]) == {"de", "ja"}
    # the train rows' sentences less those of the held-out panel (a fifth of the rows, and every
    # pair sharing a sentence with them): 7,957 of about 11,000
    assert 7_500 < info["sources"] < 8_500 and info["languages"]["de"] > 7_500
    en = pd.read_csv(folder / "stsb-en-train.csv", header=None, keep_default_na=False)
    de = pd.read_csv(folder / "stsb-de-train.csv", header=None, keep_default_na=False)
    from domain_tune.datasets.stsb_multi import heldout_rows

    held = set(heldout_rows(len(en)))
    kept = [i for i in range(len(en)) if i not in held and en[0][i] in set(frame.source)]
    assert kept and not any(i in held for i in kept[:50])
    i = kept[0]  # a source the file keeps is paired with its own row's translation
    row = frame[(frame.language == "de") & (frame.source == en[0][i])]
    assert de[0][i] in set(row.translation)
    assert not set(en[0][sorted(held)]) & set(frame.source)  # no held-out sentence is parallel data
    again = run("parallel-sentences", folder, "--out", out, "--languages", "de")
    assert again.exit_code == 2 and "already exists" in error_line(again)
    bad = run("parallel-sentences", folder, "--out", tmp_path / "x.csv", "--languages", "xx")
    assert bad.exit_code == 2 and "no stsb-xx-train.csv" in error_line(bad)
    assert not (tmp_path / "x.csv").exists()


def test_mirrored_with_parallel_matches_single_device(tmp_path, tiny_model_dir, pairs_csv,
                                                      parallel_csv):
    from tests.training.test_distribute import COMMON, _train

    # two epochs: with --align-weight 3 and no clipping, training amplifies the order of float
    # sums (mirrored vs one device) about tenfold an epoch, to 5e-3 by a third epoch on an
    # AVX2-only host
    args = [pairs_csv, "--model", tiny_model_dir, *COMMON, "--epochs", 2, "--clipnorm", 0,
            "--parallel", parallel_csv, "--parallel-batch-size", 4, "--align-weight", 3]
    single = _train([*args, "--out", tmp_path / "one"])
    mirrored = _train([*args, "--out", tmp_path / "two", "--distribute", "mirrored",
                       "--cpu-replicas", "2"])
    assert mirrored["replicas"] == 2
    one = pd.read_csv(tmp_path / "one" / "history.csv")
    two = pd.read_csv(tmp_path / "two" / "history.csv")
    # the same pair and parallel batches, split across two replicas; the first epoch differs
    # by the order of float sums alone
    assert len(one) == len(two) == 2
    for column in ("loss", "align_loss", "val_loss"):
        np.testing.assert_allclose(two[column][0], one[column][0], rtol=1e-4)
        np.testing.assert_allclose(two[column], one[column], rtol=1e-3)
    assert mirrored["alignment"]["loss_per_epoch"] == pytest.approx(
        single["alignment"]["loss_per_epoch"], rel=1e-3)
