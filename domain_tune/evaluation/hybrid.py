"""Hybrid retrieval scores: dense cosine fused with a lexical score, richer corpus entries.

Two retrieval-time additions to the dense ranking of
:mod:`domain_tune.evaluation.retrieval`, neither of which needs training:

* **Lexical fusion.**  ``score = dense + lexical_weight * lexical``, where
  ``lexical`` is the cosine of character n-gram TF-IDF vectors
  (scikit-learn's ``TfidfVectorizer(analyzer="char_wb")``, 2- to 4-grams by
  default, IDF fitted on the corpus texts).  It rewards shared word pieces
  (acronyms, jargon, inflections) that the encoder may miss.
* **Richer concepts.**  A corpus entry may have a second text (a description)
  beside its label; its vector is ``normalize(label + description_weight *
  description)`` of the two unit embeddings.  The dense score against it is
  computed from the two cosines, so scanning the weight costs no embedding.

Weights are chosen with :func:`choose_weights` on validation queries (for
instance alternative labels of concepts held out of training, never the
test queries): the grid point with the best top-1, ties broken by MRR.

Everything works on plain lists and arrays; :func:`fuse_scores` is the entry
point for any caller that already has dense scores (a matching service).
"""

import dataclasses
import itertools

import numpy as np

from domain_tune.similarity import RowProducts, normalize_rows

DEFAULT_NGRAMS = (2, 4)
LEXICAL_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6)
DESCRIPTION_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


@dataclasses.dataclass
class HybridWeights:
    lexical: float = 0.0  # weight of the character n-gram TF-IDF cosine
    description: float = 0.0  # weight of a corpus entry's description embedding

    def validate(self):
        from domain_tune.errors import BadInputError

        for name, value in dataclasses.asdict(self).items():
            if not (np.isfinite(value) and value >= 0):
                raise BadInputError(f"--{name}-weight must be a number >= 0 (got {value})")


class LexicalScorer:
    """Cosine of character n-gram TF-IDF vectors, with the IDF fitted on ``corpus_texts``."""

    def __init__(self, corpus_texts, ngram_range=DEFAULT_NGRAMS):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(ngram_range),
                                          lowercase=True, sublinear_tf=True, dtype=np.float32)
        self.corpus = self.vectorizer.fit_transform(list(corpus_texts))  # rows L2-normalised

    def scores(self, queries):
        """``(len(queries), len(corpus))`` cosines in [0, 1]."""
        q = self.vectorizer.transform(list(queries))
        return np.asarray((q @ self.corpus.T).todense(), dtype=np.float32)


def fuse_scores(dense, query_texts, corpus_texts, lexical_weight, lexical=None):
    """``dense + lexical_weight * lexical cosine`` for every query/corpus pair.

    ``dense`` is a ``(queries, corpus)`` matrix of dense scores (cosines);
    ``lexical`` a :class:`LexicalScorer` fitted on ``corpus_texts`` (built here
    when not given).  A weight of 0 returns ``dense`` unchanged.
    """
    dense = np.asarray(dense, dtype=np.float32)
    if dense.shape != (len(query_texts), len(corpus_texts)):
        raise ValueError(f"dense scores {dense.shape} do not match {len(query_texts)} queries x "
                         f"{len(corpus_texts)} corpus texts")
    if not lexical_weight:
        return dense
    lexical = lexical or LexicalScorer(corpus_texts)
    return dense + np.float32(lexical_weight) * lexical.scores(query_texts)


class DenseParts:
    """Query-corpus cosines of labels and descriptions, to score any description weight."""

    def __init__(self, query_emb, label_emb, description_emb=None, has_description=None):
        self.q = normalize_rows(query_emb)
        self.labels = normalize_rows(label_emb)
        self.descriptions = None
        if description_emb is not None:
            d = normalize_rows(description_emb)
            if has_description is not None:  # entries without a description: label only
                d = d * np.asarray(has_description, dtype=np.float32)[:, None]
            self.descriptions = d
            self.cross = np.sum(self.labels * d, axis=1)  # cos(label, description) per entry

    def scores(self, description_weight=0.0, rows=slice(None)):
        """Cosine of each query to ``normalize(label + w * description)`` of each entry."""
        s = self.q[rows] @ self.labels.T
        if self.descriptions is None or not description_weight:
            return s
        w = np.float32(description_weight)
        norm = np.sqrt(1.0 + w * w * np.sum(self.descriptions ** 2, axis=1) + 2.0 * w * self.cross)
        return (s + w * (self.q[rows] @ self.descriptions.T)) / norm.clip(1e-12)


def entry_embeddings(label_emb, description_emb=None, description_weight=0.0,
                     has_description=None):
    """Unit vectors ``normalize(label + w * description)`` of the corpus entries."""
    e = normalize_rows(label_emb)
    if description_emb is None or not description_weight:
        return e
    d = normalize_rows(description_emb)
    if has_description is not None:
        d = d * np.asarray(has_description, dtype=np.float32)[:, None]
    return normalize_rows(e + np.float32(description_weight) * d)


def hybrid_ranks(parts, gold, corpus_ids, query_texts, lexical, weights, lexical_scores=None):
    """Ranks of each query's gold id (see :func:`~domain_tune.evaluation.retrieval.gold_ranks`)
    under ``weights`` (a :class:`HybridWeights`)."""
    from domain_tune.evaluation.retrieval import gold_ranks

    def rows(s, e):
        dense = parts.scores(weights.description, slice(s, e))
        if not weights.lexical:
            return dense
        lex = lexical_scores[s:e] if lexical_scores is not None else lexical.scores(query_texts[s:e])
        return dense + np.float32(weights.lexical) * lex

    return gold_ranks(parts.q, gold, parts.labels, corpus_ids, score_rows=rows)


def choose_weights(parts, gold, corpus_ids, query_texts, lexical, lexical_grid=LEXICAL_GRID,
                   description_grid=DESCRIPTION_GRID):
    """The grid point with the best top-1 (then MRR) on these (validation) queries.

    Returns ``(HybridWeights, table)`` where ``table`` lists every grid point's
    ``{"lexical", "description", "top1", "mrr"}``.
    """
    from domain_tune.evaluation.retrieval import metrics_from_ranks

    if parts.descriptions is None:
        description_grid = (0.0,)
    if lexical is None:
        lexical_grid = (0.0,)
    lex = lexical.scores(query_texts) if lexical is not None and any(lexical_grid) else None
    table = []
    for wl, wd in itertools.product(lexical_grid, description_grid):
        ranks = hybrid_ranks(parts, gold, corpus_ids, query_texts, lexical,
                             HybridWeights(wl, wd), lexical_scores=lex)
        m = metrics_from_ranks(ranks)
        table.append({"lexical": wl, "description": wd, "top1": m["top1"], "mrr": m["mrr"]})
    best = max(table, key=lambda r: (r["top1"], r["mrr"], -r["lexical"] - r["description"]))
    return HybridWeights(best["lexical"], best["description"]), table


def evaluate_hybrid(model, queries, query_ids, corpus_labels, corpus_ids, weights,
                    corpus_descriptions=None, validation=None, batch_size=256, progress=False):
    """Retrieval metrics with lexical fusion and description-weighted entries.

    ``weights`` is a :class:`HybridWeights`, or ``None`` to choose it with
    :func:`choose_weights` on ``validation`` = ``(queries, query_ids)`` (ranked
    against the same corpus; never the evaluated queries).  Returns the metrics
    of :func:`~domain_tune.evaluation.retrieval.evaluate_retrieval` plus
    ``"weights"`` and, when chosen, ``"validation"`` (the grid and the best).
    """
    from domain_tune.embedding import encode
    from domain_tune.errors import BadInputError
    from domain_tune.evaluation.retrieval import group_queries, metrics_from_ranks

    if len(corpus_labels) != len(corpus_ids):
        raise ValueError("corpus_labels and corpus_ids must have the same length")
    if corpus_descriptions is not None and len(corpus_descriptions) != len(corpus_labels):
        raise ValueError("corpus_descriptions and corpus_labels must have the same length")
    texts, gold = group_queries(queries, query_ids)
    if not texts:
        raise BadInputError("no queries to evaluate")
    if weights is None and validation is None:
        raise ValueError("give weights, or validation queries to choose them on")
    if weights is not None:
        weights.validate()
    labels = encode(model, list(corpus_labels), batch_size, progress, "Corpus")
    descriptions = has = None
    if corpus_descriptions is not None:
        has = [bool(str(d).strip()) for d in corpus_descriptions]
        descriptions = encode(model, [str(d) if h else "" for d, h in zip(corpus_descriptions, has)],
                              batch_size, progress, "Descriptions")
    lexical = LexicalScorer(corpus_labels)
    out = {}
    if weights is None:
        v_texts, v_gold = group_queries(*validation)
        v_parts = DenseParts(encode(model, v_texts, batch_size, progress, "Validation"), labels,
                             descriptions, has)
        weights, table = choose_weights(v_parts, v_gold, list(corpus_ids), v_texts, lexical)
        best = next(r for r in table if (r["lexical"], r["description"]) ==
                    (weights.lexical, weights.description))
        out["validation"] = {"n": len(v_texts), "best": best, "grid": table}
    parts = DenseParts(encode(model, texts, batch_size, progress, "Queries"), labels,
                       descriptions, has)
    ranks = hybrid_ranks(parts, gold, list(corpus_ids), texts, lexical, weights)
    return {**metrics_from_ranks(ranks), "corpus": len(set(corpus_ids)),
            "weights": dataclasses.asdict(weights), **out}


class HybridScorer:
    """Scores of queries against a fixed corpus: fused dense + lexical, richer entries.

    Built once from the corpus texts and embeddings (the scorer hook of a
    matching service: ``scorer(corpus_texts, corpus_embeddings)``), then called
    with ``(queries, query_embeddings)`` for a ``(queries, corpus)`` matrix.
    """

    name = "hybrid"

    def __init__(self, corpus_texts, corpus_embeddings, weights, description_embeddings=None,
                 has_description=None):
        weights.validate()
        self.corpus_texts = list(corpus_texts)
        self.weights = weights
        self.entries = entry_embeddings(corpus_embeddings, description_embeddings,
                                        weights.description, has_description)
        self.lexical = LexicalScorer(self.corpus_texts) if weights.lexical else None
        self.rows = self.entries  # the search scores equal (entry, text) pairs once
        self.keys = self.corpus_texts if self.lexical is not None else None

    def block(self, queries, query_embeddings):
        """A function of corpus rows (a slice or index array) to the fused scores of
        ``queries`` against them."""
        q = normalize_rows(query_embeddings)
        if self.lexical is None:
            return lambda rows: q @ self.entries[rows].T
        lexical = self.lexical.vectorizer.transform(list(queries))
        weight = np.float32(self.weights.lexical)

        def tile(rows):
            lex = np.asarray((lexical @ self.lexical.corpus[rows].T).todense(), dtype=np.float32)
            return q @ self.entries[rows].T + weight * lex

        return tile

    def __call__(self, queries, query_embeddings):
        dense = RowProducts(self.entries)(normalize_rows(query_embeddings))
        return fuse_scores(dense, list(queries), self.corpus_texts, self.weights.lexical,
                           self.lexical)


def hybrid_scorer(weights, description_embeddings=None, has_description=None):
    """A factory ``(corpus_texts, corpus_embeddings) -> HybridScorer`` with these weights."""

    def make(corpus_texts, corpus_embeddings):
        return HybridScorer(corpus_texts, corpus_embeddings, weights, description_embeddings,
                            has_description)

    return make
