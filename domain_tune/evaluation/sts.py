"""Semantic textual similarity evaluation: plain lists in, a dict of metrics out."""

import numpy as np

from domain_tune.embedding import DEFAULT_BATCH_SIZE, encode
from domain_tune.errors import BadInputError
from domain_tune.similarity import CLIP, angular  # noqa: F401 - re-exported

SIMILARITIES = ("cosine", "angular")


def cosine(a, b):
    """Row-wise cosine, in the inputs' precision."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.einsum("ij,ij->i", a, b)


def pair_similarity(a, b, similarity="cosine"):
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}")
    cos = cosine(a, b)
    return angular(cos) if similarity == "angular" else cos


def correlations(predicted, gold):
    """Pearson and Spearman correlation; gold scores that are all equal are a :class:`BadInputError`.

    Spearman is Pearson's of the average ranks, as ``scipy.stats.spearmanr``
    computes it; the values agree with ``scipy.stats`` to 1e-15 (tested), and
    constant predictions give ``nan`` as there.  NumPy and pandas (which Keras
    imports anyway) instead of ``scipy.stats``, whose import alone took 0.4 s
    of a 5 s ``eval-sts``.
    """
    import pandas as pd

    predicted, gold = np.asarray(predicted, float), np.asarray(gold, float)
    if len(gold) and gold.min() == gold.max():
        raise BadInputError(f"every gold score is {gold[0]:g}; Pearson and Spearman need "
                            "scores that differ")
    ranks = pd.DataFrame({"predicted": predicted, "gold": gold}).rank(method="average")
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.corrcoef(predicted, gold)[0, 1]
        spearman = np.corrcoef(ranks["predicted"].to_numpy(), ranks["gold"].to_numpy())[0, 1]
    return {"pearson": float(pearson), "spearman": float(spearman)}


def evaluate_sts(
    model, sentences1, sentences2, scores, similarity="cosine",
    batch_size=DEFAULT_BATCH_SIZE, progress=False,
):
    """Pearson and Spearman of the model's similarity against gold scores.

    Every distinct sentence is embedded once, in length-sorted batches.
    Returns ``{"n", "similarity", "pearson", "spearman"}``.
    """
    if len(sentences1) != len(sentences2) or len(sentences1) != len(scores):
        raise ValueError("sentences1, sentences2 and scores must have the same length")
    if len(scores) < 2:
        raise BadInputError(f"{len(scores)} STS pair{'' if len(scores) == 1 else 's'}: Pearson "
                            "and Spearman need at least 2")
    n = len(scores)
    emb = encode(model, list(sentences1) + list(sentences2), batch_size, progress, "STS")
    sims = pair_similarity(emb[:n], emb[n:], similarity)
    return {"n": n, "similarity": similarity, **correlations(sims, np.asarray(scores, float))}
