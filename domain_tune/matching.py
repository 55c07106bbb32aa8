"""Match free texts to a corpus: for each query, its ``top_k`` corpus entries with scores.

The end use of a tuned model: map job titles (or any texts) to the concepts
of a taxonomy.  The search is exact: every query is scored against every
corpus entry, blocks of 512 queries against tiles of 32,768 entries with a
running top-k (:mod:`domain_tune.similarity`), so memory is the corpus
embeddings (float32, 2 KB an entry) plus one tile of scores, however many
queries stream through and however large the corpus.  Ties go to the earlier
corpus entry.  For approximate search and compact codes see
:mod:`domain_tune.indexing`.

Scoring is a hook: a *scorer* is built once from the corpus (its texts and
unit-length embeddings), then called on each block of queries (their texts
and unit-length embeddings) and returns the block's scores against the
corpus (or a tile of it), higher is better.  :class:`CosineScorer` is the default; another scorer (a
lexical + dense fusion, say) ranks with its own score, and the rows still
report cosine and angular similarity of the pair (and the scorer's ``score``).
"""

import csv
import json
import os
import warnings
from typing import Iterable, Iterator, List, Optional, Protocol, Sequence

import numpy as np

from domain_tune.corpus import MatchWarning, blank_mask, read_corpus, read_descriptions, text_column
from domain_tune.errors import BadInputError, caller_stacklevel
from domain_tune.similarity import (
    CORPUS_TILE,
    QUERY_BLOCK,
    Columns,
    RowProducts,
    angular,
    exact_top_k,
    normalize_in_place,
)

MAX_CELLS = 1 << 24  # query x corpus scores held at once (64 MB of float32)
QUERY_CHUNK = 8192  # queries read and embedded at once
COLUMNS = ("query", "rank", "corpus_id", "corpus_text", "cosine", "angular")
OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}
# label + 0.5 x description: within what validation chose on ESCO (0.5-0.7, results/quality.md)
DEFAULT_DESCRIPTION_WEIGHT = 0.5


class Scorer(Protocol):
    """Scores of a block of queries against the whole corpus (the ranking hook).

    ``name`` labels the score column when it is not plain cosine.  A scorer
    may also offer ``block(queries, query_embeddings)`` returning a function of
    corpus rows (a slice or an index array) to their scores, with ``rows`` (the
    matrix it multiplies) and ``keys`` (``None``, or one more value per entry that
    must be equal for two entries to score equal): the search then scores one
    corpus tile at a time, and equal entries once.  Without it the search asks
    for whole rows of scores, in blocks of at most ``max_cells``.
    """

    name: str

    def __call__(self, queries: List[str], query_embeddings: np.ndarray) -> np.ndarray:
        """A ``(len(queries), corpus size)`` float32 array; higher ranks first."""


class CosineScorer:
    """Cosine similarity of unit-length embeddings (the default)."""

    name = "cosine"
    keys = None

    def __init__(self, corpus_embeddings: np.ndarray):
        self.rows = corpus_embeddings

    def block(self, queries, query_embeddings):
        return lambda columns: query_embeddings @ self.rows[columns].T

    def __call__(self, queries, query_embeddings):
        return RowProducts(self.rows)(query_embeddings)  # equal entries score bit-equal


def is_cosine(scorer):
    """True for a scorer that ranks by plain cosine (no extra score column)."""
    return scorer is None or getattr(scorer, "name", None) == "cosine"


class Block:
    """The matches of a block of queries: ``index``/``score``/``cosine`` are ``(n, k)``."""

    def __init__(self, queries, index, score, cosine):
        self.queries, self.index, self.score, self.cosine = queries, index, score, cosine


def _owner(cls, name):
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _tiled(scorer):
    """True when ``scorer.block`` scores as its ``__call__`` does: defined by the same
    class or a subclass (a subclass that overrides only ``__call__`` is asked for whole rows)."""
    block, call = _owner(type(scorer), "block"), _owner(type(scorer), "__call__")
    return block is not None and (call is None or issubclass(block, call))


def _whole_rows(scorer):
    """The block function of a scorer without ``block``: its whole rows of scores, sliced."""

    def block(queries, q):
        scores = np.asarray(scorer(queries, q), dtype=np.float32)
        return lambda columns: scores[:, columns]

    return block


def search(query_chunks: Iterable[Sequence[str]], encode_fn, corpus_embeddings: np.ndarray,
           k: int, scorer: Optional[Scorer] = None, exclude: Optional[np.ndarray] = None,
           max_cells: int = MAX_CELLS) -> Iterator[Block]:
    """Yield the ``k`` best corpus rows of every query, block by block, in query order.

    ``encode_fn(texts)`` embeds a chunk of queries; ``corpus_embeddings`` must
    be unit-length float32 rows; ``exclude`` marks corpus rows never to
    return (blank texts).  Blank queries come back with no matches (``k``
    columns of index -1).  Blocks of at most :data:`~domain_tune.similarity.QUERY_BLOCK`
    queries are scored against corpus tiles, at most ``max_cells`` similarities at once
    (:func:`~domain_tune.similarity.exact_top_k`).
    """
    c = corpus_embeddings
    scorer = scorer or CosineScorer(c)
    tiled = _tiled(scorer)
    columns = Columns(scorer.rows if tiled else c, exclude,
                      getattr(scorer, "keys", None) if tiled else None)
    k = min(k, columns.allowed)
    n = max(1, len(c))
    if tiled:
        tile = max(1, min(CORPUS_TILE, n, max_cells))
        rows = max(1, min(QUERY_BLOCK, max_cells // tile))
        block_fn = scorer.block
    else:  # whole rows of scores: as many queries as max_cells allows
        tile, rows = n, max(1, max_cells // n)
        block_fn = _whole_rows(scorer)
    for chunk in query_chunks:
        chunk = [str(t) for t in chunk]
        keep = np.array([bool(t.strip()) for t in chunk], dtype=bool)
        emb = np.zeros((len(chunk), c.shape[1]), np.float32)
        if keep.any():
            emb[keep] = encode_fn([t for t, ok in zip(chunk, keep) if ok])
            normalize_in_place(emb)
        for s in range(0, len(chunk), rows):
            texts, q, ok = chunk[s : s + rows], emb[s : s + rows], keep[s : s + rows]
            index = np.full((len(texts), k), -1, dtype=np.int64)
            score = np.full((len(texts), k), np.nan, dtype=np.float32)
            cosine = np.full((len(texts), k), np.nan, dtype=np.float32)
            if ok.any() and k > 0:
                live, q_live = [t for t, o in zip(texts, ok) if o], q[ok]
                idx, vals = exact_top_k(block_fn(live, q_live), columns, len(live), k, tile)
                index[ok], score[ok] = idx, vals
                cosine[ok] = vals if is_cosine(scorer) else np.einsum(
                    "ij,ikj->ik", q_live, c[idx])
            yield Block(texts, index, score, cosine)


def _rows(block, corpus_texts, corpus_ids, min_score, extra_score):
    for i, query in enumerate(block.queries):
        rank = 0
        for j in range(block.index.shape[1]):
            r = block.index[i, j]
            if r < 0:
                break
            score = float(block.score[i, j])
            if min_score is not None and score < min_score:
                break
            rank += 1
            cos = float(block.cosine[i, j])
            row = {"query": query, "rank": rank, "corpus_id": corpus_ids[r],
                   "corpus_text": corpus_texts[r], "cosine": round(cos, 6),
                   "angular": round(float(angular(cos)), 6)}
            if extra_score:
                row["score"] = round(score, 6)
            yield row


def _warn_blank_queries(n):
    if n:
        warnings.warn(f"{n} blank quer{'y' if n == 1 else 'ies'} left without matches",
                      MatchWarning, stacklevel=caller_stacklevel())


def _check_k(top_k, min_score, cosine=True):
    """``cosine``: matches are ranked by cosine similarity (no other scorer)."""
    if int(top_k) < 1:
        raise BadInputError(f"--top-k must be at least 1 (got {top_k})")
    if min_score is not None and not np.isfinite(float(min_score)):
        raise BadInputError(f"--min-score must be a finite number (got {min_score})")
    if cosine and min_score is not None and float(min_score) > 1:
        raise BadInputError(f"--min-score {min_score} leaves out every match: a cosine "
                            "similarity is at most 1")


def load_corpus_embeddings(path, model, corpus_texts, model_spec=None):
    """A ``.npy`` written by ``domain-tune embed`` for ``corpus_texts`` with ``model`` (checked)."""
    from domain_tune.embedding_cache import load_cache

    if not os.path.exists(path):
        raise BadInputError(f"--corpus-embeddings {path} does not exist")
    return load_cache(path, model, model_spec or getattr(model, "name", "this model"), corpus_texts)


def corpus_matrix(model, corpus_texts, corpus_embeddings=None, batch_size=256, progress=False):
    """Unit-length float32 corpus embeddings: given ones (checked) or computed."""
    from domain_tune.embedding import encode

    if corpus_embeddings is None:
        return normalize_in_place(encode(model, list(corpus_texts), batch_size=batch_size,
                                         progress=progress, label="Corpus"))
    try:
        c = np.array(corpus_embeddings, dtype=np.float32)  # a copy, normalised in place
    except (TypeError, ValueError) as e:
        raise BadInputError(f"corpus_embeddings must be an array of numbers ({e})") from None
    if c.ndim != 2 or len(c) != len(corpus_texts):
        raise BadInputError(f"corpus_embeddings has shape {c.shape}; expected one row per corpus "
                            f"text ({len(corpus_texts)})")
    width = encode(model, [""]).shape[1]
    if c.shape[1] != width:
        raise BadInputError(f"corpus_embeddings has {c.shape[1]} columns; the model embeds in "
                            f"{width} (were they made by another model?)")
    from domain_tune.embedding_cache import check_finite

    check_finite(c, "corpus_embeddings")
    return normalize_in_place(c)


def _ids(corpus_ids):
    """``corpus_ids`` as a list; a missing (None, NaN) id is a :class:`BadInputError`, as an
    empty id in a file is."""
    import pandas as pd

    ids = list(corpus_ids)
    missing = [i for i, v in enumerate(ids) if v is None or (np.ndim(v) == 0 and pd.isna(v))]
    if missing:
        raise BadInputError(f"corpus_ids: item {missing[0]} is missing (None or NaN)"
                            + (f", and {len(missing) - 1:,} more" if len(missing) > 1 else ""))
    return ids


def lexical_scorer(lexical_weight: float = 0.0):
    """The scorer factory of ``--lexical-weight W``: ``None`` (plain cosine) for 0, else
    cosine + W x the character n-gram TF-IDF cosine (:mod:`domain_tune.evaluation.hybrid`)."""
    if not lexical_weight:
        return None
    from domain_tune.evaluation.hybrid import HybridWeights, hybrid_scorer

    return hybrid_scorer(HybridWeights(float(lexical_weight), 0.0))


def match(model, queries: Sequence[str], corpus: Sequence[str], top_k: int = 5,
          corpus_ids: Optional[Sequence] = None, min_score: Optional[float] = None,
          corpus_embeddings: Optional[np.ndarray] = None, batch_size: int = 256,
          progress: bool = False, scorer=None, max_cells: int = MAX_CELLS,
          descriptions: Optional[Sequence[str]] = None,
          description_weight: float = None):
    """In memory: a DataFrame of the ``top_k`` matches of each query (see :data:`COLUMNS`).

    ``descriptions`` (one per corpus entry, empty for none) ranks each entry by
    ``normalize(label + description_weight x description)`` (default weight
    :data:`DEFAULT_DESCRIPTION_WEIGHT`).

    ``scorer``: ``None`` (cosine) or a factory ``scorer(corpus_texts,
    corpus_embeddings)`` returning a :class:`Scorer`.
    """
    import pandas as pd

    from domain_tune.embedding import encode

    _check_k(top_k, min_score, cosine=scorer is None)
    from domain_tune.text_values import as_text

    corpus = [as_text(t) for t in corpus]
    queries = [as_text(t) for t in queries]
    if not corpus:
        raise BadInputError("the corpus is empty")
    ids = list(range(1, len(corpus) + 1)) if corpus_ids is None else _ids(corpus_ids)
    if len(ids) != len(corpus):
        raise BadInputError(f"corpus_ids has {len(ids)} entries for {len(corpus)} corpus texts")
    exclude = blank_mask(corpus)
    _warn_blank_queries(sum(1 for q in queries if not q.strip()))
    c = corpus_matrix(model, corpus, corpus_embeddings, batch_size, progress)
    if descriptions is not None:
        weight = DEFAULT_DESCRIPTION_WEIGHT if description_weight is None else description_weight
        c = with_descriptions(model, c, list(descriptions), float(weight), batch_size, progress)
    made = scorer(corpus, c) if scorer is not None else None
    chunks = (list(queries[s : s + QUERY_CHUNK]) for s in range(0, len(queries), QUERY_CHUNK))
    rows = []
    for block in search(chunks, lambda t: encode(model, t, batch_size=batch_size), c, top_k,
                        made, exclude, max_cells):
        rows.extend(_rows(block, corpus, ids, min_score, not is_cosine(made)))
    columns = list(COLUMNS) + ([] if is_cosine(made) else ["score"])
    return pd.DataFrame(rows, columns=columns)


# --- files ---------------------------------------------------------------------


def output_format(path):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise BadInputError(f"--out {path}: unknown output format {ext or '(no extension)'}; "
                            "use .csv or .jsonl")
    return OUTPUT_FORMATS[ext]


def with_descriptions(model, corpus_embeddings, descriptions, weight, batch_size=256,
                      progress=False):
    """Unit vectors ``normalize(label + weight * description)`` of the corpus entries (see
    :func:`domain_tune.evaluation.hybrid.entry_embeddings`); an entry without a description
    (an empty cell) keeps its label's vector."""
    from domain_tune.text_values import as_text
    from domain_tune.embedding import encode
    from domain_tune.evaluation.hybrid import entry_embeddings

    descriptions = [as_text(d) for d in descriptions]
    if len(descriptions) != len(corpus_embeddings):
        raise BadInputError(f"{len(descriptions)} descriptions for {len(corpus_embeddings)} corpus "
                            "entries; give one per entry (an empty one for none)")
    if not (np.isfinite(weight) and weight >= 0):
        raise BadInputError(f"--description-weight must be a number >= 0 (got {weight})")
    has = [bool(d.strip()) for d in descriptions]
    if not weight or not any(has):
        return corpus_embeddings
    emb = encode(model, [d if h else "" for d, h in zip(descriptions, has)], batch_size=batch_size,
                 progress=progress, label="Descriptions")
    return entry_embeddings(corpus_embeddings, emb, weight, has)


class _CsvWriter:
    def __init__(self, f, columns):
        self.w = csv.DictWriter(f, fieldnames=columns)
        self.w.writeheader()

    def write(self, row):
        self.w.writerow(row)


class _JsonlWriter:
    def __init__(self, f, columns):
        self.f = f

    def write(self, row):
        self.f.write(json.dumps(row, ensure_ascii=False, default=str))
        self.f.write("\n")


def match_files(model, queries_path, corpus_path, out, top_k=5, query_column=None,
                corpus_column=None, id_column=None, min_score=None, corpus_embeddings=None,
                model_spec=None, batch_size=256, progress=True, overwrite=False, scorer=None,
                max_cells=MAX_CELLS, loader=None, description_column=None,
                description_weight=DEFAULT_DESCRIPTION_WEIGHT):
    """Stream the matches of every query of ``queries_path`` into ``out`` (.csv or .jsonl).

    With ``description_column``, each corpus entry is ranked by
    ``normalize(label + description_weight x description)`` (:func:`with_descriptions`);
    ``corpus_embeddings`` then caches the labels' embeddings only.

    ``corpus_embeddings`` is a ``.npy`` path: reused if it exists (refused if
    another model or other texts made it), else written with its record for
    the next run.  ``out`` appears only when complete.  ``model`` may be
    ``None`` with ``loader`` (a function returning it), called once the
    inputs have been checked.  ``scorer``: ``None`` (cosine) or a factory
    ``scorer(corpus_texts, corpus_embeddings)`` returning a :class:`Scorer`
    (built once, then called on every block of queries).  Returns a summary.
    """
    import time

    from domain_tune import embedding_cache
    from domain_tune.datasets.texts import count_texts, text_chunks
    from domain_tune.embedding import encode
    from domain_tune.outputs import check_out

    started = time.perf_counter()
    fmt = output_format(out)
    check_out(out, overwrite, inputs=(queries_path, corpus_path))
    _check_k(top_k, min_score, cosine=scorer is None)
    queries_path, corpus_path = os.fspath(queries_path), os.fspath(corpus_path)
    q_column = text_column(queries_path, query_column, "--query-column", "queries")
    n_queries = count_texts(queries_path, q_column, what="queries")
    texts, ids = read_corpus(corpus_path, corpus_column, id_column)
    descriptions = (None if description_column is None
                    else read_descriptions(corpus_path, description_column, len(texts)))
    exclude = blank_mask(texts)
    if corpus_embeddings is not None:
        corpus_embeddings = os.fspath(corpus_embeddings)
        if not os.path.exists(corpus_embeddings):
            if not corpus_embeddings.lower().endswith(".npy"):
                raise BadInputError(f"--corpus-embeddings {corpus_embeddings}: name a .npy file")
            check_out(corpus_embeddings, False, flag="--corpus-embeddings")
    if model is None:
        model = loader()
    reused = False
    if corpus_embeddings is not None and os.path.exists(corpus_embeddings):
        c = normalize_in_place(embedding_cache.load_cache(corpus_embeddings, model, model_spec, texts))
        reused = True
    else:
        raw = encode(model, texts, batch_size=batch_size, progress=progress, label="Corpus")
        if corpus_embeddings is not None:
            meta = embedding_cache.metadata(model, model_spec, len(raw), raw.shape[1],
                                            embedding_cache.texts_sha256(texts), corpus_path,
                                            corpus_column)
            embedding_cache.save_cache(corpus_embeddings, raw, meta)
        c = normalize_in_place(raw)
    if descriptions is not None:
        c = with_descriptions(model, c, descriptions, description_weight, batch_size, progress)
    made = scorer(texts, c) if scorer is not None else None
    columns = list(COLUMNS) + ([] if is_cosine(made) else ["score"])
    chunks = text_chunks(queries_path, q_column, chunk=QUERY_CHUNK, what="queries")
    blocks = search(chunks, lambda t: encode(model, t, batch_size=batch_size), c, top_k, made,
                    exclude, max_cells)
    written = _write_matches(out, fmt, columns, blocks, texts, ids, min_score, n_queries,
                             not is_cosine(made), progress)
    return {"out": os.fspath(out), "format": fmt, "queries": n_queries, **written,
            "corpus": len(texts), "top_k": int(top_k), "min_score": min_score,
            "corpus_embeddings": ({"path": os.fspath(corpus_embeddings), "reused": reused}
                                  if corpus_embeddings is not None else None),
            "seconds": round(time.perf_counter() - started, 3)}


def _write_matches(out, fmt, columns, blocks, texts, ids, min_score, n_queries, extra_score,
                   progress):
    """Write the rows of ``blocks`` to ``out`` (complete or not at all); counts."""
    from domain_tune.progress import progress_bar

    from domain_tune.outputs import atomic_file

    out = os.fspath(out)
    written = blank = matched = 0
    with atomic_file(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f, \
                progress_bar(n_queries, "Matching", enabled=progress) as bar:
            writer = (_CsvWriter if fmt == "csv" else _JsonlWriter)(f, columns)
            for block in blocks:
                blank += sum(1 for q in block.queries if not q.strip())
                for row in _rows(block, texts, ids, min_score, extra_score):
                    writer.write(row)
                    written += 1
                    matched += row["rank"] == 1
                bar.update(len(block.queries))
    _warn_blank_queries(blank)
    return {"blank_queries": blank, "matched_queries": int(matched), "rows": written}


def index_search(query_chunks, encode_fn, index, k):
    """:func:`search` against a :class:`~domain_tune.indexing.Index`: blocks of matches."""
    k = min(int(k), len(index))
    for chunk in query_chunks:
        chunk = [str(t) for t in chunk]
        keep = np.array([bool(t.strip()) for t in chunk], dtype=bool)
        idx = np.full((len(chunk), k), -1, dtype=np.int64)
        cos = np.full((len(chunk), k), np.nan, dtype=np.float32)
        if keep.any():
            q = normalize_in_place(np.asarray(encode_fn([t for t, ok in zip(chunk, keep) if ok]),
                                              dtype=np.float32))
            for s in range(0, len(q), QUERY_CHUNK):
                found, scores = index.search(q[s : s + QUERY_CHUNK], k)
                rows = np.flatnonzero(keep)[s : s + QUERY_CHUNK]
                idx[rows], cos[rows] = found, scores
        yield Block(chunk, idx, cos, cos)


def match_index_file(queries_path, index_path, out, *, loader, model_spec, top_k=5,
                     query_column=None, min_score=None, batch_size=256, progress=True,
                     overwrite=False):
    """``match QUERIES --index INDEX_DIR``: :func:`match_files` against a built index
    (``domain-tune index``), whose model fingerprint must be the model's."""
    import time

    from domain_tune.datasets.texts import count_texts, text_chunks
    from domain_tune.embedding import encode
    from domain_tune.indexing import Index
    from domain_tune.outputs import check_out

    started = time.perf_counter()
    fmt = output_format(out)
    check_out(out, overwrite, inputs=(queries_path,))
    _check_k(top_k, min_score)
    queries_path = os.fspath(queries_path)
    q_column = text_column(queries_path, query_column, "--query-column", "queries")
    n_queries = count_texts(queries_path, q_column, what="queries")
    index = Index.load(index_path)
    model = loader()
    index.check_model(model, model_spec)
    chunks = text_chunks(queries_path, q_column, chunk=QUERY_CHUNK, what="queries")
    blocks = index_search(chunks, lambda t: encode(model, t, batch_size=batch_size), index, top_k)
    written = _write_matches(out, fmt, list(COLUMNS), blocks, index.texts, index.ids, min_score,
                             n_queries, False, progress)
    return {"out": os.fspath(out), "format": fmt, "queries": n_queries, **written,
            "corpus": len(index), "top_k": int(top_k), "min_score": min_score,
            "index": {"path": os.fspath(index_path), "kind": index.kind,
                      "precision": index.record["precision"],
                      "search": index.record.get("search")},
            "seconds": round(time.perf_counter() - started, 3)}
