"""examples/article.py runs, on a small subset of the article (CI keeps it from rotting)."""

import importlib.util

import pandas as pd
import pytest

from tests.conftest import ROOT, shared_path


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.real
@pytest.mark.shared_data
def test_article_example_on_a_subset(tmp_path, seed_pairs, sts_dir, capsys):
    esco = shared_path("esco", "occupations_en.csv")
    article = _load("article")
    result = article.main(["--pairs", str(seed_pairs), "--sts-dir", str(sts_dir), "--esco", str(esco),
                           "--out", str(tmp_path), "--epochs", "1", "--sts-limit", "40",
                           "--esco-limit", "300"])
    for name in ("base.png", "tuned.png", "matches.csv", "run/model.keras", "run/README.md"):
        assert (tmp_path / name).is_file(), name
    assert result["epochs_run"] == 1
    assert result["sts_before"]["n"] == result["sts_after"]["n"] == 40
    assert 0.5 < result["sts_before"]["pearson"] <= 1.0
    matches = pd.read_csv(tmp_path / "matches.csv")
    assert len(matches) == 3 * len(article.QUERIES)
    assert matches["query"].unique().tolist() == article.QUERIES
    assert matches["rank"].tolist() == [1, 2, 3] * len(article.QUERIES)
    for _, group in matches.groupby("query", sort=False):
        assert group["cosine"].is_monotonic_decreasing
    assert matches["corpus_id"].str.startswith("http://data.europa.eu/esco/occupation/").all()
    card = (tmp_path / "run" / "README.md").read_text(encoding="utf-8")
    assert card.startswith("# Universal Sentence Encoder multilingual v3, fine-tuned on "
                           "seed-sample/training_data.csv")
    assert "ESCO © European Union" in card
    assert "STS-B dev Pearson" in capsys.readouterr().out
