"""Writing a pairs folder: the files, the README, atomically."""

import os

import pandas as pd
import pytest

from domain_tune.datasets import pairs_folder
from domain_tune.datasets.pairs_folder import write_pairs
from domain_tune.datasets.taxonomy import ESCO_ATTRIBUTION
from domain_tune.datasets.taxonomy_pairs import build_pairs
from domain_tune.errors import BadInputError


def test_write_pairs_is_atomic(toy, tmp_path, monkeypatch):
    ps = build_pairs(toy, holdout=0.25, seed=1)
    out = tmp_path / "pairs"
    write_pairs(ps, out, source="occupations.csv", attribution=ESCO_ATTRIBUTION,
                command="domain-tune pairs esco occupations.csv --out pairs")
    assert sorted(os.listdir(out)) == ["README.md", "corpus.csv", "heldout_queries.csv", "train.csv"]
    train = pd.read_csv(out / "train.csv", dtype={"base": str, "ref": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(train, ps.train)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "ESCO © European Union" in readme and "--out pairs" in readme
    assert f"| `train.csv` | `base,ref,similarity` | {len(ps.train):,} |" in readme
    with pytest.raises(BadInputError, match="already exists"):
        write_pairs(ps, out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pairs_folder, "render_readme", broken)
    with pytest.raises(RuntimeError):
        write_pairs(ps, out, overwrite=True)
    with pytest.raises(RuntimeError):
        write_pairs(ps, tmp_path / "fresh")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["occupations.csv", "pairs"]  # no temp dirs left
    assert (out / "README.md").read_text(encoding="utf-8") == readme  # the old output is intact
    write_pairs(build_pairs(toy, holdout=0.5), out, overwrite=True)
    assert len(pd.read_csv(out / "corpus.csv")) == 12
    assert sorted(os.listdir(tmp_path)) == ["occupations.csv", "pairs"]
