"""`train` reports the multilingual STS panel before and after (or skips it with a notice)."""

import json
import os

import pytest

from tests.cli_helpers import error_line, run
from tests.datasets.test_stsb_multi import ROWS, write_dir

STS = "".join(f"g\tf\t2012\t{i:04d}\t{s}\t{a}\t{b}\n" for i, (a, b, s) in enumerate(
    [("A man dances.", "A man is dancing.", 5.0), ("A cat sleeps.", "A dog runs.", 0.5),
     ("It rains.", "The sun shines.", 1.0), ("A kid rides.", "A child rides.", 4.5)]))


@pytest.fixture
def sts_toy(tmp_path):
    folder = tmp_path / "sts"
    folder.mkdir()
    (folder / "sts-dev.csv").write_text(STS, encoding="utf-8")
    return folder


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("DOMAIN_TUNE_MULTILINGUAL_DIR", raising=False)


def _train(tmp_path, pairs_csv, model, sts, *extra):
    return run("train", pairs_csv, "--model", model, "--out", tmp_path / "run", "--epochs", 1,
               "--sts-dir", sts, *extra)


def test_panel_before_and_after(tmp_path, tiny_model_dir, pairs_csv, sts_toy, no_cache):
    multi = write_dir(tmp_path / "multi")
    result = _train(tmp_path, pairs_csv, tiny_model_dir, sts_toy, "--multilingual-dir", multi)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    before = next(line for line in lines if line.startswith("Multilingual STS (dev, 4 pairs, en + de,ja): mono"))
    assert "cross mean" in before and "translation accuracy" in before
    i = lines.index("Multilingual STS (dev, 4 pairs, en + de,ja), before -> after:")
    assert lines[i + 1].startswith("  mono mean Pearson ") and "translation accuracy" in lines[i + 1]
    assert lines[i + 2].startswith("  worst cross-lingual pair en-")
    with open(tmp_path / "run" / "metrics.json") as f:
        panel = json.load(f)["multilingual"]
    assert set(panel) == {"before", "after"}
    assert panel["before"]["languages"] == ["de", "ja"] and panel["after"]["n"] == 4
    assert set(panel["after"]["cross"]) == {"en-de", "en-ja"}
    card = (tmp_path / "run" / "README.md").read_text()
    assert "### Multilingual STS (dev, 4 pairs per language)" in card
    assert "| language | mono | cross en-LANG | translation en-LANG |" in card
    assert "| ja | " in card and "| mean (without en) | " in card


def test_chosen_languages_and_limit(tmp_path, tiny_model_dir, pairs_csv, sts_toy, no_cache, monkeypatch):
    monkeypatch.setenv("DOMAIN_TUNE_MULTILINGUAL_DIR", str(write_dir(tmp_path / "multi")))
    result = _train(tmp_path, pairs_csv, tiny_model_dir, sts_toy, "--multilingual", "ja",
                    "--sts-limit", 3, "--json")
    assert result.exit_code == 0, result.output
    panel = json.loads(result.stdout)["multilingual"]["after"]
    assert panel["languages"] == ["ja"] and panel["n"] == 3


NOTICE = ("multilingual STS skipped: no stsb-multi-mt data found; pass --multilingual-dir DIR (or set "
          "$DOMAIN_TUNE_MULTILINGUAL_DIR), or --multilingual LIST to download it, or --multilingual none "
          "to silence this")


def test_no_data_skips_with_one_notice(tmp_path, tiny_model_dir, pairs_csv, sts_toy, no_cache):
    result = _train(tmp_path, pairs_csv, tiny_model_dir, sts_toy)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines().count(NOTICE) == 1
    assert "Multilingual STS" not in result.stdout
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["multilingual"] is None
    assert "Multilingual" not in (tmp_path / "run" / "README.md").read_text()
    # nothing downloaded (matplotlib, drawing the heatmaps, may keep its font cache there)
    assert not (tmp_path / "empty-cache" / "domain-tune").exists()
    quiet = run("train", pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / "run2", "--epochs", 1,
                "--sts-dir", sts_toy, "--multilingual", "none")
    assert quiet.exit_code == 0 and "multilingual" not in quiet.stdout.lower()
    no_sts = run("train", pairs_csv, "--model", tiny_model_dir, "--out", tmp_path / "run3", "--epochs", 1,
                 "--no-sts")
    assert no_sts.exit_code == 0 and "multilingual" not in no_sts.stdout.lower()


def test_missing_chosen_language_is_an_error_before_training(tmp_path, tiny_model_dir, pairs_csv,
                                                             sts_toy, no_cache):
    multi = write_dir(tmp_path / "multi")
    result = _train(tmp_path, pairs_csv, tiny_model_dir, sts_toy, "--multilingual-dir", multi,
                    "--multilingual", "de,fr")
    assert result.exit_code == 2
    assert error_line(result) == f"Error: no stsb-fr-dev.csv in {multi} (languages there for dev: en, de, ja)"
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "run.partial")
