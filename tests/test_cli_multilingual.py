"""eval-sts --panel / --language / --file and eval-translation: output and one-line errors."""

import json

import pytest

from tests.cli_helpers import error_line, run
from tests.datasets.test_stsb_multi import ROWS, write_dir


@pytest.fixture
def multi_dir(tmp_path):
    return write_dir(tmp_path / "multi")


def test_panel_json(multi_dir, tiny_model_dir):
    result = run("eval-sts", "--panel", "--multilingual-dir", multi_dir, "-m", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    panel = json.loads(result.stdout)
    assert panel["languages"] == ["de", "ja"] and panel["n"] == 4 and panel["split"] == "dev"
    assert set(panel["mono"]) == {"en", "de", "ja"}
    assert set(panel["cross"]) == {"en-de", "en-ja"}
    assert set(panel["cross"]["en-de"]) == {"pearson", "spearman"}
    assert panel["translation"]["en-ja"].keys() == {"en->ja", "ja->en"}
    assert set(panel["mean"]) == {"mono", "mono_spearman", "cross", "cross_spearman", "translation"}
    assert panel["model"] == str(tiny_model_dir)


def test_panel_text_and_languages(multi_dir, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("DOMAIN_TUNE_MULTILINGUAL_DIR", str(multi_dir))
    result = run("eval-sts", "--panel", "--languages", "ja", "-m", tiny_model_dir)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Multilingual STS dev (4 pairs per language, cosine;")
    assert [line.split()[0] for line in lines[1:]] == ["language", "en", "ja", "mean", "(mono"]


def test_language_and_cross_language(multi_dir, tiny_model_dir):
    mono = json.loads(run("eval-sts", "-l", "de", "--multilingual-dir", multi_dir, "-m", tiny_model_dir,
                          "--json").stdout)
    cross = json.loads(run("eval-sts", "-l", "en-de", "--multilingual-dir", multi_dir, "-m",
                           tiny_model_dir, "--json").stdout)
    panel = json.loads(run("eval-sts", "--panel", "--multilingual-dir", multi_dir, "-m", tiny_model_dir,
                           "--json").stdout)
    assert mono["language"] == "de" and mono["n"] == 4
    assert mono["pearson"] == pytest.approx(panel["mono"]["de"]["pearson"], abs=1e-5)
    assert cross["pearson"] == pytest.approx(panel["cross"]["en-de"]["pearson"], abs=1e-5)


def test_own_file(tmp_path, tiny_model_dir):
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(ROWS["de"]) + "\n", encoding="utf-8")
    result = json.loads(run("eval-sts", "--file", path, "-m", tiny_model_dir, "--json").stdout)
    assert result["n"] == 4 and result["file"] == str(path)
    assert set(result) == {"file", "n", "similarity", "pearson", "spearman", "model"}


def test_eval_translation_json(multi_dir, tiny_model_dir, tmp_path):
    result = run("eval-translation", "--multilingual-dir", multi_dir, "-m", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["pairs"]) == {"en-de", "en-ja"}
    assert out["pairs"]["en-de"]["n"] == 8
    assert set(out["pairs"]["en-de"]) == {"n", "en->de", "de->en"}
    par = tmp_path / "par.csv"
    par.write_text("id,it,en\n1,un gatto,a cat\n2,la pioggia,rain\n3,un gatto,a cat\n", encoding="utf-8")
    out = json.loads(run("eval-translation", "--parallel", par, "--parallel-columns", "en,it", "-m",
                         tiny_model_dir, "--json").stdout)
    assert out["pairs"]["en-it"]["n"] == 2  # the repeated pair counts once
    assert set(out["pairs"]["en-it"]) == {"n", "en->it", "it->en"}


@pytest.mark.parametrize(
    "files, args, message",
    [
        ({"de": ROWS["de"][:3]}, "eval-sts --panel --multilingual-dir {d}",
         "stsb-de-dev.csv has 3 rows but stsb-en-dev.csv has 4: the files are not row-aligned translations"),
        ({"de": ROWS["de"][:3]}, "eval-translation --multilingual-dir {d}",
         "stsb-de-dev.csv has 3 rows but stsb-en-dev.csv has 4: the files are not row-aligned translations"),
        ({}, "eval-sts --panel --languages de,fr --multilingual-dir {d}",
         "no stsb-fr-dev.csv in {d} (languages there for dev: en, de, ja)"),
        ({}, "eval-sts -l en-fr --multilingual-dir {d}",
         "no stsb-fr-dev.csv in {d} (languages there for dev: en, de, ja)"),
        ({}, "eval-sts -l fr --multilingual-dir {d}",
         "no stsb-fr-dev.csv in {d} (languages there for dev: en, de, ja)"),
        ({}, "eval-sts --panel --split train --multilingual-dir {d}",
         "no stsb-en-train.csv in {d} (languages there for train: none)"),
        ({"ja": []}, "eval-sts --panel --multilingual-dir {d}", "STS file {d}/stsb-ja-dev.csv is empty"),
        ({"de": ["a,b,7"] + ROWS["de"][1:]}, "eval-sts --panel --multilingual-dir {d}",
         "{d}/stsb-de-dev.csv:1: score 7 is outside 0-5"),
        ({"de": ["a,b,x"] + ROWS["de"][1:]}, "eval-sts -l de --multilingual-dir {d}",
         "{d}/stsb-de-dev.csv:1: score 'x' is not a number (the format has no header line: "
         "sentence1,sentence2,score rows only; remove a header)"),
        ({}, "eval-sts --panel --multilingual-dir {d}/nope", "--multilingual-dir {d}/nope: not a directory"),
        ({}, "eval-sts -l en-de-fr --multilingual-dir {d}",
         "language 'en-de-fr': give one language (de) or a pair (en-de)"),
        ({}, "eval-sts --panel --languages de,,fr --multilingual-dir {d}",
         "language '': use codes of letters, digits or _ separated by commas, e.g. de,fr,ja (or 'all')"),
        ({}, "eval-sts --panel --file x.csv", "--panel and --file exclude each other; give one"),
        ({}, "eval-sts --languages de", "--languages chooses the languages of --panel; add --panel"),
        ({}, "eval-sts --panel --similarity angular --multilingual-dir {d}",
         "--panel correlates cosine similarity; drop --similarity"),
        ({}, "eval-translation --parallel-columns en,de",
         "--parallel-columns names the columns of --parallel; add --parallel FILE"),
    ],
)
def test_one_line_errors(multi_dir, files, args, message):
    for lang, lines in files.items():
        (multi_dir / f"stsb-{lang}-dev.csv").write_text("\n".join(lines) + ("\n" if lines else ""),
                                                        encoding="utf-8")
    result = run(*args.format(d=multi_dir).split())
    assert result.exit_code == 2, result.output
    assert error_line(result) == "Error: " + message.format(d=multi_dir)


def test_file_errors(tmp_path):
    constant = tmp_path / "constant.csv"
    constant.write_text("a cat,a dog,2.5\nrain,sun,2.5\n", encoding="utf-8")
    result = run("eval-sts", "--file", constant)
    assert result.exit_code == 2
    assert error_line(result) == ("Error: every gold score is 2.5; Pearson and Spearman need "
                                  "scores that differ")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("caf\u00e9,b,5\n".encode("latin-1"))
    result = run("eval-sts", "--file", bad)
    assert result.exit_code == 2
    assert error_line(result) == (f"Error: {bad} is not valid UTF-8 (line 1, byte offset 3); "
                                  "re-save it as UTF-8")
    two = tmp_path / "two.csv"
    two.write_text("a,b,5\nc,d\n", encoding="utf-8")
    result = run("eval-sts", "--file", two)
    assert error_line(result) == (f"Error: {two}:2: expected 3 comma-separated fields (sentence1, "
                                  "sentence2, score), got 2; quote texts that contain commas")
    par = tmp_path / "par.csv"
    par.write_text("en,de\na,\n", encoding="utf-8")
    result = run("eval-translation", "--parallel", par)
    assert result.exit_code == 2
    assert error_line(result) == (f"Error: parallel file {par} is misaligned: row 2 has a sentence in one "
                                  "of 'en' / 'de' and none in the other")


def test_own_file_of_one_pair_is_bad_input(tmp_path, tiny_model_dir):
    path = tmp_path / "one.csv"
    path.write_text(ROWS["de"][0] + "\n", encoding="utf-8")
    result = run("eval-sts", "--file", path, "-m", tiny_model_dir)
    assert result.exit_code == 2, result.output
    assert "1 STS pair: Pearson and Spearman need at least 2" in error_line(result)
