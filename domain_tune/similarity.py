"""Similarity arithmetic shared by training, evaluation and search: angular similarity,
unit rows, and an exact top-k of query blocks against corpus tiles.

Nothing here knows about models or files.  The exact search scores a block of
queries against one tile of the corpus at a time and keeps a running top-k, so
its memory is one tile of scores however large the corpus, and every product
is a matrix product (blocks of :data:`QUERY_BLOCK` queries against tiles of
:data:`CORPUS_TILE` entries: ``512 x 32,768`` similarities, 64 MB of float32).

Ties are settled in favour of the lower corpus index, whatever the blocking:
equal corpus rows are scored once (:class:`Columns`), since a BLAS may round
the products of two equal rows apart by their place in the matrix.
"""

from typing import Callable, Optional, Sequence

import numpy as np

CLIP = 0.99999  # cosines are clipped to +-CLIP before arccos (a finite gradient at +-1)
QUERY_BLOCK = 512  # queries scored at once
CORPUS_TILE = 32768  # corpus entries scored at once
_NONE = np.iinfo(np.int64).max  # the index of an empty slot of a running top-k


def angular(cos):
    """``1 - arccos(clip(cos, -0.99999, 0.99999)) / pi``: 1 for identical, 0.5 for orthogonal."""
    return 1.0 - np.arccos(np.clip(cos, -CLIP, CLIP)) / np.pi


def normalize_rows(x) -> np.ndarray:
    """Rows scaled to unit length, as a new float32 array (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def normalize_in_place(x: np.ndarray) -> np.ndarray:
    """Scale the rows of a float32 array to unit length without a copy (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    x /= norms
    return x


class RowProducts:
    """``q @ rows.T`` for many query blocks ``q``, equal rows getting bit-equal products.

    A BLAS may round the products of two equal rows differently (by their place in
    the matrix, or by the number of query rows: OpenBLAS on an AVX2-only host does),
    which breaks their tie by a last bit.  Each distinct row is multiplied once and
    its column copied to every place the row occurs; rows without repeats are
    multiplied as they are.
    """

    def __init__(self, rows):
        first = {}
        where = np.fromiter((first.setdefault(r.tobytes(), i) for i, r in enumerate(rows)),
                            np.int64, len(rows))
        if len(first) == len(rows):
            self.distinct, self.columns = rows, None
        else:
            kept = np.unique(where)  # the first place of each distinct row, in order
            self.distinct, self.columns = rows[kept], np.searchsorted(kept, where)

    def __call__(self, q):
        products = q @ self.distinct.T
        return products if self.columns is None else products[:, self.columns]


def _tile_top_k(scores: np.ndarray, k: int):
    """Indices and values of the ``k`` best of each row (unordered); among equal values
    at the k-th place the lower indices are kept.  No negated copy: ``argpartition``
    selects the last ``k`` places."""
    n, w = scores.shape
    if k >= w:
        idx = np.broadcast_to(np.arange(w), (n, w)).copy()
        return idx, scores.copy()
    idx = np.argpartition(scores, w - k, axis=1)[:, w - k:]
    vals = np.take_along_axis(scores, idx, axis=1)
    kth = vals.min(axis=1)
    ties = np.flatnonzero(np.count_nonzero(scores >= kth[:, None], axis=1) > k)
    for r in ties:  # more candidates than places: keep the lowest indices among equals
        cand = np.flatnonzero(scores[r] >= kth[r])
        idx[r] = cand[np.lexsort((cand, -scores[r, cand]))[:k]]
        vals[r] = scores[r, idx[r]]
    return idx, vals


def top_k(scores: np.ndarray, k: int):
    """Indices and values of the ``k`` best scores of each row, best first.

    Exact: ties are settled in favour of the lower index.
    """
    k = min(k, scores.shape[1])
    idx, vals = _tile_top_k(scores, k)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def _first_k(rows, index, score, n, k):
    """The ``k`` best (``score`` high, then ``index`` low) entries of each of ``n`` rows,
    from flat candidate lists in which every row has at least ``k`` entries."""
    order = np.lexsort((index, -score, rows))
    starts = np.zeros(n, np.int64)
    np.cumsum(np.bincount(rows, minlength=n)[:-1], out=starts[1:])
    take = order[(starts[:, None] + np.arange(k)).ravel()]
    return index[take].reshape(n, k), score[take].reshape(n, k)


class RunningTopK:
    """The ``k`` best scores of each of ``n`` rows over column tiles seen in increasing order.

    Once every row holds ``k`` entries, a tile contributes only its scores above
    each row's current k-th (an equal one would lose its tie to an earlier
    index), found with one comparison; a tile with many of them, like the
    first, goes through :func:`_tile_top_k`.
    """

    def __init__(self, n: int, k: int):
        self.n, self.k = n, k
        self.index = np.full((n, k), _NONE, np.int64)
        self.score = np.full((n, k), -np.inf, np.float32)
        self.full = False

    def add(self, scores: np.ndarray, offset: int = 0):
        """Merge a ``(n, width)`` tile whose column ``j`` is entry ``offset + j`` (every
        offset above the entries seen so far)."""
        n, k = self.n, self.k
        if self.full:
            above = scores > self.score[:, -1:]
            if np.count_nonzero(above) <= n * k:
                rows, cols = np.nonzero(above)
                self._merge(rows, cols, scores[rows, cols], offset)
                return
        idx, vals = _tile_top_k(scores, k)
        self._merge(np.repeat(np.arange(n), idx.shape[1]), idx.ravel(), vals.ravel(), offset)

    def _merge(self, rows, cols, vals, offset):
        if not len(rows):
            return
        index = cols + offset
        everything = (np.concatenate([np.repeat(np.arange(self.n), self.k), rows]),
                      np.concatenate([self.index.ravel(), index.astype(np.int64)]),
                      np.concatenate([self.score.ravel(), vals.astype(np.float32)]))
        self.index, self.score = _first_k(*everything, self.n, self.k)
        self.full = self.full or bool((self.index[:, -1] != _NONE).all())

    def result(self):
        """``(index, score)``, ``(n, k)`` each, best first."""
        return self.index, self.score


def _row_hashes(rows: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """A 64-bit hash of each row's bytes (equal rows, equal hashes), in chunks of rows."""
    flat = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), -1)
    pad = (-flat.shape[1]) % 8
    mult = (np.arange(1, (flat.shape[1] + pad) // 8 + 1, dtype=np.uint64)
            * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    out = np.empty(len(rows), np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, len(rows), chunk):
            part = flat[s : s + chunk]
            if pad:
                part = np.pad(part, ((0, 0), (0, pad)))
            words = np.ascontiguousarray(part).view(np.uint64)
            out[s : s + chunk] = (words * mult).sum(axis=1) ^ (words[:, 0] >> np.uint64(7))
    return out


def first_occurrences(rows: np.ndarray, positions: np.ndarray, keys: Optional[Sequence] = None):
    """For each of ``positions`` (increasing), the first of them holding an equal row (and an
    equal key): itself when it has no earlier copy.  Rows are hashed; only rows whose
    hashes collide are compared byte by byte."""
    where = np.array(positions, dtype=np.int64)
    if len(where) < 2:
        return where
    hashes = _row_hashes(rows)[where]
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse] > 1)  # rows that may have a copy
    first = {}
    for i in shared:
        p = where[i]
        key = (hashes[i], rows[p].tobytes(), None if keys is None else keys[p])
        where[i] = first.setdefault(key, p)
    return where


class Columns:
    """The corpus entries a search scores: every allowed one, or the first of each
    group of equal ones (rows equal, and ``keys`` equal when given), whose copies
    join the matches afterwards (:meth:`expand`).

    ``exclude`` marks entries never returned.  Without repeats, the tiles are
    slices of the corpus (no copy); with repeats, index arrays of the first
    occurrences (one tile gathered at a time).
    """

    def __init__(self, rows: np.ndarray, exclude: Optional[np.ndarray] = None,
                 keys: Optional[Sequence] = None):
        n = len(rows)
        self.exclude = exclude if exclude is not None and exclude.any() else None
        allowed = (np.arange(n) if self.exclude is None else np.flatnonzero(~self.exclude))
        where = first_occurrences(rows, allowed, keys)
        self.allowed = len(allowed)
        if (where == allowed).all():  # no repeats: tiles are slices, excluded entries -inf
            self.kept = None
            self.size = n
            return
        self.exclude = None  # the kept entries are all allowed
        self.kept = np.unique(where)
        self.size = len(self.kept)
        order = np.lexsort((allowed, where))  # copies grouped by first occurrence, in order
        self.copies = allowed[order]
        self.starts = np.searchsorted(where[order], self.kept)
        self.counts = np.diff(np.append(self.starts, len(order)))

    def tiles(self, tile: int):
        """``(columns, offset)`` per tile: the corpus rows to score (a slice, or an index
        array of first occurrences) and the searched position of its first column."""
        for s in range(0, self.size, tile):
            e = min(s + tile, self.size)
            yield (slice(s, e) if self.kept is None else self.kept[s:e]), s

    def mask(self, scores: np.ndarray, columns) -> np.ndarray:
        """``scores`` of a tile with excluded entries at -inf."""
        if self.exclude is not None:
            scores[:, self.exclude[columns]] = -np.inf
        return scores

    def expand(self, index: np.ndarray, score: np.ndarray, k: int):
        """The ``k`` best corpus rows from the best searched entries ``index`` (positions
        among the kept ones) and their scores: each entry stands for its copies."""
        if self.kept is None:
            return index[:, :k], score[:, :k]
        n = len(index)
        take = np.minimum(self.counts[index], k)  # (n, m) copies of each entry that may place
        total = take.sum(axis=1)
        rows = np.repeat(np.arange(n), total)
        flat_entry = np.repeat(index.ravel(), take.ravel())
        flat_score = np.repeat(score.ravel(), take.ravel())
        within = np.arange(len(flat_entry)) - np.repeat(np.cumsum(take.ravel()) - take.ravel(),
                                                         take.ravel())
        position = self.copies[self.starts[flat_entry] + within]
        return _first_k(rows, position, flat_score, n, k)


def exact_top_k(tile_scores: Callable, columns: Columns, n: int, k: int,
                tile: int = CORPUS_TILE):
    """The ``k`` best corpus rows of ``n`` queries, best first, ties to the lower row.

    ``tile_scores(cols)`` returns the ``(n, len(cols))`` float32 scores of the
    queries against corpus rows ``cols`` (a slice or an index array).  ``k``
    must not exceed ``columns.allowed``.
    """
    searched = min(k, columns.size)
    best = RunningTopK(n, searched)
    for cols, offset in columns.tiles(tile):
        best.add(columns.mask(np.asarray(tile_scores(cols), dtype=np.float32), cols), offset)
    return columns.expand(*best.result(), k)
