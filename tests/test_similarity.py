"""The exact blocked top-k (domain_tune.similarity) against a brute-force reference."""

import numpy as np
import pytest

from domain_tune.matching import CosineScorer, search
from domain_tune.similarity import (
    Columns,
    RunningTopK,
    angular,
    exact_top_k,
    normalize_in_place,
    top_k,
)


def brute(scores, k, exclude=None):
    """The reference: a stable sort of every row by (-score, index)."""
    scores = scores.astype(np.float64)
    if exclude is not None:
        scores[:, exclude] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores),
                       axis=-1)[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def corpus_with_repeats(rng, n, dim, repeats):
    c = normalize_in_place(rng.normal(size=(n, dim)).astype(np.float32))
    for src, dst in repeats:
        c[dst] = c[src]
    return c


@pytest.mark.parametrize("tile", [1, 3, 7, 64, 1000])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_running_top_k_over_tiles_equals_a_full_sort(tile, k):
    rng = np.random.default_rng(tile * 100 + k)
    scores = rng.integers(0, 6, size=(9, 40)).astype(np.float32)  # many ties
    best = RunningTopK(9, k)
    for s in range(0, 40, tile):
        best.add(scores[:, s : s + tile].copy(), s)
    idx, vals = best.result()
    ref_idx, ref_vals = brute(scores, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(vals, ref_vals)


@pytest.mark.parametrize("tile", [2, 5, 16, 100])
def test_exact_top_k_with_repeats_and_exclusions(tile):
    rng = np.random.default_rng(tile)
    c = corpus_with_repeats(rng, 60, 8, [(3, 17), (3, 44), (10, 11), (20, 59)])
    exclude = np.zeros(60, bool)
    exclude[[11, 30, 44]] = True  # a copy, a plain entry, a second copy
    q = normalize_in_place(rng.normal(size=(13, 8)).astype(np.float32))
    q[0] = c[3]  # a query equal to a repeated entry: three-way tie at the top, one excluded
    columns = Columns(c, exclude)
    assert columns.allowed == 57 and columns.size < 57
    idx, vals = exact_top_k(lambda cols: q @ c[cols].T, columns, len(q), 6, tile)
    ref = q.astype(np.float64) @ c.T.astype(np.float64)
    ref_idx, _ = brute(ref, 6, exclude)
    # equal entries tie exactly; elsewhere the float32 product may round, so compare ranks
    # where the reference gap is clear of float32 rounding
    assert idx[0, :2].tolist() == [3, 17]
    for r in range(len(q)):
        np.testing.assert_allclose(vals[r], ref[r, idx[r]], atol=1e-6)
        assert not exclude[idx[r]].any()
        gaps = np.diff(np.sort(ref[r][~exclude])[::-1][:7])
        if np.all(np.abs(gaps) > 1e-5):
            assert idx[r].tolist() == ref_idx[r].tolist()
    np.testing.assert_array_equal(vals[:, :-1] >= vals[:, 1:], True)


def test_fewer_distinct_entries_than_k_still_fill_every_place():
    c = np.repeat(np.eye(3, dtype=np.float32), [4, 1, 2], axis=0)  # 7 rows, 3 distinct
    columns = Columns(c)
    q = np.array([[1, 0, 0], [0, 0, 1]], np.float32)
    idx, vals = exact_top_k(lambda cols: q @ c[cols].T, columns, 2, 6, tile=2)
    assert idx.tolist() == [[0, 1, 2, 3, 4, 5], [5, 6, 0, 1, 2, 3]]
    np.testing.assert_array_equal(vals, [[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0]])


def test_top_k_sorts_and_keeps_lower_indices_among_equals():
    scores = np.array([[0.5, 0.75, 0.5, 0.75, 0.125]], np.float32)
    idx, vals = top_k(scores, 3)
    assert idx.tolist() == [[1, 3, 0]] and vals.tolist() == [[0.75, 0.75, 0.5]]


@pytest.mark.parametrize("max_cells", [1, 50, 600, 1 << 24])
def test_search_equals_the_brute_force_ranking_whatever_the_blocking(max_cells):
    rng = np.random.default_rng(max_cells % 97)
    c = corpus_with_repeats(rng, 80, 12, [(1, 2), (1, 79), (40, 41)])
    exclude = np.zeros(80, bool)
    exclude[[5, 41]] = True
    queries = rng.normal(size=(45, 12)).astype(np.float32)
    texts = [str(i) for i in range(45)]
    texts[7] = "  "  # a blank query
    lookup = dict(zip(texts, queries))
    blocks = list(search([texts[:20], texts[20:]], lambda t: np.stack([lookup[x] for x in t]), c,
                         4, None, exclude, max_cells))
    index = np.concatenate([b.index for b in blocks])
    score = np.concatenate([b.score for b in blocks])
    assert index[7].tolist() == [-1] * 4
    ref = normalize_in_place(queries.copy()) @ c.T
    ref[:, [2, 79]] = ref[:, [1]]  # equal entries tie exactly
    ref_idx, _ = brute(ref, 4, exclude)
    live = [r for r in range(45) if r != 7]
    for r in live:
        np.testing.assert_allclose(score[r], ref[r, index[r]], atol=1e-6)
    agree = np.mean([index[r].tolist() == ref_idx[r].tolist() for r in live])
    assert agree == 1.0


def test_blocked_search_equals_whole_rows_scoring():
    """The tiled cosine path and a scorer answering whole rows give the same matches."""
    rng = np.random.default_rng(3)
    c = corpus_with_repeats(rng, 300, 16, [(0, 299), (5, 150)])
    queries = rng.normal(size=(70, 16)).astype(np.float32)
    texts = [str(i) for i in range(70)]
    lookup = dict(zip(texts, queries))

    class WholeRows:
        name = "cosine"

        def __call__(self, _, q):
            return CosineScorer(c)(None, q)

    runs = []
    for scorer, cells in ((None, 1 << 24), (None, 64), (WholeRows(), 1 << 24)):
        blocks = search([texts], lambda t: np.stack([lookup[x] for x in t]), c, 7, scorer, None,
                        cells)
        runs.append(np.concatenate([b.index for b in blocks]))
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_angular_of_identical_and_orthogonal():
    np.testing.assert_allclose(angular(np.array([1.0, 0.0, -1.0])),
                               [1 - np.arccos(0.99999) / np.pi, 0.5, np.arccos(0.99999) / np.pi])
