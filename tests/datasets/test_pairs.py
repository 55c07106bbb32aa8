"""Reading pairs files: the optional hard-negative column."""

import numpy as np
import pytest

from domain_tune.datasets.pairs import read_pairs, split_pairs
from domain_tune.errors import BadInputError


def test_negative_column_is_read_and_follows_splits(tmp_path):
    path = tmp_path / "p.csv"
    rows = [f"alt {i},label {i},1.0,label {i + 1}" for i in range(8)] + ["alt 0,label 5,0.5,"]
    path.write_text("base,ref,similarity,negative\n" + "\n".join(rows) + "\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.negative[:2] == ["label 1", "label 2"] and pairs.negative[-1] == ""
    train, val = split_pairs(pairs, 0.25, seed=0)
    for part in (train, val):
        for base, neg in zip(part.base, part.negative):
            i = int(base.split()[1])
            assert neg in ("", f"label {i + 1}")
    assert len(train.negative) == 7 and len(val.negative) == 2


def test_no_or_blank_negative_column_means_none(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("base,ref,similarity\na,b,1\n", encoding="utf-8")
    blank = tmp_path / "blank.csv"
    blank.write_text("base,ref,similarity,negative\na,b,1,\nc,d,0.5, \n", encoding="utf-8")
    assert read_pairs(plain).negative is None and read_pairs(blank).negative is None


def test_a_text_column_named_negative_is_not_a_hard_negative(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("base,negative,score\na,b,1\n", encoding="utf-8")
    pairs = read_pairs(path, ("base", "negative"), "score")
    assert pairs.ref == ["b"] and pairs.negative is None
    np.testing.assert_array_equal(pairs.similarity, [1.0])


def test_duplicate_and_long_text_warnings_count_in_the_singular(tmp_path):
    import warnings

    from domain_tune.datasets.pairs import read_pairs

    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity\na,b,1\na,b,1\nc,d,0.5\n" + "x" * 3000 + ",y,0.5\n",
                    encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_pairs(str(path))
    messages = [str(w.message) for w in caught]
    assert any(": 1 duplicate pair (row 3); kept" in m for m in messages), messages
    assert any(": 1 text longer than" in m for m in messages), messages

def test_several_negative_columns(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("base,ref,similarity,negative_2,negative,negative_10,negative_x\n"
                    "a,b,1,n2,n1,n10,x\nc,d,0.5,,,,\n", encoding="utf-8")
    pairs = read_pairs(path)
    assert pairs.negative == ["n1", ""]
    assert pairs.more_negatives == [["n2", ""], ["n10", ""]]  # negative_x is no negative column
    assert list(pairs.negatives()) == ["negative", "negative_2", "negative_3"]
    assert pairs.take([1]).negatives()["negative_3"] == [""]
    bad = tmp_path / "bad.csv"
    bad.write_text("base,ref,similarity,negative_2\na,b,1,n2\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="'negative_2' without a 'negative' column"):
        read_pairs(bad)
