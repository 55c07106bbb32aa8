"""`domain-tune pairs esco|taxonomy` and `domain-tune eval-retrieval` from the command line."""

import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from domain_tune.cli import main
from tests.cli_helpers import error_line, run
from tests.conftest import ROOT, shared_path
from tests.datasets.toy_taxonomy import (
    ESCO_HEADER, MULTI, TOY, multilingual_label_keys, write_multilingual, write_toy_taxonomy,
)


@pytest.fixture
def toy_path(tmp_path):
    return write_toy_taxonomy(tmp_path / "occupations.csv")


def test_subcommands_have_help():
    for name in ("esco", "taxonomy"):
        result = run("pairs", name, "--help")
        assert result.exit_code == 0 and "--holdout" in result.output
        assert len(main.commands["pairs"].commands[name].help) > 20
    assert "--query-column" in run("eval-retrieval", "--help").output


def test_pairs_esco(toy_path, tmp_path):
    out = tmp_path / "pairs"
    result = run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.25, "--seed", 1, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["concepts"] == 12 and info["heldout_concepts"] == 3
    assert sorted(os.listdir(out)) == ["README.md", "corpus.csv", "heldout_queries.csv", "train.csv"]
    train = pd.read_csv(out / "train.csv")
    assert list(train.columns) == ["base", "ref", "similarity"] and len(train) == info["train_pairs"]
    assert list(pd.read_csv(out / "heldout_queries.csv").columns) == ["query", "conceptUri"]
    assert list(pd.read_csv(out / "corpus.csv").columns) == ["label", "conceptUri"]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "ESCO © European Union" in readme
    assert f"domain-tune pairs esco {toy_path} --out {out} --holdout 0.25 --seed 1 --json" in readme
    # same seed, same files; an existing --out needs --overwrite
    again = run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.25, "--seed", 1, "--overwrite")
    assert again.exit_code == 0 and "training pairs" in again.stdout
    assert f"{info['queries']:,} held-out queries (3 of 12 concepts)" in again.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "train.csv"), train)


def test_the_recorded_command_runs_when_made_through_python_m(toy_path, tmp_path):
    """`python -m domain_tune.cli pairs ...` records `domain-tune pairs ...`, and that command runs."""
    out = tmp_path / "made by python -m"
    made = subprocess.run(
        [sys.executable, "-m", "domain_tune.cli", "pairs", "esco", str(toy_path), "--out", str(out),
         "--holdout", "0.25", "--seed", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    readme = (out / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    command = lines[lines.index("Made with:") + 3]
    assert command == (f"domain-tune pairs esco {shlex.quote(str(toy_path))} "
                       f"--out {shlex.quote(str(out))} --holdout 0.25 --seed 1")
    # run it as a user would, through the installed command, and get the same folder back
    bin_dir = pathlib.Path(sys.executable).parent
    if not shutil.which("domain-tune", path=str(bin_dir)):
        pytest.skip(f"the domain-tune command is not installed beside {sys.executable}")
    first = tmp_path / "first"
    out.rename(first)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    again = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    for name in ("train.csv", "heldout_queries.csv", "corpus.csv", "README.md"):
        assert (out / name).read_bytes() == (first / name).read_bytes(), name


def test_pairs_taxonomy_generic(tmp_path):
    src = tmp_path / "skills.csv"
    src.write_text("id,name,syn,family\n1,python,py|python3,prog\n2,rust,rustlang,prog\n"
                   "3,baking,bread making|pastry,food\n4,sewing,needlework,craft\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run("pairs", "taxonomy", src, "--id-column", "id", "--label-column", "name",
                 "--synonyms-column", "syn", "--group-column", "family", "--separator", "|",
                 "--holdout", 0.25, "--attribution", "Skills © Someone", "--out", out)
    assert result.exit_code == 0, result.output
    queries = pd.read_csv(out / "heldout_queries.csv")
    assert list(queries.columns) == ["query", "id"]
    assert "Skills © Someone" in (out / "README.md").read_text(encoding="utf-8")
    assert "--id-column id" in (out / "README.md").read_text(encoding="utf-8")


def test_a_taxonomy_pairs_folder_needs_no_id_option(tmp_path, tiny_model_dir):
    """`pairs taxonomy` names the id column as the taxonomy does (here `id`); eval-retrieval,
    match and index read it from the folder's files without --id-column."""
    src = tmp_path / "skills.csv"
    src.write_text("id,name,syn,family\n1,python,py|python3,prog\n2,rust,rustlang|rs,prog\n"
                   "3,baking,bread making|pastry,food\n4,sewing,needlework|stitching,craft\n",
                   encoding="utf-8")
    out = tmp_path / "out"
    assert run("pairs", "taxonomy", src, "--id-column", "id", "--label-column", "name",
               "--synonyms-column", "syn", "--group-column", "family", "--separator", "|",
               "--holdout", 0.5, "--out", out).exit_code == 0
    queries, corpus = out / "heldout_queries.csv", out / "corpus.csv"
    result = run("eval-retrieval", "--model", tiny_model_dir, "--queries", queries,
                 "--corpus", corpus, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["corpus"] == 4
    matches = tmp_path / "m.csv"
    result = run("match", queries, "--corpus", corpus, "--model", tiny_model_dir, "--out", matches)
    assert result.exit_code == 0, result.output
    got = pd.read_csv(matches, dtype=str)
    assert set(got["corpus_id"]) <= {"1", "2", "3", "4"}  # the folder's ids, not row numbers
    assert set(got["query"]) == set(pd.read_csv(queries)["query"])
    # two files that share no id column: one line naming the option
    (tmp_path / "other.csv").write_text("label,code\npython,1\nrust,2\n", encoding="utf-8")
    result = run("eval-retrieval", "--model", tiny_model_dir, "--queries", queries,
                 "--corpus", tmp_path / "other.csv")
    assert result.exit_code == 2 and "share no id column; name it with --id-column" in error_line(result)


def test_pairs_with_hard_negatives(toy_path, tmp_path, tiny_model_dir):
    out = tmp_path / "pairs"
    result = run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.25, "--hard-negatives",
                 "--mining-model", tiny_model_dir, "--mining-depth", 2, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    train = pd.read_csv(out / "train.csv", keep_default_na=False)
    assert list(train.columns) == ["base", "ref", "similarity", "negative"]
    positive = train[train.similarity >= 0.99]
    assert info["hard_negatives"] == len(positive) > 0
    assert (train[train.similarity < 0.99].negative == "").all()
    # a negative is another training concept's preferred label, never the pair's own
    refs = set(positive.ref)
    assert set(positive.negative) <= refs and (positive.negative != positive.ref).all()
    heldout = set(pd.read_csv(out / "heldout_queries.csv").conceptUri)
    corpus = pd.read_csv(out / "corpus.csv")
    assert not set(corpus[corpus.conceptUri.isin(heldout)].label) & set(positive.negative)
    assert info["params"]["hard_negatives"] == {"model": str(tiny_model_dir), "depth": 2,
                                                "per_pair": 1}
    assert "`base,ref,similarity,negative`" in (out / "README.md").read_text(encoding="utf-8")
    # the file trains with an in-batch loss, which reads the negatives
    run_out = tmp_path / "run"
    trained = run("train", out / "train.csv", "--model", tiny_model_dir, "--out", run_out,
                  "--epochs", 1, "--loss", "in-batch", "--no-sts", "--json")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    assert 0 < metrics["hard_negatives"] <= info["hard_negatives"]
    # a validation file without negatives is fine; mse does not read them at all
    val = tmp_path / "val.csv"
    train.drop(columns="negative").head(6).to_csv(val, index=False)
    trained = run("train", out / "train.csv", "--model", tiny_model_dir, "--out", tmp_path / "run2",
                  "--epochs", 1, "--loss", "in-batch-symmetric", "--validation-file", val,
                  "--no-sts", "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["hard_negatives"] == info["hard_negatives"]
    trained = run("train", out / "train.csv", "--model", tiny_model_dir, "--out", tmp_path / "run3",
                  "--epochs", 1, "--no-sts", "--json")
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["hard_negatives"] == 0


def test_pairs_corpus_aware_with_hard_negatives(toy_path, tmp_path, tiny_model_dir):
    out = tmp_path / "pairs"
    result = run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.5, "--seed", 3,
                 "--corpus-aware", "--hard-negatives", "--mining-model", tiny_model_dir,
                 "--mining-depth", 3, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["params"]["setting"] == "corpus-aware"
    assert info["pairs"]["corpus_description"] == 12 and info["hard_negatives"] > 0
    train = pd.read_csv(out / "train.csv", keep_default_na=False)
    queries = pd.read_csv(out / "heldout_queries.csv", keep_default_na=False)
    corpus = pd.read_csv(out / "corpus.csv", keep_default_na=False)
    # the held-out concepts' preferred labels are trained on, their alternative labels never
    heldout = set(queries.conceptUri)
    texts = {t.casefold() for column in ("base", "ref", "negative") for t in train[column]}
    assert set(corpus[corpus.conceptUri.isin(heldout)].label.str.casefold()) & texts
    key = lambda text: " ".join(text.split()).casefold()  # noqa: E731
    alternative = {key(a) for cid, _, label, alts, _ in TOY if cid in heldout
                   for a in alts.split("\n") if a.strip() and key(a) != key(label)}
    assert len(alternative) > len(queries) and not alternative & texts  # shared ones too
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "Setting: **corpus-aware**" in readme and "--corpus-aware" in readme


def test_pairs_esco_in_several_languages(tmp_path):
    paths = write_multilingual(tmp_path)
    out = tmp_path / "pairs"
    result = run("pairs", "esco", paths["en"], "--labels", f"de={paths['de']}", "--labels",
                 f"fr={paths['fr']}", "--out", out, "--holdout", 0.5, "--seed", 2)
    assert result.exit_code == 0, result.output
    assert "  de: 3 concepts with a label" in result.stdout
    assert sorted(os.listdir(out)) == [
        "README.md", "corpus.csv", "corpus_de.csv", "corpus_fr.csv", "heldout_queries.csv",
        "heldout_queries_de.csv", "heldout_queries_fr.csv", "train.csv"]
    heldout = set(pd.read_csv(out / "heldout_queries.csv").conceptUri)
    assert len(heldout) == 2
    train = pd.read_csv(out / "train.csv", keep_default_na=False)
    texts = {" ".join(t.split()).casefold() for t in pd.concat([train.base, train.ref])}
    assert not {k for c in heldout for k in multilingual_label_keys(c)} & texts
    for language in ("de", "fr"):
        queries = pd.read_csv(out / f"heldout_queries_{language}.csv", keep_default_na=False)
        corpus = pd.read_csv(out / f"corpus_{language}.csv", keep_default_na=False)
        assert list(queries.columns) == ["query", "conceptUri"] and set(queries.conceptUri) <= heldout
        assert corpus.values.tolist() == [[row[1], row[0]] for row in MULTI[language]]
    readme = (out / "README.md").read_text(encoding="utf-8")
    # the command as typed, every --labels kept
    assert (f"--labels de={paths['de']} --labels fr={paths['fr']} --out {out} --holdout 0.5 --seed 2"
            in readme)
    assert "## Languages" in readme and f"| de | `{paths['de']}` | 3 |" in readme
    # --json: counts per language and per pair of languages
    again = run("pairs", "esco", paths["en"], "--labels", f"de={paths['de']}", "--out", out,
                "--holdout", 0.5, "--seed", 2, "--overwrite", "--json", "--language", "en")
    info = json.loads(again.stdout)
    assert info["params"]["languages"] == ["en", "de"] and set(info["cross_lingual"]) == {"de-en"}
    assert not os.path.exists(out / "corpus_fr.csv")  # --overwrite replaces the whole folder


def test_pairs_taxonomy_main_language_names_the_pairs(tmp_path):
    src, de = tmp_path / "skills.csv", tmp_path / "skills_de.csv"
    src.write_text("id;name;syn\n1;cuisine;cuisine française|gastronomie\n2;couture;stylisme\n",
                   encoding="utf-8")
    de.write_text("id;name;syn\n1;Kochkunst;Gastronomie\n2;Schneiderei;Modedesign\n", encoding="utf-8")
    result = run("pairs", "taxonomy", src, "--id-column", "id", "--label-column", "name",
                 "--synonyms-column", "syn", "--separator", "|", "--language", "fr",
                 "--labels", f"de={de}", "--holdout", 0, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["params"]["languages"] == ["fr", "de"]
    # "Gastronomie" is a French alternative label of the same concept too: its cross-lingual pairs
    # are French ones already
    assert info["cross_lingual"]["de-fr"] == {"cross_positive": 1, "translation": 2, "cross_unrelated": 1}


@pytest.mark.parametrize("de_content, args, message", [
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\nc7,Maler,\n", [],
     "de labels {tmp}/de.csv: row 3 has a conceptUri that is not in taxonomy {tmp}/occupations_en.csv "
     "('c7')"),
    ("conceptUri,preferredLabel\nc1,Koch\n", [], "has no column 'altLabels' (--synonyms-column)"),
    ("", [], "de labels {tmp}/de.csv is empty"),
    (None, [], "de labels {tmp}/de.csv does not exist"),
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\n", ["--labels", "de={tmp}/de.csv"],
     "--labels de={tmp}/de.csv: the language 'de' is given twice"),
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\n", ["--labels", "{tmp}/de.csv"],
     "--labels {tmp}/de.csv: give LANGUAGE=FILE"),
    ("conceptUri,preferredLabel,altLabels\nc1,Koch,\n", ["--language", "de"],
     "--labels de={tmp}/de.csv: the language 'de' is the main file's (--language)"),
])
def test_bad_language_files_are_one_line_exit_2(tmp_path, de_content, args, message):
    write_multilingual(tmp_path, ())
    if de_content is not None:
        (tmp_path / "de.csv").write_text(de_content, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run("pairs", "esco", tmp_path / "occupations_en.csv", "--labels", f"de={tmp_path}/de.csv",
                 *[a.format(tmp=tmp_path) for a in args], "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message.format(tmp=tmp_path) in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_pairs_taxonomy_requires_its_columns(tmp_path, toy_path):
    result = run("pairs", "taxonomy", toy_path, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "--id-column" in error_line(result)


def test_eval_retrieval_on_tiny_model(tmp_path, toy_path, tiny_model_dir):
    out = tmp_path / "pairs"
    assert run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.5).exit_code == 0
    result = run("eval-retrieval", "--model", tiny_model_dir, "--queries", out / "heldout_queries.csv",
                 "--corpus", out / "corpus.csv", "--batch-size", 4, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"n", "corpus", "top1", "top5", "top10", "mrr", "model", "seconds"}
    assert data["n"] == len(pd.read_csv(out / "heldout_queries.csv")) and data["corpus"] == 12
    assert 0 <= data["top1"] <= data["top5"] <= data["top10"] <= 1
    assert data["top1"] <= data["mrr"] <= 1
    text = run("eval-retrieval", "-m", tiny_model_dir, "-q", out / "heldout_queries.csv",
               "-c", out / "corpus.csv", "--limit", 2)
    assert text.exit_code == 0 and text.stdout.startswith("Retrieval (2 queries, corpus of 12): top-1")



@pytest.mark.parametrize(
    "files, args, message",
    [
        ({}, ["pairs", "esco", "{tmp}/missing.csv", "-o", "{tmp}/out"], "does not exist"),
        ({}, ["pairs", "esco", "{tmp}", "-o", "{tmp}/out"], "is a directory"),
        ({"t.csv": ""}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out"], "is empty"),
        ({"t.csv": ",".join(ESCO_HEADER) + "\n"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out"],
         "has a header but no rows"),
        ({"t.csv": "conceptUri,preferredLabel,iscoGroup\nc1,cook,5120\n"},
         ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out"], "has no column 'altLabels'"),
        ({"t.csv": "TOY"}, ["pairs", "taxonomy", "{tmp}/t.csv", "--id-column", "conceptUri",
                            "--label-column", "preferredLabel", "--synonyms-column", "altLabels",
                            "--group-column", "family", "-o", "{tmp}/out"],
         "has no column 'family' (--group-column)"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--holdout", "1.5"],
         "--holdout must be a fraction between 0 and 1 (got 1.5)"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--holdout", "-0.1"],
         "--holdout must be a fraction between 0 and 1"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--holdout", "lots"],
         "--holdout"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--negatives", "-1"],
         "--negatives"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--related-cosine", "2"],
         "--related-cosine must be between -1 and 1"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--only-groups", "7"],
         "--only-groups 7"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--hard-negatives",
                            "--mining-depth", "0"], "--mining-depth must be at least 1"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--hard-negatives",
                            "--mining-model", "no-such-model"], "unknown model"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out", "--hard-negatives",
                            "--holdout", "1"], "no training pairs to mine for"),
        ({"t.csv": "TOY", "out": "keep me"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/out"],
         "is a file; name a directory"),
        ({"t.csv": "TOY"}, ["pairs", "esco", "{tmp}/t.csv", "-o", "{tmp}/no/such/out"],
         "does not exist"),
        ({"c.csv": "label,conceptUri\ncook,c1\n"},
         ["eval-retrieval", "-q", "{tmp}/missing.csv", "-c", "{tmp}/c.csv"], "does not exist"),
        ({"q.csv": "query,conceptUri\nline cook,c1\n", "c.csv": "label,conceptUri\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv"], "has a header but no rows"),
        ({"q.csv": "query,conceptUri\nline cook,c1\n", "c.csv": ""},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv"], "is empty"),
        ({"q.csv": "text,conceptUri\nline cook,c1\n", "c.csv": "label,conceptUri\ncook,c1\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv"],
         "has no column 'query' (--query-column)"),
        ({"q.csv": "query,conceptUri\nline cook,c1\n", "c.csv": "label,conceptUri\ncook,c1\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv", "--id-column", "code"],
         "has no column 'code' (--id-column)"),
        ({"q.csv": "query,conceptUri\nline cook,c2\n", "c.csv": "label,conceptUri\ncook,c1\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv"], "is not in corpus"),
        ({"q.csv": "query,conceptUri\nline cook,c1\n", "c.csv": "label,conceptUri\ncook,c1\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv", "--limit", "0"], "--limit"),
        ({"q.csv": "query,conceptUri\nline cook,c1\n",
          "c.csv": "label,conceptUri\ncook,c1\nnurse,c2\n"},
         ["eval-retrieval", "-q", "{tmp}/q.csv", "-c", "{tmp}/c.csv", "-m", "no-such-model"],
         "unknown model"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, files, args, message):
    for name, content in files.items():
        if content == "TOY":
            write_toy_taxonomy(tmp_path / name)
        else:
            (tmp_path / name).write_text(content, encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(*[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written to --out
    if "out" in files:
        assert (tmp_path / "out").read_text(encoding="utf-8") == "keep me"


@pytest.mark.shared_data
def test_shipped_sample_is_what_its_command_makes(tmp_path):
    """data/esco_pairs_sample.csv is train.csv of the command in data/README.md."""
    readme = (ROOT / "data" / "README.md").read_text(encoding="utf-8")
    line = next(li for li in readme.splitlines() if li.startswith("domain-tune pairs esco "))
    args = shlex.split(line)[1:]
    assert args[2] == "../shared/data/esco/occupations_en.csv"
    args[2] = str(shared_path("esco", "occupations_en.csv"))
    args[args.index("--out") + 1] = str(tmp_path / "sample")
    assert run(*args).exit_code == 0
    made = (tmp_path / "sample" / "train.csv").read_bytes()
    assert made == (ROOT / "data" / "esco_pairs_sample.csv").read_bytes()


@pytest.mark.shared_data
def test_corpus_aware_esco(tmp_path):
    """`pairs esco --corpus-aware` on the real occupations: the strict pairs and the corpus side."""
    esco = shared_path("esco", "occupations_en.csv")
    strict, aware = tmp_path / "strict", tmp_path / "aware"
    assert run("pairs", "esco", esco, "--out", strict).exit_code == 0
    result = run("pairs", "esco", esco, "--out", aware, "--corpus-aware", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["train_pairs"] == 55965 and info["queries"] == 5597 and info["heldout_concepts"] == 588
    assert {k: v for k, v in info["pairs"].items() if k.startswith("corpus_")} == {
        "corpus_related": 1523, "corpus_description": 2877, "corpus_description_unrelated": 2877}
    s = pd.read_csv(strict / "train.csv", keep_default_na=False)
    a = pd.read_csv(aware / "train.csv", keep_default_na=False)
    assert len(s) == 48688 and set(s.itertuples(index=False)) <= set(a.itertuples(index=False))
    for name in ("heldout_queries.csv", "corpus.csv"):
        assert (strict / name).read_bytes() == (aware / name).read_bytes()
    # no alternative label of a held-out occupation in train.csv
    from domain_tune.datasets.taxonomy import label_key, read_esco

    occupations = read_esco(esco)
    heldout = set(pd.read_csv(aware / "heldout_queries.csv").conceptUri)
    forbidden = {label_key(alt) for i, cid in enumerate(occupations.ids) if cid in heldout
                 for alt in occupations.synonyms[i]}
    assert len(forbidden) > 5000
    assert not forbidden & {label_key(t) for t in pd.concat([a.base, a.ref])}


def test_mine_negatives_on_any_pairs_file(tmp_path, tiny_model_dir):
    src = tmp_path / "pairs.csv"
    src.write_text("id,a,b,score\n1,line cook,cook,5\n2,head chef,chef,5\n3,pipe welder,welder,4.99\n"
                   "4,line cook,welder,1\n5,sous chef,chef,5\n", encoding="utf-8")
    out = tmp_path / "hn.csv"
    result = run("mine-negatives", src, "--out", out, "--model", tiny_model_dir, "--text-columns",
                 "a,b", "--score-column", "score", "--score-range", 0, 5, "--depth", 1, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info == {"out": str(out), "model": str(tiny_model_dir), "pairs": 5, "positive": 4,
                    "hard_negatives": 4}
    mined = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(mined.columns) == ["id", "a", "b", "score", "negative"]
    pd.testing.assert_frame_equal(mined.drop(columns="negative"),
                                  pd.read_csv(src, keep_default_na=False, dtype=str))
    assert mined.negative.tolist()[3] == ""  # not a positive pair
    for a, b, neg in mined[mined.negative != ""][["a", "b", "negative"]].itertuples(index=False):
        assert neg in {"cook", "chef", "welder"} and neg != b
    # what it writes is what train reads
    from domain_tune.datasets.pairs import read_pairs

    assert read_pairs(out, ("a", "b"), "score", (0, 5)).negative == mined.negative.tolist()


@pytest.mark.parametrize("content, extra, message", [
    ("base,ref,similarity\na,b,0.5\n", [], "no positive pairs"),
    ("base,ref,similarity\na,b,1\n", ["--depth", "0"], "--depth must be at least 1"),
    ("base,ref\na,b\n", [], "has no column 'similarity'"),
    ("base,negative,similarity\na,b,1\n", ["--text-columns", "base,negative"],
     "the column 'negative' is where the negatives go"),
])
def test_mine_negatives_bad_input(tmp_path, tiny_model_dir, content, extra, message):
    src = tmp_path / "p.csv"
    src.write_text(content, encoding="utf-8")
    result = run("mine-negatives", src, "-o", tmp_path / "out.csv", "-m", tiny_model_dir, *extra)
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert not os.path.exists(tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


def test_mine_several_negatives_per_pair(tmp_path, tiny_model_dir):
    src = tmp_path / "pairs.csv"
    src.write_text("base,ref,similarity,negative\nline cook,cook,1,x\nhead chef,chef,1,x\n"
                   "pipe welder,welder,1,x\nsous chef,baker,1,x\nline cook,welder,0.5,x\n",
                   encoding="utf-8")
    out = tmp_path / "hn.csv"
    result = run("mine-negatives", src, "--out", out, "--model", tiny_model_dir, "--depth", 3,
                 "--per-pair", 3, "--json")
    assert result.exit_code == 0, result.output
    mined = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(mined.columns) == ["base", "ref", "similarity", "negative", "negative_2",
                                   "negative_3"]
    for row in mined.iloc[:4].itertuples(index=False):
        negs = [row.negative, row.negative_2, row.negative_3]
        assert len(set(negs)) == 3 and row.ref not in negs
        assert set(negs) <= {"cook", "chef", "welder", "baker"}
    assert (mined.iloc[4][["negative", "negative_2", "negative_3"]] == "").all()
    assert json.loads(result.stdout)["hard_negatives"] == 12
    from domain_tune.datasets.pairs import read_pairs

    pairs = read_pairs(out)
    assert len(pairs.negatives()) == 3 and pairs.more_negatives[1] == mined.negative_3.tolist()
    bad = run("mine-negatives", src, "--out", tmp_path / "b.csv", "--model", tiny_model_dir,
              "--depth", 2, "--per-pair", 3)
    assert bad.exit_code == 2 and "--per-pair 3 exceeds the --depth 2" in bad.output


def test_eval_retrieval_hybrid_options(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("label,conceptUri,description\nline cook,c1,prepares food on a line\n"
                      "welder,c2,joins metal parts\nbaker,c3,\n", encoding="utf-8")
    queries = tmp_path / "q.csv"
    queries.write_text("query,conceptUri\nline cooks,c1\nwelders,c2\n", encoding="utf-8")
    tune = tmp_path / "tune.csv"
    tune.write_text("query,conceptUri\nbakers,c3\ncook,c1\n", encoding="utf-8")
    common = ["eval-retrieval", "--queries", queries, "--corpus", corpus, "--model",
              tiny_model_dir, "--json"]
    fixed = run(*common, "--lexical-weight", 5, "--description-column", "description",
                "--description-weight", 0.5)
    assert fixed.exit_code == 0, fixed.output
    result = json.loads(fixed.stdout)
    # a lexical weight of 5 dwarfs the random encoder: the n-gram overlap decides
    assert result["top1"] == 1.0 and result["weights"] == {"lexical": 5.0, "description": 0.5}
    tuned = run(*common, "--tune-on", tune, "--description-column", "description")
    assert tuned.exit_code == 0, tuned.output
    chosen = json.loads(tuned.stdout)
    assert chosen["validation"]["n"] == 2 and len(chosen["validation"]["grid"]) == 8 * 7
    best = chosen["validation"]["best"]
    assert (best["lexical"], best["description"]) == (chosen["weights"]["lexical"],
                                                      chosen["weights"]["description"])
    same = run(*common, "--tune-on", queries)
    assert same.exit_code == 2 and "shares queries with --queries" in same.output
    alone = run(*common, "--description-weight", 0.5)
    assert alone.exit_code == 2 and "--description-weight needs --description-column" in alone.output


def test_pairs_with_several_hard_negatives(toy_path, tmp_path, tiny_model_dir):
    out = tmp_path / "pairs"
    result = run("pairs", "esco", toy_path, "--out", out, "--holdout", 0.25, "--hard-negatives",
                 "--mining-model", tiny_model_dir, "--mining-depth", 3,
                 "--hard-negatives-per-pair", 2, "--json")
    assert result.exit_code == 0, result.output
    train = pd.read_csv(out / "train.csv", keep_default_na=False)
    assert list(train.columns) == ["base", "ref", "similarity", "negative", "negative_2"]
    positive = train[train.similarity >= 0.99]
    both = positive[(positive.negative != "") & (positive.negative_2 != "")]
    assert len(both) > 0 and (both.negative != both.negative_2).all()
    assert json.loads(result.stdout)["params"]["hard_negatives"]["per_pair"] == 2
    assert "`base,ref,similarity,negative,negative_2`" in (out / "README.md").read_text("utf-8")
