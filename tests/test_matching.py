"""``match``: exact top-k search of a corpus for each query, in memory-bounded blocks."""

import csv
import json
import math

import numpy as np
import pytest

from domain_tune.errors import BadInputError
from domain_tune.matching import CosineScorer, search
from domain_tune.similarity import RowProducts, normalize_in_place, top_k
from tests.cli_helpers import error_line, run

# Hand-made embeddings: compass directions in the plane, so every cosine is known.
COMPASS = {
    "north": (1.0, 0.0), "east": (0.0, 1.0), "northeast": (1.0, 1.0), "south": (-1.0, 0.0),
    "west": (0.0, -1.0),
}
ANGULAR_1 = 1 - math.acos(0.99999) / math.pi  # cosine 1, clipped as everywhere in the project


def compass_model():
    """A Keras model mapping each compass word to its direction (unknown words to (0, 0))."""
    import keras

    vocab = list(COMPASS)
    inputs = keras.Input(shape=(), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=vocab, num_oov_indices=1)(inputs)
    table = np.array([(0.0, 0.0)] + [COMPASS[w] for w in vocab], np.float32)
    emb = keras.layers.Embedding(len(table), 2, weights=[table], trainable=False)(ids)
    return keras.Model(inputs, emb, name="compass")


@pytest.fixture
def compass_keras(tmp_path):
    path = tmp_path / "compass.keras"
    compass_model().save(path)
    return path


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_toy_corpus_exact_ranks_and_scores(tmp_path, compass_keras):
    queries = _write(tmp_path / "q.txt", "north\neast\n")
    corpus = _write(tmp_path / "c.txt", "south\nnortheast\neast\nnorth\n")
    out = tmp_path / "m.csv"
    result = run("match", queries, "--corpus", corpus, "--out", out, "--model", compass_keras,
                 "--top-k", 3, "--json")
    assert result.exit_code == 0, result.output
    rows = _read_csv(out)
    got = [(r["query"], int(r["rank"]), r["corpus_id"], r["corpus_text"], float(r["cosine"]),
            float(r["angular"])) for r in rows]
    assert got == [
        ("north", 1, "4", "north", 1.0, round(ANGULAR_1, 6)),
        ("north", 2, "2", "northeast", 0.707107, 0.75),
        ("north", 3, "3", "east", 0.0, 0.5),
        ("east", 1, "3", "east", 1.0, round(ANGULAR_1, 6)),
        ("east", 2, "2", "northeast", 0.707107, 0.75),
        ("east", 3, "1", "south", 0.0, 0.5),  # ties with north (cosine 0): the earlier entry
    ]
    summary = json.loads(result.stdout)
    assert summary["rows"] == 6 and summary["queries"] == 2 and summary["corpus"] == 4
    plain = run("match", queries, "--corpus", corpus, "--out", tmp_path / "m2.csv", "--model",
                compass_keras, "--top-k", 3)
    assert plain.exit_code == 0 and plain.stdout.startswith("Wrote 6 matches for 2 queries")
    assert summary["matched_queries"] == 2 and summary["corpus_embeddings"] is None


def test_csv_columns_ids_min_score_and_jsonl(tmp_path, compass_keras):
    queries = _write(tmp_path / "q.csv", "id,title\n1,north\n2,west\n3,\n")
    corpus = _write(tmp_path / "c.csv", "uri,label\nU-N,north\nU-S,south\nU-NE,northeast\nU-W,west\n")
    out = tmp_path / "m.jsonl"
    result = run("match", queries, "--corpus", corpus, "--out", out, "--model", compass_keras,
                 "--query-column", "title", "--corpus-column", "label", "--id-column", "uri",
                 "--top-k", 4, "--min-score", 0.5)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["query"], r["rank"], r["corpus_id"], r["cosine"]) for r in rows] == [
        ("north", 1, "U-N", 1.0), ("north", 2, "U-NE", 0.707107), ("west", 1, "U-W", 1.0),
    ]
    assert "1 blank query left without matches" in result.stderr
    # without --id-column, a CSV's ids are row numbers (the header is row 1)
    out2 = tmp_path / "m2.csv"
    result = run("match", queries, "--corpus", corpus, "--out", out2, "--model", compass_keras,
                 "--query-column", "title", "--corpus-column", "label", "-k", 1)
    assert result.exit_code == 0, result.output
    assert [r["corpus_id"] for r in _read_csv(out2)] == ["2", "5"]


def test_top_k_matches_a_full_sort_and_prefers_earlier_ties():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 50)).astype(np.float32)
    scores[:, 7] = scores[:, 3]  # a tie: the earlier index goes first
    idx, vals = top_k(scores, 6)
    for r in range(len(scores)):
        order = np.lexsort((np.arange(50), -scores[r]))[:6]
        assert idx[r].tolist() == order.tolist()
        np.testing.assert_array_equal(vals[r], scores[r, order])
    ties = np.ones((2, 10), np.float32)  # all equal: the first k indices
    assert top_k(ties, 3)[0].tolist() == [[0, 1, 2], [0, 1, 2]]


def test_chunked_search_equals_unchunked():
    rng = np.random.default_rng(1)
    corpus = normalize_in_place(rng.normal(size=(37, 16)).astype(np.float32))
    corpus[20] = corpus[5]  # duplicate entries tie exactly
    queries = rng.normal(size=(101, 16)).astype(np.float32)
    texts = [str(i) for i in range(len(queries))]
    lookup = {t: q for t, q in zip(texts, queries)}

    def encode_fn(batch):
        return np.stack([lookup[t] for t in batch])

    def run_search(chunk, max_cells):
        chunks = (texts[s : s + chunk] for s in range(0, len(texts), chunk))
        blocks = list(search(chunks, encode_fn, corpus, 5, None, None, max_cells))
        return (np.concatenate([b.index for b in blocks]), np.concatenate([b.score for b in blocks]),
                len(blocks))

    whole_idx, whole_score, n_whole = run_search(len(texts), 1 << 24)
    part_idx, part_score, n_part = run_search(13, 37 * 4)  # 4 queries a block
    assert n_whole == 1 and n_part == 7 * 4 + 3  # chunks of 13 queries: blocks of 4, 4, 4, 1
    np.testing.assert_array_equal(part_idx, whole_idx)
    np.testing.assert_allclose(part_score, whole_score, atol=1e-6)
    brute = normalize_in_place(queries.copy()) @ corpus.T
    brute[:, 20] = brute[:, 5]  # equal entries tie exactly (a BLAS may round them apart)
    for r in range(len(queries)):
        assert whole_idx[r].tolist() == np.lexsort((np.arange(37), -brute[r]))[:5].tolist()


def test_equal_corpus_entries_score_bit_equal_whatever_the_block():
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(40, 24)).astype(np.float32)
    rows[[7, 31]] = rows[2]
    products = RowProducts(rows)
    assert products.distinct.shape == (38, 24)
    queries = rng.normal(size=(9, 24)).astype(np.float32)
    for block in (queries[:1], queries[:4], queries):
        scores = products(block)
        np.testing.assert_allclose(scores, block @ rows.T, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(scores[:, 7], scores[:, 2])
        np.testing.assert_array_equal(scores[:, 31], scores[:, 2])
    unique = RowProducts(rows[:7])
    assert unique.columns is None and unique.distinct.shape == (7, 24)


def test_scorer_hook_ranks_and_rows_keep_cosine():
    corpus = normalize_in_place(np.array([[1, 0], [0, 1], [1, 1]], np.float32))

    class Reverse:  # ranks the least similar first; whole rows of scores (no block method)
        name = "reverse"

        def __call__(self, queries, q):
            return -CosineScorer(corpus)(queries, q)

    class TiledReverse(CosineScorer):  # the same, one corpus tile at a time
        name = "reverse"

        def block(self, queries, q):
            tile = super().block(queries, q)
            return lambda columns: -tile(columns)

    for scorer in (Reverse(), TiledReverse(corpus)):
        blocks = list(search([["q"]], lambda t: np.array([[1.0, 0.0]], np.float32), corpus, 3,
                             scorer, max_cells=2))
        assert blocks[0].index.tolist() == [[1, 2, 0]]
        np.testing.assert_allclose(blocks[0].cosine, [[0.0, 0.707107, 1.0]], atol=1e-6)
        np.testing.assert_allclose(blocks[0].score, [[-0.0, -0.707107, -1.0]], atol=1e-6)


def test_corpus_embeddings_cache_is_reused_and_refused_for_another_model(
        tmp_path, compass_keras, tiny_model_dir):
    queries = _write(tmp_path / "q.txt", "north\neast\n")
    corpus = _write(tmp_path / "c.txt", "south\nnortheast\neast\nnorth\n")
    cache = tmp_path / "c.npy"
    result = run("embed", corpus, "--out", cache, "--model", compass_keras)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "c.npy.json").read_text())
    assert record["model"] == str(compass_keras) and record["rows"] == 4
    plain, cached = tmp_path / "plain.csv", tmp_path / "cached.csv"
    assert run("match", queries, "--corpus", corpus, "--out", plain, "-m", compass_keras).exit_code == 0
    result = run("match", queries, "--corpus", corpus, "--out", cached, "-m", compass_keras,
                 "--corpus-embeddings", cache, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["corpus_embeddings"] == {"path": str(cache), "reused": True}
    assert cached.read_text() == plain.read_text()

    refused = tmp_path / "refused.csv"
    result = run("match", queries, "--corpus", corpus, "--out", refused, "-m", tiny_model_dir,
                 "--corpus-embeddings", cache)
    assert result.exit_code == 2
    assert error_line(result) == (
        f"Error: --corpus-embeddings {cache} was made by another model ({compass_keras}), not by "
        f"{tiny_model_dir}; embed the corpus again with this model or delete the file")
    assert not refused.exists()

    other = _write(tmp_path / "other.txt", "south\nnortheast\neast\nwest\n")
    result = run("match", queries, "--corpus", other, "--out", refused, "-m", compass_keras,
                 "--corpus-embeddings", cache)
    assert result.exit_code == 2 and "was made from other texts" in error_line(result)
    (tmp_path / "c.npy.json").unlink()
    result = run("match", queries, "--corpus", corpus, "--out", refused, "-m", compass_keras,
                 "--corpus-embeddings", cache)
    assert result.exit_code == 2 and "the model that made it is unknown" in error_line(result)
    assert not refused.exists()


@pytest.mark.parametrize("tamper, message", [
    (lambda m: np.zeros((4, 3), np.float32), "shape (4, 3) does not match its record (4 x 2)"),
    (lambda m: np.where(np.arange(4)[:, None] == 2, np.nan, m).astype(np.float32),
     "1 row hold NaN or infinite values (first: row 2)"),
])
def test_a_tampered_cache_is_refused(tmp_path, compass_keras, tamper, message):
    queries = _write(tmp_path / "q.txt", "north\n")
    corpus = _write(tmp_path / "c.txt", "south\nnortheast\neast\nnorth\n")
    cache = tmp_path / "c.npy"
    assert run("embed", corpus, "--out", cache, "--model", compass_keras).exit_code == 0
    np.save(cache, tamper(np.load(cache)))  # the record beside it is unchanged
    out = tmp_path / "m.csv"
    result = run("match", queries, "--corpus", corpus, "--out", out, "-m", compass_keras,
                 "--corpus-embeddings", cache)
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert not out.exists()


def test_missing_cache_is_written_for_the_next_run(tmp_path, compass_keras):
    queries = _write(tmp_path / "q.txt", "north\n")
    corpus = _write(tmp_path / "c.txt", "south\nnorth\n")
    cache = tmp_path / "new.npy"
    result = run("match", queries, "--corpus", corpus, "--out", tmp_path / "a.csv",
                 "-m", compass_keras, "--corpus-embeddings", cache, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["corpus_embeddings"]["reused"] is False
    np.testing.assert_allclose(np.load(cache), [[-1, 0], [1, 0]])
    result = run("match", queries, "--corpus", corpus, "--out", tmp_path / "b.csv",
                 "-m", compass_keras, "--corpus-embeddings", cache, "--json")
    assert json.loads(result.stdout)["corpus_embeddings"]["reused"] is True


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/m.txt"], "unknown output format .txt; use .csv or .jsonl"),
    (["--out", "{tmp}/m.csv", "--corpus-column", "nope"], "has no column 'nope'"),
    (["--out", "{tmp}/m.csv", "--id-column", "nope"], "has no column 'nope'"),
    (["--out", "{tmp}/m.csv", "--min-score", "nan"], "--min-score must be a finite number"),
    (["--out", "{tmp}/m.csv", "--min-score", "2"],
     "--min-score 2.0 leaves out every match: a cosine similarity is at most 1"),
    (["--out", "{tmp}/m.csv", "--corpus-embeddings", "{tmp}/x.bin"], "name a .npy file"),
    (["--out", "{tmp}/exists.csv"], "already exists; pass --overwrite"),
    (["--out", "{tmp}/m.csv", "--corpus", "{tmp}/no-id.csv", "--id-column", "uri"],
     "no-id.csv: row 3 has an empty uri"),
])
def test_errors_are_one_line(tmp_path, compass_keras, args, message):
    queries = _write(tmp_path / "q.txt", "north\n")
    corpus = _write(tmp_path / "c.csv", "uri,label\nU-N,north\n")
    _write(tmp_path / "no-id.csv", "uri,label\nU-N,north\n  ,south\n")
    _write(tmp_path / "exists.csv", "keep me")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--corpus-column" not in args:
        args += ["--corpus-column", "label"]
    result = run("match", queries, "--corpus", corpus, "-m", compass_keras, *args)
    assert result.exit_code == 2, result.output
    assert message in error_line(result)
    assert (tmp_path / "exists.csv").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "compass.keras", "exists.csv",
                                                          "no-id.csv", "q.txt"]


def test_multi_column_corpus_needs_a_column(tmp_path, compass_keras):
    queries = _write(tmp_path / "q.txt", "north\n")
    corpus = _write(tmp_path / "c.csv", "uri,label\nU-N,north\n")
    result = run("match", queries, "--corpus", corpus, "-m", compass_keras, "--out", tmp_path / "m.csv")
    assert result.exit_code == 2
    assert error_line(result) == f"Error: corpus {corpus} has 2 columns; choose one with --corpus-column"


def test_top_k_zero_is_refused(tmp_path):
    result = run("match", tmp_path / "q.txt", "--corpus", tmp_path / "c.txt", "--out",
                 tmp_path / "m.csv", "--top-k", 0)
    assert result.exit_code == 2 and "--top-k" in error_line(result)


def test_library_refuses_bad_k():
    from domain_tune.matching import _check_k

    with pytest.raises(BadInputError, match="--top-k must be at least 1"):
        _check_k(0, None)


def test_match_with_a_scorer_factory_adds_its_score_column():
    from domain_tune.matching import match

    seen = {}

    def factory(texts, embeddings):
        seen["texts"] = texts

        class Reverse(CosineScorer):
            name = "reverse"

            def __call__(self, queries, q):
                return -super().__call__(queries, q)

        return Reverse(embeddings)

    frame = match(compass_model(), ["north"], ["south", "northeast", "north"], top_k=2,
                  scorer=factory)
    assert seen["texts"] == ["south", "northeast", "north"]
    assert frame.columns.tolist()[-1] == "score"
    assert frame["corpus_text"].tolist() == ["south", "northeast"]
    assert frame["cosine"].tolist() == [-1.0, 0.707107]


def test_lexical_weight_breaks_a_cosine_tie_by_shared_character_ngrams(tmp_path, compass_keras):
    # "northeast" is equally close (cosine 0.707) to east and north; plain cosine keeps the
    # earlier entry first, the lexical term prefers the entry that shares more of its n-grams
    queries = _write(tmp_path / "q.txt", "northeast\n")
    corpus = _write(tmp_path / "c.txt", "east\nnorth\n")
    plain, hybrid = tmp_path / "plain.csv", tmp_path / "hybrid.csv"
    for out, extra in ((plain, []), (hybrid, ["--lexical-weight", "0.5"])):
        result = run("match", queries, "--corpus", corpus, "--out", out, "--model", compass_keras,
                     "--top-k", 2, *extra)
        assert result.exit_code == 0, result.output
    assert [r["corpus_text"] for r in _read_csv(plain)] == ["east", "north"]
    rows = _read_csv(hybrid)
    assert [r["corpus_text"] for r in rows] == ["north", "east"]
    assert [float(r["cosine"]) for r in rows] == [0.707107, 0.707107]
    scores = [float(r["score"]) for r in rows]
    assert scores[0] > scores[1] > 0.707107  # both share some n-grams, north more


def test_api_match_takes_the_lexical_weight():
    import domain_tune

    frame = domain_tune.match(compass_model(), ["northeast"], ["east", "north"], top_k=1,
                              lexical_weight=0.5)
    assert frame["corpus_text"].tolist() == ["north"] and "score" in frame.columns


def test_api_match_treats_missing_values_of_a_pandas_column_as_blank():
    """An empty cell of a DataFrame column (NaN, None) is blank, as in a file: never the text 'nan'."""
    import pandas as pd

    import domain_tune

    with pytest.warns(UserWarning, match="1 blank corpus text left out"):
        frame = domain_tune.match(compass_model(), pd.Series(["north", None]),
                                  pd.Series(["south", np.nan, "north"]), top_k=3)
    assert frame["query"].tolist() == ["north", "north"]
    assert frame["corpus_text"].tolist() == ["north", "south"]
    assert frame["corpus_id"].tolist() == [3, 1]


def test_descriptions_represent_each_entry_as_label_plus_weighted_description(tmp_path,
                                                                             compass_keras):
    # entry "east" described as "north": normalize((0, 1) + w (1, 0)); "south" has no description
    queries = _write(tmp_path / "q.txt", "north\n")
    corpus = _write(tmp_path / "c.csv", "label,about\neast,north\nsouth,\n")
    out = tmp_path / "m.csv"
    base = ["match", queries, "--corpus", corpus, "--corpus-column", "label", "--model",
            compass_keras, "--top-k", 2, "--out", out, "--overwrite"]
    assert run(*base).exit_code == 0
    assert [float(r["cosine"]) for r in _read_csv(out)] == [0.0, -1.0]
    result = run(*base, "--description-column", "about")  # weight 0.5 by default
    assert result.exit_code == 0, result.output
    rows = _read_csv(out)
    assert [r["corpus_text"] for r in rows] == ["east", "south"]
    assert [float(r["cosine"]) for r in rows] == [round(0.5 / math.sqrt(1.25), 6), -1.0]
    result = run(*base, "--description-column", "about", "--description-weight", 1)
    assert [float(r["cosine"]) for r in _read_csv(out)] == [0.707107, -1.0]

    import domain_tune

    frame = domain_tune.match(compass_model(), ["north"], ["east", "south"], top_k=1,
                              descriptions=["north", None], description_weight=1.0)
    assert frame["cosine"].tolist() == [0.707107]

    warned = run(*base, "--description-weight", 1)
    assert warned.exit_code == 0
    assert "--description-weight needs --description-column; ignored" in warned.stderr
    missing = run(*base, "--description-column", "nope")
    assert missing.exit_code == 2 and "has no column 'nope'" in error_line(missing)
    text_corpus = _write(tmp_path / "c.txt", "east\n")
    not_csv = run("match", queries, "--corpus", text_corpus, "--model", compass_keras,
                  "--out", tmp_path / "n.csv", "--description-column", "about")
    assert not_csv.exit_code == 2 and "is not a CSV" in error_line(not_csv)
    with pytest.raises(BadInputError, match="1 descriptions for 2 corpus entries"):
        domain_tune.match(compass_model(), ["north"], ["east", "south"], descriptions=["north"])
