"""Hard negatives: for each positive pair, a text the model confuses with its ``ref``.

In-batch negatives are random texts of the batch, mostly easy; what a
retrieval model gets wrong is the *near miss* (``"sales assistant"`` for
``"viewing and sales assistant"``).  Mining asks a model (by default the base
model that is about to be tuned) which candidates it ranks highest for each
positive pair's ``base`` and keeps one that is not a positive of that base:

* candidates are the distinct ``ref`` texts of the positive pairs, or a list
  given (for a taxonomy: :func:`negative_candidates`, the preferred labels of
  the training concepts, or of all concepts in the corpus-aware setting, never
  a text of a held-out concept that must stay out of training);
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
from domain_tune.evaluation.retrieval import normalize_rows

DEFAULT_DEPTH = 10
POSITIVE = 0.99
CHUNK = 2048  # anchors scored at once


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

    a = normalize_rows(embed(anchors))
    c = normalize_rows(embed(candidates))
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


def negative_candidates(pairset):
    """The texts a taxonomy :class:`PairSet` may take its hard negatives from.

    Strict: the preferred labels of the training concepts; corpus-aware: every
    concept's preferred label (the corpus).  Either way, none whose text is one
    of ``pairset.excluded_keys`` (a training concept's preferred label can be a
    held-out concept's alternative label, which must not enter training).
    """
    corpus = pairset.corpus
    labels, ids = corpus.iloc[:, 0].tolist(), corpus.iloc[:, 1].tolist()
    heldout = set() if pairset.params.get("setting") == "corpus-aware" else set(pairset.heldout_ids)
    return [t for t, cid in zip(labels, ids)
            if cid not in heldout and label_key(t) not in pairset.excluded_keys]


def add_hard_negatives(pairset, model_spec, depth=DEFAULT_DEPTH, seed=0, progress=False):
    """Add a ``negative`` column to ``pairset.train`` (a taxonomy :class:`PairSet`).

    ``model_spec`` is anything :func:`~domain_tune.models.loading.load_model`
    takes; it is loaded only when there is something to mine.
    """
    from domain_tune.embedding import unique_encode
    from domain_tune.models.loading import load_model

    train = pairset.train
    if not len(train):
        raise BadInputError("--hard-negatives: there are no training pairs to mine for (--holdout 1?)")
    labels = negative_candidates(pairset)
    if depth < 1:
        raise BadInputError(f"--mining-depth must be at least 1 (got {depth})")
    model = load_model(model_spec)
    negative = mine_negatives(
        train["base"].tolist(), train["ref"].tolist(), train["similarity"].to_numpy(),
        lambda texts: unique_encode(model, texts, progress=progress, label="Mining"),
        depth=depth, seed=seed, candidates=labels,
    )
    pairset.train = train.assign(negative=negative)
    pairset.stats["hard_negatives"] = sum(1 for n in negative if n)
    pairset.params["hard_negatives"] = {"model": str(model_spec), "depth": depth}
    return pairset


def mine_pairs_file(path, out, model, depth=DEFAULT_DEPTH, seed=0, text_columns=("base", "ref"),
                    score_column="similarity", score_range=(0.0, 1.0), progress=False):
    """Copy the pairs file ``path`` to ``out`` with a ``negative`` column mined by ``model``.

    The pairs are validated as ``train`` reads them; every column of the file
    is kept (an existing ``negative`` column is replaced).  ``out`` is written
    whole or not at all.  Returns ``{"pairs", "positive", "hard_negatives"}``.
    """
    import os
    import tempfile

    from domain_tune.datasets.files import delimiter, read_csv
    from domain_tune.datasets.pairs import NEGATIVE_COLUMN, read_pairs
    from domain_tune.embedding import unique_encode

    if NEGATIVE_COLUMN in (*text_columns, score_column):
        raise BadInputError(f"the column {NEGATIVE_COLUMN!r} is where the negatives go; "
                            "rename that text or score column")
    pairs = read_pairs(path, text_columns, score_column, score_range)
    negative = mine_negatives(
        pairs.base, pairs.ref, pairs.similarity,
        lambda texts: unique_encode(model, texts, progress=progress, label="Mining"),
        depth=depth, seed=seed,
    )
    frame = read_csv(path, "pairs file")
    frame[NEGATIVE_COLUMN] = negative
    out = os.path.abspath(out)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(out) + ".tmp-", dir=os.path.dirname(out))
    try:
        # the input's dialect (a .tsv --out: tabs), scores as they were written
        sep = "\t" if out.lower().endswith(".tsv") else delimiter(path)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False, sep=sep)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    return {"pairs": len(pairs), "positive": int((pairs.similarity >= POSITIVE).sum()),
            "hard_negatives": sum(1 for n in negative if n)}
