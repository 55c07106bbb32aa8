"""Hard negatives: for each positive pair, a text the model confuses with its ``ref``.

In-batch negatives are random texts of the batch, mostly easy; what a
retrieval model gets wrong is the *near miss* (``"sales assistant"`` for
``"viewing and sales assistant"``).  Mining asks a model (by default the base
model that is about to be tuned) which candidates it ranks highest for each
positive pair's ``base`` and keeps one that is not a positive of that base:

* candidates are the distinct ``ref`` texts of the positive pairs, or a list
  given (for a taxonomy: the preferred labels of the training concepts, so
  nothing held out can leak in);
* texts are compared as :func:`~domain_tune.datasets.taxonomy.label_key` (white
  space collapsed, case-folded); every ``ref`` that is a positive of the same
  ``base`` is excluded, and so is the ``base`` itself;
* one negative is drawn uniformly, with ``seed``, from the ``depth`` best
  remaining candidates: the hardest alone is too often an unlabelled synonym.

The negative goes into the ``negative`` column of the pairs file (empty for
pairs that are not positive), which the in-batch losses read
(:mod:`domain_tune.training.losses`).
"""

import numpy as np

from domain_tune.datasets.taxonomy import label_key
from domain_tune.errors import BadInputError

DEFAULT_DEPTH = 10
POSITIVE = 0.99
CHUNK = 2048  # anchors scored at once


def _normalize(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def mine_negatives(base, ref, similarity, embed, depth=DEFAULT_DEPTH, seed=0, candidates=None):
    """A hard negative per pair (``""`` where none): a list as long as ``base``.

    ``embed`` maps a list of texts to a ``(n, dim)`` array (for instance
    ``lambda t: domain_tune.embedding.unique_encode(model, t)``).
    ``candidates`` restricts the negatives to these texts (by default the refs
    of the positive pairs).
    """
    if depth < 1:
        raise BadInputError(f"--depth must be at least 1 (got {depth})")
    similarity = np.asarray(similarity, dtype=np.float64)
    positive = np.flatnonzero(similarity >= POSITIVE)
    if len(positive) == 0:
        raise BadInputError("no positive pairs (similarity >= 0.99) to mine negatives for")
    pool = [ref[i] for i in positive] if candidates is None else list(candidates)
    candidates, column = [], {}
    for text in pool:
        key = label_key(text)
        if key not in column:
            column[key] = len(candidates)
            candidates.append(text)
    anchors, row, excluded = [], {}, []
    for i in positive:
        key = label_key(base[i])
        if key not in row:
            row[key] = len(anchors)
            anchors.append(base[i])
            excluded.append({column[key]} if key in column else set())
        if label_key(ref[i]) in column:
            excluded[row[key]].add(column[label_key(ref[i])])
    if len(candidates) < 2:
        raise BadInputError("fewer than two distinct candidate texts: nothing to mine")

    a = _normalize(embed(anchors))
    c = _normalize(embed(candidates))
    keep = min(len(candidates), depth + max(len(e) for e in excluded))
    rng = np.random.default_rng([seed, 2])
    chosen = np.full(len(anchors), -1)
    for start in range(0, len(anchors), CHUNK):
        scores = a[start : start + CHUNK] @ c.T
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for k, ranked in enumerate(top):
            pool = [j for j in ranked if j not in excluded[start + k]][:depth]
            if pool:
                chosen[start + k] = pool[rng.integers(len(pool))]
    negative = [""] * len(base)
    for i in positive:
        j = chosen[row[label_key(base[i])]]
        if j >= 0:
            negative[i] = candidates[j]
    return negative


def add_hard_negatives(pairset, model, model_name, depth=DEFAULT_DEPTH, seed=0, progress=False):
    """Add a ``negative`` column to ``pairset.train`` (a taxonomy :class:`PairSet`), mined with ``model``."""
    from domain_tune.embedding import unique_encode

    train = pairset.train
    heldout = set(pairset.heldout_ids)
    corpus = pairset.corpus
    labels = corpus.iloc[:, 0][~corpus.iloc[:, 1].isin(heldout)].tolist()  # training concepts
    negative = mine_negatives(
        train["base"].tolist(), train["ref"].tolist(), train["similarity"].to_numpy(),
        lambda texts: unique_encode(model, texts, progress=progress, label="Mining"),
        depth=depth, seed=seed, candidates=labels,
    )
    pairset.train = train.assign(negative=negative)
    pairset.stats["hard_negatives"] = sum(1 for n in negative if n)
    pairset.params["hard_negatives"] = {"model": model_name, "depth": depth}
    return pairset
