"""Retrieval evaluation: plain lists in, a dict of metrics out.

Each query has one or more correct ids; the corpus is a list of labels, each
with an id (an id may have several labels, and then scores as its best one).
For every query the ids are ranked by cosine similarity and the *rank* of the
query is that of its best-ranked correct id: ``1 +`` the number of ids that
score strictly higher.  The metrics are

* ``top1``, ``top5``, ``top10``: the fraction of queries ranked within k;
* ``mrr``: the mean of ``1 / rank`` over the full ranking (no cut-off).

A query text given on several rows is one query whose correct ids are the
ids of those rows.  Loading the files stays outside this module
(:func:`domain_tune.datasets.retrieval_set.read_retrieval_set`).
"""

import numpy as np

from domain_tune.embedding import DEFAULT_BATCH_SIZE, encode
from domain_tune.errors import BadInputError
from domain_tune.similarity import normalize_rows

KS = (1, 5, 10)
CHUNK = 1024  # queries scored at once (fewer for a large corpus)
MAX_CELLS = 1 << 24  # query x corpus similarities held at once (64 MB of float32)


def group_queries(queries, query_ids):
    """Distinct query texts (first-seen order) and the list of correct ids of each."""
    if len(queries) != len(query_ids):
        raise ValueError("queries and query_ids must have the same length")
    gold = {}
    for text, cid in zip(queries, query_ids):
        ids = gold.setdefault(text, [])
        if cid not in ids:
            ids.append(cid)
    return list(gold), list(gold.values())


def gold_ranks(query_embeddings, gold, corpus_embeddings, corpus_ids, chunk=CHUNK,
               score_rows=None):
    """The 1-based rank of each query's best-ranked correct id among all corpus ids.

    ``gold`` holds, per query, a list of correct ids; ``corpus_ids`` the id of
    each corpus row.  Raises :class:`BadInputError` for a correct id that is
    not in the corpus.  ``score_rows(start, stop)``, when given, replaces the
    cosines of queries ``start..stop`` with any scores of the same shape (see
    :mod:`domain_tune.evaluation.hybrid`).
    """
    q = normalize_rows(query_embeddings)
    c = normalize_rows(corpus_embeddings)
    if len(q) != len(gold):
        raise ValueError("query_embeddings and gold must have the same length")
    if len(c) != len(corpus_ids):
        raise ValueError("corpus_embeddings and corpus_ids must have the same length")
    if len(c) == 0:
        raise BadInputError("the corpus is empty")
    index = {}
    column = np.array([index.setdefault(cid, len(index)) for cid in corpus_ids])
    order = np.argsort(column, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(column[order]) != 0])
    several = len(starts) < len(column)  # some id has several labels: take its best
    try:
        golds = [[index[cid] for cid in ids] for ids in gold]
    except KeyError as e:
        raise BadInputError(f"id {e.args[0]!r} of a query is not in the corpus") from None
    if any(not ids for ids in golds):
        raise ValueError("every query needs at least one correct id")
    width = max((len(ids) for ids in golds), default=1)
    gold_mat = np.array([ids + ids[:1] * (width - len(ids)) for ids in golds], dtype=int)
    gold_mat = gold_mat.reshape(len(golds), width)
    ranks = np.empty(len(q), dtype=np.int64)
    chunk = max(1, min(chunk, MAX_CELLS // len(c)))
    for s in range(0, len(q), chunk):
        sims = q[s : s + chunk] @ c.T if score_rows is None else score_rows(s, min(len(q), s + chunk))
        scores = np.maximum.reduceat(sims[:, order], starts, axis=1) if several else sims[:, order]
        best = np.take_along_axis(scores, gold_mat[s : s + chunk], axis=1).max(axis=1)
        ranks[s : s + chunk] = 1 + (scores > best[:, None]).sum(axis=1)
    return ranks


def metrics_from_ranks(ranks, ks=KS):
    """``{"n", "top<k>" for k in ks, "mrr"}`` from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        raise BadInputError("no queries to evaluate")
    out = {"n": int(len(ranks))}
    out.update({f"top{k}": float(np.mean(ranks <= k)) for k in ks})
    out["mrr"] = float(np.mean(1.0 / ranks))
    return out


def evaluate_embeddings(query_embeddings, gold, corpus_embeddings, corpus_ids, ks=KS):
    """Metrics from embeddings already computed (one row per distinct query)."""
    ranks = gold_ranks(query_embeddings, gold, corpus_embeddings, corpus_ids)
    return {**metrics_from_ranks(ranks, ks), "corpus": len(set(corpus_ids))}


def evaluate_retrieval(
    model, queries, query_ids, corpus_labels, corpus_ids, ks=KS,
    batch_size=DEFAULT_BATCH_SIZE, progress=False,
):
    """Rank the corpus for every query with ``model`` and score the ranks.

    ``queries``/``query_ids`` are parallel lists (a text on several rows has
    several correct ids); ``corpus_labels``/``corpus_ids`` likewise.  The corpus
    is embedded once and each distinct query once, in length-sorted batches.
    Returns ``{"n", "corpus", "top1", "top5", "top10", "mrr"}`` where ``n``
    counts distinct queries and ``corpus`` distinct ids.
    """
    if len(corpus_labels) != len(corpus_ids):
        raise ValueError("corpus_labels and corpus_ids must have the same length")
    texts, gold = group_queries(queries, query_ids)
    if not texts:
        raise BadInputError("no queries to evaluate")
    if not len(corpus_labels):
        raise BadInputError("the corpus is empty")
    known = set(corpus_ids)
    for text, ids in zip(texts, gold):
        for cid in ids:
            if cid not in known:
                raise BadInputError(f"query {text!r}: id {cid!r} is not in the corpus")
    corpus_emb = encode(model, list(corpus_labels), batch_size, progress, "Corpus")
    query_emb = encode(model, texts, batch_size, progress, "Queries")
    result = evaluate_embeddings(query_emb, gold, corpus_emb, list(corpus_ids), ks)
    return {"n": result["n"], "corpus": result["corpus"],
            **{k: v for k, v in result.items() if k not in ("n", "corpus")}}
