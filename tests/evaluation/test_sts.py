import numpy as np
import pytest

from domain_tune.datasets.sts import load_split
from domain_tune.evaluation.sts import angular, evaluate_sts, pair_similarity


def test_angular_similarity_values():
    np.testing.assert_allclose(angular(np.array([1.0, 0.7, 0.0, -1.0])),
                               [0.99857637, 0.74681669, 0.5, 0.00142363], atol=1e-6)


def test_pair_similarity_normalises():
    a = np.array([[2.0, 0.0], [0.0, 3.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(pair_similarity(a, b, "cosine"), [1.0, 0.0])
    np.testing.assert_allclose(pair_similarity(a, b, "angular"), [1 - np.arccos(0.99999) / np.pi, 0.5])


def test_evaluate_sts_on_tiny_model(tiny_encoder):
    s1 = ["a cat", "a dog", "the sun", "rain", "a cat"]
    s2 = ["a cat", "a wolf", "the moon", "snow", "a car"]
    result = evaluate_sts(tiny_encoder, s1, s2, [5, 3, 2, 1, 4], batch_size=2)
    assert result["n"] == 5 and result["similarity"] == "cosine"
    assert -1 <= result["pearson"] <= 1 and -1 <= result["spearman"] <= 1


def test_evaluate_sts_needs_aligned_inputs(tiny_encoder):
    with pytest.raises(ValueError):
        evaluate_sts(tiny_encoder, ["a"], ["b", "c"], [1])


@pytest.mark.real
def test_real_model_dev_pearson(use_m3, sts_dir):
    dev = load_split("dev", str(sts_dir))
    result = evaluate_sts(use_m3, dev.sentences1, dev.sentences2, dev.scores)
    assert result["n"] == 1500
    assert result["pearson"] >= 0.830
    assert result["spearman"] >= 0.80


def test_correlations_equal_scipy_stats():
    from scipy import stats

    from domain_tune.evaluation.sts import correlations

    rng = np.random.default_rng(0)
    for n in (3, 50, 1500):
        gold = rng.integers(0, 26, n) / 5.0  # tied gold scores, as in STS-B
        predicted = np.round(rng.normal(size=n) + gold, 2)  # tied predictions too
        got = correlations(predicted, gold)
        assert got["pearson"] == pytest.approx(stats.pearsonr(predicted, gold)[0], abs=1e-14)
        assert got["spearman"] == pytest.approx(stats.spearmanr(predicted, gold)[0], abs=1e-14)
    assert np.isnan(correlations([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["pearson"])
