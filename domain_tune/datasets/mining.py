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
  remaining candidates: the hardest alone is too often an unlabelled synonym;
  with ``per_pair`` N, N distinct ones are drawn (fewer where fewer remain).

The negatives go into the ``negative``, ``negative_2``, ... columns of the
pairs file (empty for pairs that are not positive), which the in-batch losses
read (:mod:`domain_tune.training.losses`).
"""

import numpy as np

from domain_tune.datasets.pairs import negative_column_name
from domain_tune.datasets.taxonomy import label_key
from domain_tune.errors import BadInputError
from domain_tune.similarity import normalize_rows

DEFAULT_DEPTH = 10
POSITIVE = 0.99
CHUNK = 2048  # anchors scored at once


def mine_negatives(base, ref, similarity, embed, depth=DEFAULT_DEPTH, seed=0, candidates=None):
    """A hard negative per pair (``""`` where none): a list as long as ``base``.

    ``embed`` maps a list of texts to a ``(n, dim)`` array (for instance
    ``lambda t: domain_tune.embedding.encode(model, t)``).
    ``candidates`` restricts the negatives to these texts (by default the refs
    of the positive pairs).
    """
    return mine_negative_columns(base, ref, similarity, embed, depth, seed, candidates)[0]


def mine_negative_columns(base, ref, similarity, embed, depth=DEFAULT_DEPTH, seed=0,
                          candidates=None, per_pair=1):
    """``per_pair`` hard negatives per pair: that many lists as long as ``base``.

    Column ``k`` holds each pair's ``k``-th negative (``""`` where fewer than
    ``k + 1`` were found); the negatives of one pair are distinct, drawn from
    its ``depth`` best candidates.  ``per_pair=1`` draws exactly what
    :func:`mine_negatives` does.
    """
    if depth < 1:
        raise BadInputError(f"--depth must be at least 1 (got {depth})")
    if per_pair < 1:
        raise BadInputError(f"--per-pair must be at least 1 (got {per_pair})")
    if per_pair > depth:
        raise BadInputError(f"--per-pair {per_pair} exceeds the --depth {depth} it draws from")
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
    chosen = np.full((len(anchors), per_pair), -1)
    for start in range(0, len(anchors), CHUNK):
        scores = a[start : start + CHUNK] @ c.T
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
        top = np.take_along_axis(top, order, axis=1)
        for k, ranked in enumerate(top):
            pool = [j for j in ranked if j not in excluded[start + k]][:depth]
            if pool and per_pair == 1:
                chosen[start + k, 0] = pool[rng.integers(len(pool))]
            elif pool:
                picked = rng.choice(len(pool), size=min(per_pair, len(pool)), replace=False)
                chosen[start + k, : len(picked)] = [pool[p] for p in picked]
    columns = [[""] * len(base) for _ in range(per_pair)]
    for i in positive:
        for k, j in enumerate(chosen[row[label_key(base[i])]]):
            if j >= 0:
                columns[k][i] = candidates[j]
    return columns


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


def add_hard_negatives(pairset, model_spec, depth=DEFAULT_DEPTH, seed=0, progress=False,
                       per_pair=1):
    """Add ``negative`` (and ``negative_2``, ...) columns to ``pairset.train`` (a taxonomy :class:`PairSet`).

    ``model_spec`` is anything :func:`~domain_tune.models.loading.load_model`
    takes; it is loaded only when there is something to mine.
    """
    from domain_tune.embedding import encode
    from domain_tune.models.loading import load_model

    train = pairset.train
    if not len(train):
        raise BadInputError("--hard-negatives: there are no training pairs to mine for (--holdout 1?)")
    labels = negative_candidates(pairset)
    if depth < 1:
        raise BadInputError(f"--mining-depth must be at least 1 (got {depth})")
    if per_pair < 1 or per_pair > depth:
        raise BadInputError(f"--hard-negatives-per-pair must be between 1 and --mining-depth {depth} "
                            f"(got {per_pair})")
    model = load_model(model_spec, "--mining-model")
    columns = mine_negative_columns(
        train["base"].tolist(), train["ref"].tolist(), train["similarity"].to_numpy(),
        lambda texts: encode(model, texts, progress=progress, label="Mining"),
        depth=depth, seed=seed, candidates=labels, per_pair=per_pair,
    )
    pairset.train = train.assign(**{negative_column_name(k): c for k, c in enumerate(columns)})
    pairset.stats["hard_negatives"] = sum(1 for c in columns for n in c if n)
    pairset.params["hard_negatives"] = {"model": str(model_spec), "depth": depth,
                                        "per_pair": per_pair}
    return pairset


def mine_pairs_file(path, out, model, depth=DEFAULT_DEPTH, seed=0, text_columns=("base", "ref"),
                    score_column="similarity", score_range=(0.0, 1.0), progress=False,
                    per_pair=1):
    """Copy the pairs file ``path`` to ``out`` with ``negative`` columns mined by ``model``.

    ``per_pair`` negatives per positive pair go into ``negative``,
    ``negative_2``, ...  The pairs are validated as ``train`` reads them;
    every other column of the file is kept (existing negative columns are
    replaced).  ``out`` is written whole or not at all.  Returns
    ``{"pairs", "positive", "hard_negatives"}``.
    """
    import os

    from domain_tune.datasets.files import delimiter, read_csv
    from domain_tune.datasets.pairs import filled_rows, negative_columns, read_pairs
    from domain_tune.embedding import encode

    taken = negative_columns([*text_columns, score_column])
    if taken:
        raise BadInputError(f"the column {taken[0]!r} is where the negatives go; "
                            "rename that text or score column")
    pairs = read_pairs(path, text_columns, score_column, score_range)
    columns = mine_negative_columns(
        pairs.base, pairs.ref, pairs.similarity,
        lambda texts: encode(model, texts, progress=progress, label="Mining"),
        depth=depth, seed=seed, per_pair=per_pair,
    )
    frame = read_csv(path, "pairs file")
    frame = frame[filled_rows(frame)]  # the rows read_pairs read (',,' rows are blank lines)
    frame = frame.drop(columns=negative_columns(list(frame.columns)))
    for k, column in enumerate(columns):
        frame[negative_column_name(k)] = column
    from domain_tune.outputs import atomic_file

    out = os.path.abspath(out)
    sep = "\t" if out.lower().endswith(".tsv") else delimiter(path)  # the input's dialect
    with atomic_file(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False, sep=sep)  # scores as they were written
    return {"pairs": len(pairs), "positive": int((pairs.similarity >= POSITIVE).sum()),
            "hard_negatives": sum(1 for c in columns for n in c if n)}
