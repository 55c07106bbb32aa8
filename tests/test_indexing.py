"""``domain-tune index`` and ``match --index``: a persistent index, exact, quantised or faiss."""

import csv
import json
import sys

import numpy as np
import pytest

from domain_tune import indexing
from domain_tune.errors import BadInputError
from domain_tune.similarity import normalize_in_place
from tests.cli_helpers import error_line, run

FINGERPRINT = {"model": "synthetic", "fingerprint": {"texts": [], "embeddings": []}}
WORDS = ["nurse", "chef", "data scientist", "welder", "baker", "pilot", "teacher", "judge",
         "plumber", "actor", "farmer", "dentist", "miner", "tailor", "sailor", "editor"]


def clustered(n, dim=32, clusters=40, seed=0, spread=0.35):
    """Unit vectors around ``clusters`` centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim))
    return normalize_in_place(x.astype(np.float32))


def near(e, n, seed, noise=0.25):
    """Queries near corpus entries (as real queries are), none of them an entry."""
    rng = np.random.default_rng(seed)
    q = e[rng.integers(0, len(e), n)] + noise * rng.normal(size=(n, e.shape[1])) / np.sqrt(e.shape[1])
    return normalize_in_place(q.astype(np.float32))


def exact(queries, corpus, k):
    s = queries @ corpus.T
    return np.lexsort((np.broadcast_to(np.arange(len(corpus)), s.shape), -s), axis=-1)[:, :k]


def corpus_lines(n):
    return [f"{WORDS[i % len(WORDS)]} {i // len(WORDS)}" for i in range(n)]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# --- the library -----------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["float16", "int8", "binary"])
def test_quantised_flat_index_rescored_finds_the_exact_top_1(tmp_path, precision):
    e = clustered(2000, seed=1)
    rec = indexing.build(tmp_path / "ix", e, list(range(2000)), [str(i) for i in range(2000)],
                         FINGERPRINT, precision=precision, target_recall=0.95)
    assert rec["recall"]["reached"] and rec["recall"]["recall_at_10"] >= 0.95
    assert rec["search"]["parameter"] == "rescore"
    assert rec["bytes_per_entry"] == {"float16": 64, "int8": 32, "binary": 4}[precision]
    index = indexing.Index.load(tmp_path / "ix")
    queries = near(e, 200, seed=7)
    found, cos = index.search(queries, 5)
    ref = exact(queries, e, 5)
    assert (found[:, 0] == ref[:, 0]).mean() >= 0.97
    np.testing.assert_allclose(cos, np.einsum("ij,ikj->ik", queries, e[found]), atol=1e-6)
    assert indexing.recall_at_k(found, ref) >= 0.9


def test_flat_index_round_trip_equals_exact_search(tmp_path):
    e = clustered(500, seed=2)
    e[17] = e[3]  # a repeated entry ties exactly: the lower position first
    indexing.build(tmp_path / "ix", e, [f"id{i}" for i in range(500)], ["t"] * 500, FINGERPRINT)
    index = indexing.Index.load(tmp_path / "ix")
    assert index.ids[:2] == ["id0", "id1"] and index.record["recall"]["recall_at_10"] == 1.0
    queries = np.concatenate([e[[3]], near(e, 50, seed=3)])
    found, cos = index.search(queries, 8)
    assert found[0, :2].tolist() == [3, 17] and cos[0, 0] == cos[0, 1]
    ref = exact(queries, e, 8)
    assert (found[1:] == ref[1:]).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivf-pq", "IVF16,SQ8"])
def test_approximate_index_reaches_its_recorded_recall(tmp_path, kind):
    pytest.importorskip("faiss", reason="the [index] extra (faiss) is not installed")
    e = clustered(4000, dim=64, seed=4)
    rec = indexing.build(tmp_path / "ix", e, list(range(4000)), ["t"] * 4000, FINGERPRINT,
                         kind=kind, target_recall=0.9)
    assert rec["factory"] and rec["search"]["parameter"] in ("nprobe", "efSearch")
    assert rec["recall"]["reached"], rec
    # chosen on the lower bound (mean less one standard error), not on the mean itself
    assert 0.9 <= rec["recall"]["lower_bound"] <= rec["recall"]["recall_at_10"]
    assert all(t["lower_bound"] < 0.9 for t in rec["search"]["tried"][:-1])
    index = indexing.Index.load(tmp_path / "ix")
    assert index.faiss_index.ntotal == 4000
    held_out = near(e, 300, seed=11)  # queries the tuning never saw
    found, cos = index.search(held_out, 10)
    assert indexing.recall_at_k(found, exact(held_out, e, 10)) >= rec["recall"]["recall_at_10"] - 0.05
    np.testing.assert_allclose(cos, np.einsum("ij,ikj->ik", held_out, e[found]), atol=1e-5)


def test_add_appends_entries_and_refuses_known_ids(tmp_path):
    e = clustered(300, seed=5)
    indexing.build(tmp_path / "ix", e[:200], list(range(1, 201)), ["a"] * 200, FINGERPRINT)
    index = indexing.Index.load(tmp_path / "ix")
    rec = indexing.add(index, e[200:], None, ["b"] * 100)
    assert rec["count"] == 300
    index = indexing.Index.load(tmp_path / "ix")
    assert index.ids[200] == 201 and index.texts[-1] == "b"
    found, _ = index.search(e[[250]], 1)
    assert found[0, 0] == 250
    with pytest.raises(BadInputError, match="id 5 is already in the index"):
        indexing.add(index, e[:1], [5], ["c"])


def test_faiss_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    with pytest.raises(BadInputError, match=r'pip install -e "\.\[index\]"'):
        indexing.faiss_module()


def test_unknown_kind_and_bad_inputs_are_refused(tmp_path):
    e = clustered(50)
    with pytest.raises(BadInputError, match="unknown index kind 'kmeans'"):
        indexing.build(tmp_path / "a", e, range(50), ["t"] * 50, FINGERPRINT, kind="kmeans")
    with pytest.raises(BadInputError, match="ids are not unique"):
        indexing.build(tmp_path / "b", e, [1] * 50, ["t"] * 50, FINGERPRINT)
    with pytest.raises(BadInputError, match="precision must be one of"):
        indexing.build(tmp_path / "c", e, range(50), ["t"] * 50, FINGERPRINT, precision="int4")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --- the commands ----------------------------------------------------------------------


def test_index_then_match_equals_match_against_the_corpus(tmp_path, tiny_model_dir):
    corpus = _write(tmp_path / "corpus.txt", corpus_lines(120) + ["nurse 0"])  # a repeat: a tie
    queries = _write(tmp_path / "q.txt", ["nurse", "chef 3", "a data scientist", "  ", "pilot 1"])
    result = run("index", corpus, "--out", tmp_path / "ix", "--model", tiny_model_dir, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["count"] == 121 and info["kind"] == "flat"
    assert info["bytes_per_entry"] == 4 * info["dim"]
    for args, out in ((["--index", tmp_path / "ix"], "a.csv"), (["--corpus", corpus], "b.csv")):
        result = run("match", queries, *args, "--out", tmp_path / out, "--model", tiny_model_dir,
                     "--top-k", 4)
        assert result.exit_code == 0, result.output
    a, b = _read_csv(tmp_path / "a.csv"), _read_csv(tmp_path / "b.csv")
    assert [(r["query"], r["rank"], r["corpus_id"], r["corpus_text"]) for r in a] == \
        [(r["query"], r["rank"], r["corpus_id"], r["corpus_text"]) for r in b]
    np.testing.assert_allclose([float(r["cosine"]) for r in a], [float(r["cosine"]) for r in b],
                               atol=2e-6)
    assert len(a) == 16  # the blank query has no matches


def test_index_of_another_model_is_refused(tmp_path, tiny_model_dir, sp_model_path):
    from tests.conftest import make_tiny_encoder

    corpus = _write(tmp_path / "corpus.txt", corpus_lines(30))
    assert run("index", corpus, "--out", tmp_path / "ix", "--model", tiny_model_dir).exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    make_tiny_encoder(sp_model_path, seed=3).save(str(other / "model.keras"))
    queries = _write(tmp_path / "q.txt", ["nurse"])
    result = run("match", queries, "--index", tmp_path / "ix", "--out", tmp_path / "m.csv",
                 "--model", other)
    assert result.exit_code == 2
    assert "was built with another model" in error_line(result)
    assert not (tmp_path / "m.csv").exists()
    result = run("index", queries, "--out", tmp_path / "ix", "--add", "--model", other)
    assert result.exit_code == 2 and "was built with another model" in error_line(result)


def test_index_add_command_and_errors(tmp_path, tiny_model_dir):
    corpus = _write(tmp_path / "corpus.txt", corpus_lines(20))
    more = _write(tmp_path / "more.txt", ["glassblower", "beekeeper"])
    assert run("index", corpus, "--out", tmp_path / "ix", "--model", tiny_model_dir).exit_code == 0
    result = run("index", more, "--out", tmp_path / "ix", "--add", "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    assert "Added 2 entries" in result.stdout and "22 entries" in result.stdout
    queries = _write(tmp_path / "q.txt", ["beekeeper"])
    run("match", queries, "--index", tmp_path / "ix", "--out", tmp_path / "m.csv", "--model",
        tiny_model_dir, "--top-k", 1)
    assert _read_csv(tmp_path / "m.csv")[0]["corpus_id"] == "22"
    cases = [
        (["match", queries, "--out", tmp_path / "x.csv"], "give --corpus or --index"),
        (["match", queries, "--corpus", corpus, "--index", tmp_path / "ix", "--out",
          tmp_path / "x.csv"], "give --corpus or --index"),
        (["match", queries, "--index", tmp_path / "ix", "--lexical-weight", "0.5", "--out",
          tmp_path / "x.csv"], "--lexical-weight applies to a corpus file"),
        (["match", queries, "--index", tmp_path / "nope", "--out", tmp_path / "x.csv"],
         "does not exist"),
        (["match", queries, "--index", tmp_path, "--out", tmp_path / "x.csv"],
         "is not a domain-tune index"),
        (["index", corpus, "--out", tmp_path / "ix"], "already exists"),
        (["index", corpus, "--out", tmp_path / "k", "--kind", "kmeans"], "unknown index kind"),
        (["index", tmp_path / "missing.txt", "--out", tmp_path / "k"], "missing.txt"),
    ]
    for args, message in cases:
        result = run(*args, "--model", tiny_model_dir)
        assert result.exit_code == 2, (args, result.output)
        assert message in error_line(result), (args, result.stderr)
    assert not (tmp_path / "k").exists() and not (tmp_path / "x.csv").exists()


def test_index_kind_without_faiss_names_the_extra(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    corpus = _write(tmp_path / "corpus.txt", corpus_lines(20))
    result = run("index", corpus, "--out", tmp_path / "ix", "--kind", "ivf", "--model",
                 tiny_model_dir)
    assert result.exit_code == 2
    assert '.[index]' in error_line(result)
    assert not (tmp_path / "ix").exists()


@pytest.mark.parametrize("precision,dtype,width", [("float16", np.float16, 8), ("int8", np.int8, 8),
                                                   ("binary", np.uint8, 1)])
def test_embed_writes_quantised_codes_with_their_record(tmp_path, tiny_model_dir, precision,
                                                        dtype, width):
    from domain_tune import api
    from domain_tune.quantization import dequantize

    texts = _write(tmp_path / "t.txt", corpus_lines(40))
    result = run("embed", texts, "--out", tmp_path / "e.npy", "--precision", precision,
                 "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    codes = np.load(tmp_path / "e.npy")
    assert codes.dtype == dtype and codes.shape == (40, width)
    meta = json.loads((tmp_path / "e.npy.json").read_text())
    assert meta["precision"] == precision
    rows = api.encode(str(tiny_model_dir), corpus_lines(40))
    back = dequantize(codes, precision, 8, meta["calibration"])
    if precision == "binary":
        np.testing.assert_array_equal(back, np.where(rows > 0, 1.0, -1.0))
    else:
        step = (np.array(meta["calibration"]["high"]) - meta["calibration"]["low"]) / 255 \
            if precision == "int8" else 1e-3
        assert np.all(np.abs(back - rows) <= np.maximum(step, 1e-3) * 0.51 + 1e-6)
    queries = _write(tmp_path / "q.txt", ["nurse"])
    result = run("match", queries, "--corpus", texts, "--corpus-embeddings", tmp_path / "e.npy",
                 "--out", tmp_path / "m.csv", "--model", tiny_model_dir)
    assert result.exit_code == 2 and f"holds {precision} codes" in error_line(result)
    result = run("embed", texts, "--out", tmp_path / "e.csv", "--precision", precision,
                 "--model", tiny_model_dir)
    assert result.exit_code == 2 and "needs a .npy output" in error_line(result)


def test_recall_lower_bound_is_one_standard_error_below_the_mean():
    per_query = np.array([1.0, 0.9, 0.8, 1.0])
    se = np.std(per_query, ddof=1) / 2
    assert indexing.recall_lower_bound(per_query) == pytest.approx(per_query.mean() - se)
    assert indexing.recall_lower_bound(np.ones(50)) == 1.0
    assert indexing.recall_lower_bound(np.array([0.7])) == pytest.approx(0.7)
