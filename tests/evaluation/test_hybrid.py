"""Hybrid retrieval scores on a hand-checked toy corpus."""

import numpy as np
import pytest

from domain_tune.evaluation.hybrid import (
    DenseParts, HybridWeights, LexicalScorer, choose_weights, entry_embeddings, fuse_scores,
    hybrid_ranks,
)


def test_lexical_cosine_of_identical_and_disjoint_texts():
    lex = LexicalScorer(["abc", "xyz", "abd"])
    s = lex.scores(["abc", "qqq"])
    assert s.shape == (2, 3)
    assert s[0, 0] == pytest.approx(1.0, abs=1e-6)  # the same text
    assert s[0, 1] == 0.0  # no character n-gram in common
    assert 0.0 < s[0, 2] < 1.0  # shares " a", "ab", " ab", ...
    assert not s[1].any()


def test_fusion_adds_the_weighted_lexical_cosine():
    dense = np.array([[0.5, 0.6]], dtype=np.float32)
    fused = fuse_scores(dense, ["abc"], ["abc", "xyz"], lexical_weight=0.2)
    np.testing.assert_allclose(fused, [[0.7, 0.6]], atol=1e-6)  # 0.5 + 0.2 * 1, 0.6 + 0.2 * 0
    np.testing.assert_array_equal(fuse_scores(dense, ["abc"], ["abc", "xyz"], 0.0), dense)
    with pytest.raises(ValueError, match="do not match"):
        fuse_scores(dense, ["abc", "d"], ["abc", "xyz"], 0.2)


def unit(deg):
    r = np.deg2rad(deg)
    return np.array([np.cos(r), np.sin(r)])


def test_description_weight_mixes_label_and_description_vectors():
    q = np.array([unit(0)])
    labels = np.array([unit(90), unit(60)])
    descriptions = np.array([unit(0), unit(0)])
    parts = DenseParts(q, labels, descriptions, has_description=[True, False])
    # entry 0: normalize((0,1) + 1 * (1,0)) is at 45 degrees; entry 1 has no description
    np.testing.assert_allclose(parts.scores(1.0), [[np.cos(np.pi / 4), 0.5]], atol=1e-6)
    np.testing.assert_allclose(parts.scores(0.0), [[0.0, 0.5]], atol=1e-6)
    # the same as embedding the mixed entries
    mixed = entry_embeddings(labels, descriptions, 0.5, has_description=[True, False])
    np.testing.assert_allclose(parts.scores(0.5), q @ mixed.T, atol=1e-6)


def test_weights_are_chosen_on_the_given_queries():
    # two entries; the dense model prefers entry "B" for the query "abc def", whose gold is "A"
    corpus_texts, corpus_ids = ["abc def", "xyz"], ["A", "B"]
    q = np.array([unit(50)])
    labels = np.array([unit(0), unit(90)])  # cos 0.643 vs 0.766: B wins by 0.123
    parts = DenseParts(q, labels)
    lex = LexicalScorer(corpus_texts)
    ranks = hybrid_ranks(parts, [["A"]], corpus_ids, ["abc def"], lex, HybridWeights())
    assert ranks.tolist() == [2]
    fused = hybrid_ranks(parts, [["A"]], corpus_ids, ["abc def"], lex, HybridWeights(lexical=0.2))
    assert fused.tolist() == [1]  # + 0.2 * 1.0 for A, + 0 for B
    weights, table = choose_weights(parts, [["A"]], corpus_ids, ["abc def"], lex,
                                    lexical_grid=(0.0, 0.1, 0.2), description_grid=(0.0, 0.5))
    assert weights == HybridWeights(lexical=0.2, description=0.0)  # no descriptions: 0 only
    assert [(r["lexical"], r["top1"]) for r in table] == [(0.0, 0.0), (0.1, 0.0), (0.2, 1.0)]
    assert table[0]["mrr"] == pytest.approx(0.5)


def test_bad_weights():
    from domain_tune.errors import BadInputError

    with pytest.raises(BadInputError, match="--lexical-weight"):
        HybridWeights(lexical=-1).validate()
    with pytest.raises(BadInputError, match="--description-weight"):
        HybridWeights(description=float("nan")).validate()


def test_scorer_for_a_matching_service():
    from domain_tune.evaluation.hybrid import hybrid_scorer

    corpus = ["abc", "xyz"]
    labels = np.array([unit(90), unit(0)])
    descriptions = np.array([unit(0), unit(0)])
    make = hybrid_scorer(HybridWeights(lexical=0.2, description=1.0), descriptions)
    scorer = make(corpus, labels)
    got = scorer(["abc"], np.array([unit(0)]))
    # entry 0: 45 degrees after mixing, + 0.2 lexical; entry 1: cosine 1, no n-gram shared
    np.testing.assert_allclose(got, [[np.cos(np.pi / 4) + 0.2, 1.0]], atol=1e-6)
    assert scorer.name == "hybrid"
