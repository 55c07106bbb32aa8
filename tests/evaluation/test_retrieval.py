"""Retrieval metrics on a hand-checked toy corpus, and on the real model."""

import numpy as np
import pytest

from domain_tune.errors import BadInputError
from domain_tune.evaluation.retrieval import (
    evaluate_embeddings, evaluate_retrieval, gold_ranks, group_queries, metrics_from_ranks,
)


def unit(degrees, scale=1.0):
    r = np.deg2rad(degrees)
    return scale * np.array([np.cos(r), np.sin(r)])


# Corpus in the plane: A at 0 deg, B at 30 deg, C at 90 deg and (a second label of C) at 180 deg.
CORPUS = np.stack([unit(0), unit(30), unit(90), unit(180)])
CORPUS_IDS = ["A", "B", "C", "C"]
# Queries (angle, correct ids) and their rank, worked out by hand from the cosines:
QUERIES = [
    (10, ["A"], 1),  # A .985 > B .940 > C .174
    (10, ["B"], 2),  # A is closer
    (170, ["C"], 1),  # C's second label (180 deg) scores .985; A -.985, B -.766
    (60, ["A"], 3),  # B .866 and C .866 beat A .500
    (45, ["A", "C"], 2),  # best correct id .707 (A and C tie), B .966 is higher
]


def test_gold_ranks_by_hand():
    q = np.stack([unit(a, scale=3.0) for a, _, _ in QUERIES])  # not normalised: cosine anyway
    ranks = gold_ranks(q, [g for _, g, _ in QUERIES], CORPUS, CORPUS_IDS, chunk=2)
    assert ranks.tolist() == [r for _, _, r in QUERIES]


def test_metrics_by_hand():
    q = np.stack([unit(a) for a, _, _ in QUERIES])
    result = evaluate_embeddings(q, [g for _, g, _ in QUERIES], CORPUS, CORPUS_IDS, ks=(1, 2, 5))
    assert result["n"] == 5 and result["corpus"] == 3
    assert result["top1"] == pytest.approx(2 / 5)
    assert result["top2"] == pytest.approx(4 / 5)
    assert result["top5"] == pytest.approx(1.0)
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 1 + 1 / 3 + 1 / 2) / 5)


def test_metrics_from_ranks():
    assert metrics_from_ranks([1, 3, 12, 5]) == {
        "n": 4, "top1": 0.25, "top5": 0.75, "top10": 0.75,
        "mrr": pytest.approx((1 + 1 / 3 + 1 / 12 + 1 / 5) / 4),
    }
    with pytest.raises(BadInputError):
        metrics_from_ranks([])


def test_group_queries_merges_repeated_texts():
    texts, gold = group_queries(["analyst", "chef", "analyst", "analyst"], ["c2", "c9", "c3", "c2"])
    assert texts == ["analyst", "chef"] and gold == [["c2", "c3"], ["c9"]]


def test_unknown_gold_id():
    with pytest.raises(BadInputError, match="'Z'"):
        gold_ranks(np.stack([unit(0)]), [["Z"]], CORPUS, CORPUS_IDS)


def test_evaluate_retrieval_on_tiny_model(tiny_encoder):
    corpus = ["data scientist", "nurse", "sous-chef", "lighthouse keeper"]
    ids = ["d", "n", "s", "l"]
    # exact corpus texts rank first (cosine 1); a repeated query has two correct ids
    result = evaluate_retrieval(tiny_encoder, ["nurse", "sous-chef", "nurse"], ["n", "s", "d"],
                                corpus, ids, batch_size=2)
    assert result == {"n": 2, "corpus": 4, "top1": 1.0, "top5": 1.0, "top10": 1.0, "mrr": 1.0}
    with pytest.raises(BadInputError, match="'x' is not in the corpus"):
        evaluate_retrieval(tiny_encoder, ["nurse"], ["x"], corpus, ids)
    with pytest.raises(BadInputError, match="no queries"):
        evaluate_retrieval(tiny_encoder, [], [], corpus, ids)


@pytest.mark.real
def test_real_model_on_esco_alternative_labels(use_m3):
    from domain_tune.datasets.taxonomy import read_esco
    from domain_tune.datasets.taxonomy_pairs import build_pairs
    from tests.conftest import shared_path

    esco = read_esco(shared_path("esco", "occupations_en.csv"))
    data = build_pairs(esco, holdout=1.0, seed=0)  # every unshared alternative label is a query
    queries = data.queries.sample(300, random_state=0)
    result = evaluate_retrieval(use_m3, queries["query"].tolist(), queries["conceptUri"].tolist(),
                                data.corpus["label"].tolist(), data.corpus["conceptUri"].tolist())
    assert result["n"] == 300 and result["corpus"] == 2942
    # all 28,010 queries give top-1 0.554, MRR 0.644 (README); 300 of them stay near
    assert 0.45 <= result["top1"] <= 0.66
    assert result["top1"] <= result["top5"] <= result["top10"] <= 0.9
    assert result["top1"] <= result["mrr"] <= result["top10"]
    assert 0.55 <= result["mrr"] <= 0.75
