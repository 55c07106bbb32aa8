"""A persistent corpus index: embeddings (or compact codes), ids, texts and the model's
fingerprint in one directory, searched exactly or approximately.

``domain-tune index CORPUS --out INDEX_DIR`` writes::

    INDEX_DIR/index.json       what it is: kind, precision, model fingerprint, recall, ...
    INDEX_DIR/entries.jsonl    one {"id": ..., "text": ...} per entry, in index order
    INDEX_DIR/embeddings.npy   unit-length float32 rows (memory-mapped; exact search, rescoring)
    INDEX_DIR/codes.npy        float16 / int8 / binary codes (kind flat, precision not float32)
    INDEX_DIR/faiss.index      a faiss index (approximate kinds)

Kinds: ``flat`` (the default) is exact search in numpy, the same top-k as
``match --corpus`` (ties included); with ``--precision float16 / int8 /
binary`` it scans the codes and rescores the best ``rescore x k``
candidates with the float32 rows.  ``ivf``, ``ivf-pq``, ``ivf-sq8``, ``hnsw``
or any faiss ``index_factory`` string (``IVF4096,PQ64``) build a faiss index
(the ``[index]`` extra) whose search parameter (``nprobe``, ``efSearch``; the
rescoring depth for codes) is the smallest whose recall@k against exact
search, measured on held-out queries or a sample of the corpus itself, is at
least ``target_recall`` plus one standard error of that estimate (so that
other queries reach the target too), and recorded.  Every reported cosine is the float32 one.
"""

import datetime
import json
import math
import os
from typing import List, Optional, Sequence

import numpy as np

from domain_tune.errors import BadInputError
from domain_tune.quantization import (CodeScorer, bytes_per_entry, check_precision,
                                      quantize)
from domain_tune.similarity import Columns, exact_top_k, normalize_in_place

FORMAT = "domain-tune index"
VERSION = 1
KINDS = ("flat", "ivf", "ivf-pq", "ivf-sq8", "hnsw")
DEFAULT_TARGET_RECALL = 0.95
RECALL_K = 10
RECALL_SAMPLE = 1000
RESCORE_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
EF_SEARCHES = (16, 32, 64, 128, 256, 512, 1024, 2048)
EXTRA = 'faiss is not installed; install the index extra: pip install -e ".[index]"'


def faiss_module():
    """The faiss module, or a :class:`BadInputError` naming the ``[index]`` extra."""
    try:
        import faiss
    except ImportError:
        raise BadInputError(f"an approximate index needs faiss; {EXTRA.split('; ')[1]}") from None
    return faiss


def factory_string(kind: str, n: int, dim: int) -> Optional[str]:
    """The faiss ``index_factory`` description of ``kind`` for ``n`` entries (None for flat)."""
    if kind == "flat":
        return None
    lists = max(1, min(2 ** round(math.log2(max(1.0, math.sqrt(n)))), n // 39 or 1))
    shorthand = {"ivf": f"IVF{lists},Flat", "ivf-pq": f"IVF{lists},PQ{max(1, dim // 8)}x8",
                 "ivf-sq8": f"IVF{lists},SQ8", "hnsw": "HNSW32,Flat"}
    if kind in shorthand:
        return shorthand[kind]
    if "," in kind or kind[:1].isupper():
        return kind
    raise BadInputError(f"unknown index kind {kind!r}: use {', '.join(KINDS)} or a faiss "
                        "index_factory string such as 'IVF1024,PQ64'")


def _parameter(factory: Optional[str]):
    """The search parameter of a faiss kind and the values tried, smallest first."""
    if factory is None:
        return None, ()
    if factory.startswith("IVF") or ",IVF" in factory:
        return "nprobe", NPROBES
    if "HNSW" in factory:
        return "efSearch", EF_SEARCHES
    return None, ()


def _exact(queries: np.ndarray, embeddings: np.ndarray, k: int, columns=None):
    columns = columns or Columns(embeddings)
    k = min(k, columns.allowed)
    return exact_top_k(lambda rows: queries @ embeddings[rows].T, columns, len(queries), k)


def _rescore(queries, embeddings, candidates, k):
    """The ``k`` best of ``candidates`` (``(n, m)`` positions, -1 for none) by float32 cosine,
    ties to the lower position."""
    n, m = candidates.shape
    safe = np.where(candidates < 0, 0, candidates)
    cos = np.einsum("ij,ikj->ik", queries, np.asarray(embeddings[safe.ravel()]).reshape(n, m, -1))
    cos = np.where(candidates < 0, -np.inf, cos).astype(np.float32)
    big = np.where(candidates < 0, np.iinfo(np.int64).max, candidates)
    order = np.lexsort((big, -cos), axis=-1)[:, :k]
    idx, vals = np.take_along_axis(candidates, order, 1), np.take_along_axis(cos, order, 1)
    return idx, vals


def recall_per_query(found: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Each row's share of its exact top-k found (order ignored)."""
    k = exact.shape[1]
    return np.array([len(set(f[f >= 0]) & set(e)) / k for f, e in zip(found, exact)], dtype=np.float64)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each row's exact top-k found (order ignored)."""
    return float(np.mean(recall_per_query(found, exact)))


def recall_lower_bound(per_query: np.ndarray) -> float:
    """The mean recall less one standard error of that mean: the smallest search parameter
    whose *estimate* reaches the target is, on other queries, below it about half of the
    time (the tuning queries are a sample), so tuning asks this bound to reach it."""
    n = len(per_query)
    if n < 2:
        return float(np.mean(per_query)) if n else 0.0
    return float(np.mean(per_query) - np.std(per_query, ddof=1) / np.sqrt(n))


class Index:
    """An index directory, loaded (``Index.load(path)``) or just built."""

    def __init__(self, path, record, ids, texts, embeddings, codes=None, faiss_index=None):
        self.path, self.record, self.ids, self.texts = path, record, ids, texts
        self.embeddings, self.codes, self.faiss_index = embeddings, codes, faiss_index
        self._columns = None

    # --- reading ------------------------------------------------------------------

    @classmethod
    def load(cls, path, option="--index"):
        path = os.fspath(path)
        record_path = os.path.join(path, "index.json")
        if not os.path.isdir(path):
            raise BadInputError(f"{option} {path} does not exist or is not a directory")
        if not os.path.isfile(record_path):
            raise BadInputError(f"{option} {path} is not a domain-tune index (no index.json); "
                                "build one with domain-tune index")
        try:
            with open(record_path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError) as e:
            raise BadInputError(f"{option} {path}: cannot read index.json ({e})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise BadInputError(f"{option} {path}: index.json is not a domain-tune index record")
        if record.get("version") != VERSION:
            raise BadInputError(f"{option} {path}: index version {record.get('version')} is not "
                                f"supported (this domain-tune reads version {VERSION})")
        ids, texts = [], []
        try:
            with open(os.path.join(path, "entries.jsonl"), encoding="utf-8") as f:
                for line in f:
                    entry = json.loads(line)
                    ids.append(entry["id"])
                    texts.append(entry["text"])
            embeddings = np.load(os.path.join(path, "embeddings.npy"), mmap_mode="r")
            codes = None
            if record["kind"] == "flat" and record["precision"] != "float32":
                codes = np.load(os.path.join(path, "codes.npy"))
            elif record["kind"] == "flat":
                embeddings = np.asarray(np.load(os.path.join(path, "embeddings.npy")))
        except (OSError, ValueError, KeyError) as e:
            raise BadInputError(f"{option} {path}: damaged index ({e}); build it again") from None
        if embeddings.shape != (record["count"], record["dim"]) or len(ids) != record["count"]:
            raise BadInputError(f"{option} {path}: damaged index (it holds {len(ids):,} entries "
                                f"and {embeddings.shape[0]:,} rows, its record "
                                f"{record['count']:,}); build it again")
        faiss_index = None
        if record.get("factory"):
            faiss = faiss_module()
            faiss_index = faiss.read_index(os.path.join(path, "faiss.index"))
        index = cls(path, record, ids, texts, embeddings, codes, faiss_index)
        index._set_parameter(record.get("search", {}).get("value"))
        return index

    def check_model(self, model, model_spec="this model", option="--index"):
        """Refuse a model that does not reproduce the fingerprint the index was built with."""
        from domain_tune.embedding_cache import same_model

        if not same_model(self.record, model):
            raise BadInputError(f"{option} {self.path} was built with another model "
                                f"({self.record.get('model')}), not {model_spec}; build the "
                                "index again with this model")

    @property
    def kind(self):
        return self.record["kind"]

    def __len__(self):
        return len(self.ids)

    # --- searching ----------------------------------------------------------------

    def _set_parameter(self, value):
        name = self.record.get("search", {}).get("parameter")
        if self.faiss_index is None or name is None or value is None:
            return
        faiss = faiss_module()
        faiss.ParameterSpace().set_index_parameter(self.faiss_index, name, int(value))

    def _depth(self, k):
        """Candidates to fetch for ``k`` matches: never fewer than at tuning (recall@10)."""
        search = self.record.get("search", {})
        tuned = max(k, int((self.record.get("recall") or {}).get("k") or RECALL_K))
        if search.get("parameter") == "rescore":
            return int(search["value"]) * tuned
        if self.record.get("rescore_candidates"):
            return int(search.get("rescore") or RESCORE_DEPTHS[2]) * tuned
        return k

    def search(self, queries: np.ndarray, k: int, exclude_self: Optional[np.ndarray] = None):
        """``(positions, cosines)`` of the ``k`` best entries of each unit-length query row,
        best first (-1 / NaN where fewer entries exist)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(int(k), len(self))
        if self.kind == "flat" and self.codes is None:
            if self._columns is None:
                self._columns = Columns(self.embeddings)
            return _exact(q, self.embeddings, k, self._columns)
        depth = min(len(self), self._depth(k))
        if self.faiss_index is not None:
            _, candidates = self.faiss_index.search(q, depth)
        else:
            scorer = CodeScorer(self.codes, self.record["precision"], self.record["dim"],
                                self.record.get("calibration"))
            if self._columns is None:
                self._columns = Columns(self.codes)
            candidates, _ = exact_top_k(scorer.block(None, q), self._columns, len(q), depth)
        return _rescore(q, self.embeddings, candidates.astype(np.int64), k)

    def measure_recall(self, queries: np.ndarray, k: int = RECALL_K, self_rows=None):
        """recall@k of this index's search against exact float32 search for ``queries``;
        ``self_rows`` (the queries' own positions, for a sample of the corpus) are left
        out of both lists, so an entry finding itself does not count."""
        return recall_at_k(*self._found_and_exact(queries, k, self_rows,
                                                  self._exact_for(queries, k, self_rows)))

    def _exact_for(self, queries, k, self_rows):
        extra = 0 if self_rows is None else 1
        return _exact(queries, np.asarray(self.embeddings), k + extra)[0]

    def _found_and_exact(self, queries, k, self_rows, exact):
        extra = 0 if self_rows is None else 1
        found = self.search(queries, k + extra)[0]
        if self_rows is None:
            return found, exact
        return _without(found, self_rows, k), _without(exact, self_rows, k)

    def tune(self, queries: np.ndarray, target: float, k: int = RECALL_K, self_rows=None):
        """Choose the smallest search parameter reaching ``target`` recall@k; records it."""
        name, values = _parameter(self.record.get("factory"))
        if self.kind == "flat" and self.codes is not None:
            name, values = "rescore", RESCORE_DEPTHS
        if name is None:  # exact
            recall = bound = 1.0
            self.record["search"] = {"parameter": None, "value": None}
        else:
            exact = self._exact_for(queries, k, self_rows)
            tried = []

            def measure(value, depth=None):
                self.record["search"] = {"parameter": name, "value": int(value)}
                if depth is not None:
                    self.record["search"]["rescore"] = int(depth)
                self._set_parameter(value)
                per_query = recall_per_query(*self._found_and_exact(queries, k, self_rows, exact))
                bound = recall_lower_bound(per_query)
                tried.append({**self.record["search"], "recall": round(float(per_query.mean()), 4),
                              "lower_bound": round(bound, 4)})
                return float(per_query.mean()), bound

            depth = RESCORE_DEPTHS[2] if self.record.get("rescore_candidates") else None
            last = -1.0
            for value in values:  # the search parameter, until the target or a plateau
                recall, bound = measure(value, depth)
                if bound >= target or (name == "nprobe" and value >= self.faiss_index.nlist):
                    break
                if depth is not None and recall - last < 0.002:  # codes limit it: rescore deeper
                    break
                last = recall
            if depth is not None and bound < target:
                for depth in RESCORE_DEPTHS[3:]:
                    recall, bound = measure(value, depth)
                    if bound >= target:
                        break
            chosen = tried[-1]
            self.record["search"] = {k_: v for k_, v in chosen.items()
                                     if k_ not in ("recall", "lower_bound")}
            self._set_parameter(chosen["value"])
            self.record["search"]["tried"] = [{k_: v for k_, v in t.items() if k_ != "parameter"}
                                              for t in tried]
        self.record["recall"] = {"target": target, f"recall_at_{k}": round(recall, 4), "k": k,
                                 "queries": int(len(queries)), "reached": bound >= target,
                                 "lower_bound": round(bound, 4)}
        return recall


def _without(found, rows, k):
    """Each row of ``found`` without the entry ``rows[i]``, cut to ``k``."""
    out = np.full((len(found), k), -1, dtype=np.int64)
    for i, (f, r) in enumerate(zip(found, rows)):
        kept = f[f != r][:k]
        out[i, : len(kept)] = kept
    return out


# --- building ---------------------------------------------------------------------


def _write_entries(path, ids, texts):
    with open(path, "w", encoding="utf-8") as f:
        for i, t in zip(ids, texts):
            f.write(json.dumps({"id": i, "text": t}, ensure_ascii=False, default=str))
            f.write("\n")


def _json_id(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    return value if isinstance(value, (int, str)) else str(value)


def _sample_queries(embeddings, n, seed):
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(embeddings), size=min(n, len(embeddings)), replace=False))
    return np.ascontiguousarray(embeddings[rows]), rows


def _train_faiss(factory, embeddings, seed):
    faiss = faiss_module()
    index = faiss.index_factory(embeddings.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        lists = getattr(faiss.extract_index_ivf(index), "nlist", 1) if "IVF" in factory else 1
        need = max(lists * 64, 10000)
        rng = np.random.default_rng(seed)
        rows = (np.arange(len(embeddings)) if len(embeddings) <= need
                else np.sort(rng.choice(len(embeddings), size=need, replace=False)))
        train = np.ascontiguousarray(embeddings[rows])
        if "IVF" in factory and len(train) < lists:
            raise BadInputError(f"index kind {factory} needs at least {lists} entries to train "
                                f"(the corpus has {len(embeddings):,}); use fewer lists or --kind "
                                "flat")
        index.train(train)
    for s in range(0, len(embeddings), 65536):
        index.add(np.ascontiguousarray(embeddings[s : s + 65536]))
    return index


def build(out, embeddings: np.ndarray, ids: Sequence, texts: Sequence[str], fingerprint: dict,
          *, kind: str = "flat", precision: str = "float32",
          target_recall: float = DEFAULT_TARGET_RECALL, recall_queries: Optional[np.ndarray] = None,
          recall_sample: int = RECALL_SAMPLE, seed: int = 0, overwrite: bool = False,
          source: Optional[dict] = None, calibration: Optional[dict] = None) -> dict:
    """Write an index of unit-length float32 ``embeddings`` (one per ``ids`` / ``texts``) to
    ``out``; ``fingerprint`` is ``{"model", "fingerprint"}`` as the embedding cache records
    them.  Returns the record written (``index.json``)."""
    import time

    from domain_tune.outputs import atomic_directory

    started = time.perf_counter()
    check_precision(precision)
    if not (0 < float(target_recall) <= 1):
        raise BadInputError(f"target_recall must be in (0, 1] (got {target_recall})")
    e = normalize_in_place(np.array(embeddings, dtype=np.float32))
    n, dim = e.shape
    if n == 0:
        raise BadInputError("the corpus is empty")
    factory = factory_string(kind, n, dim)
    if factory is not None and precision != "float32":
        raise BadInputError(f"precision {precision} is for kind flat; an approximate kind sets "
                            "its own codes (ivf-pq, ivf-sq8, or a factory string such as "
                            "'IVF1024,SQ8')")
    ids = [_json_id(i) for i in ids]
    if len(set(map(str, ids))) != len(ids):
        raise BadInputError("the corpus ids are not unique; choose a unique id column")
    codes = None
    if precision != "float32":
        codes, calibration = quantize(e, precision, calibration)
    faiss_index = _train_faiss(factory, e, seed) if factory else None
    record = {"format": FORMAT, "version": VERSION, "kind": kind, "factory": factory,
              "precision": precision, "count": n, "dim": dim, "metric": "cosine",
              **fingerprint, "calibration": calibration,
              "bytes_per_entry": (faiss_index_bytes(faiss_index, n) if faiss_index is not None
                                  else bytes_per_entry(precision, dim)),
              "rescore_candidates": factory is not None and ("PQ" in factory or "SQ" in factory),
              "source": source or {}, "seed": seed,
              "built": datetime.datetime.now().isoformat(timespec="seconds")}
    index = Index(out, record, ids, list(texts), e, codes, faiss_index)
    if recall_queries is None:  # a sample of the corpus, each entry's own match left out
        queries, rows = _sample_queries(e, recall_sample, seed)
        record["recall_queries"] = "corpus sample (each entry's own match left out)"
    else:
        queries, rows = normalize_in_place(np.array(recall_queries, dtype=np.float32)), None
        record["recall_queries"] = "given queries"
    index.tune(queries, float(target_recall), min(RECALL_K, n - (rows is not None)) or 1, rows)
    record["build_seconds"] = round(time.perf_counter() - started, 2)

    def write(tmp):
        np.save(os.path.join(tmp, "embeddings.npy"), e)
        if codes is not None:
            np.save(os.path.join(tmp, "codes.npy"), codes)
        if faiss_index is not None:
            faiss_module().write_index(faiss_index, os.path.join(tmp, "faiss.index"))
        _write_entries(os.path.join(tmp, "entries.jsonl"), ids, texts)
        with open(os.path.join(tmp, "index.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)

    index.path = atomic_directory(out, overwrite, write)
    return record


def faiss_index_bytes(faiss_index, n):
    """Bytes per entry of a faiss index, measured by serialising it."""
    faiss = faiss_module()
    return int(round(len(faiss.serialize_index(faiss_index)) / max(1, n)))


def add(index: Index, embeddings: np.ndarray, ids: Optional[Sequence], texts: List[str]) -> dict:
    """Append entries to a loaded index (rewritten as a whole, complete or not at all); the
    search parameter and calibration stay as built."""
    from domain_tune.outputs import atomic_directory

    new = normalize_in_place(np.array(embeddings, dtype=np.float32))
    if ids is None:
        last = max((i for i in index.ids if isinstance(i, int)), default=0)
        ids = list(range(last + 1, last + 1 + len(texts)))
    ids = [_json_id(i) for i in ids]
    known = set(map(str, index.ids))
    clash = [i for i in ids if str(i) in known]
    if clash:
        raise BadInputError(f"--add: id {clash[0]!r} is already in the index"
                            + (f" ({len(clash):,} ids are)" if len(clash) > 1 else ""))
    if len(set(map(str, ids))) != len(ids):
        raise BadInputError("--add: the new ids are not unique")
    record = dict(index.record)
    e = np.concatenate([np.asarray(index.embeddings), new])
    codes = None
    if index.codes is not None:
        codes = np.concatenate([index.codes, quantize(new, record["precision"],
                                                      record.get("calibration"))[0]])
    if index.faiss_index is not None:
        for s in range(0, len(new), 65536):
            index.faiss_index.add(np.ascontiguousarray(new[s : s + 65536]))
    record["count"] = len(e)
    record["added"] = record.get("added", 0) + len(new)
    all_ids, all_texts = index.ids + ids, index.texts + list(texts)

    def write(tmp):
        np.save(os.path.join(tmp, "embeddings.npy"), e)
        if codes is not None:
            np.save(os.path.join(tmp, "codes.npy"), codes)
        if index.faiss_index is not None:
            faiss_module().write_index(index.faiss_index, os.path.join(tmp, "faiss.index"))
        _write_entries(os.path.join(tmp, "entries.jsonl"), all_ids, all_texts)
        with open(os.path.join(tmp, "index.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)

    del index.embeddings  # the memory map of the file being replaced
    atomic_directory(index.path, True, write)
    return record


# --- from files ---------------------------------------------------------------------


def _corpus_embeddings(model, model_spec, texts, path, column, cache, batch_size, progress):
    """Embeddings of the corpus ``texts``: an ``embed`` cache reused (checked) or written."""
    from domain_tune import embedding_cache
    from domain_tune.embedding import encode

    if cache is not None and os.path.exists(cache):
        return embedding_cache.load_cache(cache, model, model_spec, texts)
    raw = encode(model, texts, batch_size=batch_size, progress=progress, label="Corpus")
    if cache is not None:
        meta = embedding_cache.metadata(model, model_spec, len(raw), raw.shape[1],
                                        embedding_cache.texts_sha256(texts), path, column)
        embedding_cache.save_cache(cache, raw, meta)
    return raw


def _read_entries(path, column, id_column):
    """Texts and ids of a corpus file, blank texts left out (with a warning)."""
    from domain_tune.corpus import blank_mask, read_corpus

    texts, ids = read_corpus(path, column, id_column)
    blank = blank_mask(texts)
    if blank is not None:
        keep = np.flatnonzero(~blank)
        texts, ids = [texts[i] for i in keep], [ids[i] for i in keep]
    return texts, ids


def _fingerprint(model, model_spec):
    from domain_tune.embedding_cache import fingerprint, PROBES

    return {"model": model_spec, "fingerprint": {"texts": PROBES, "embeddings": fingerprint(model)}}


def index_file(corpus_path, out, *, loader, model_spec, column=None, id_column=None,
               kind="flat", precision="float32", target_recall=DEFAULT_TARGET_RECALL,
               recall_queries=None, recall_column=None, corpus_embeddings=None, add_to=False,
               batch_size=256, overwrite=False, progress=False, seed=0) -> dict:
    """Build (or, with ``add_to``, extend) the index ``out`` from a corpus file read as
    ``match`` reads it.  ``loader()`` returns the model, called once the inputs are checked.
    Returns a summary with the record's kind, count, search parameter and recall."""
    import time

    from domain_tune.outputs import check_out

    started = time.perf_counter()
    corpus_path, out = os.fspath(corpus_path), os.fspath(out)
    existing = Index.load(out, "--out") if add_to else None
    if not add_to:
        check_out(out, overwrite, kind="dir", inputs=(corpus_path,))
        check_precision(precision)
        factory_string(kind, 1 << 20, 512)  # an unknown kind is refused before any work
        if kind != "flat":
            faiss_module()
    elif existing.faiss_index is None and existing.record.get("factory"):  # pragma: no cover
        faiss_module()
    texts, ids = _read_entries(corpus_path, column, id_column)
    queries = None
    if recall_queries is not None:
        from domain_tune.corpus import text_column
        from domain_tune.datasets.texts import text_chunks

        q_column = text_column(os.fspath(recall_queries), recall_column, "--recall-column",
                               "recall queries")
        queries = [t for chunk in text_chunks(os.fspath(recall_queries), q_column,
                                              what="recall queries") for t in chunk if t.strip()]
        if not queries:
            raise BadInputError(f"--recall-queries {recall_queries} holds no texts")
    cache = None if corpus_embeddings is None else os.fspath(corpus_embeddings)
    model = loader()
    if existing is not None:
        existing.check_model(model, model_spec, "--out")
    emb = _corpus_embeddings(model, model_spec, texts, corpus_path, column, cache, batch_size,
                             progress)
    if existing is not None:
        record = add(existing, emb, ids if id_column is not None else None, texts)
    else:
        from domain_tune.embedding import encode

        query_emb = None if queries is None else encode(model, queries, batch_size=batch_size)
        record = build(out, emb, ids, texts, _fingerprint(model, model_spec), kind=kind,
                       precision=precision, target_recall=target_recall,
                       recall_queries=query_emb, seed=seed, overwrite=overwrite,
                       source={"corpus": corpus_path, "column": column, "id_column": id_column})
    return summary(record, out, added=len(texts) if add_to else None,
                   seconds=round(time.perf_counter() - started, 3))


def summary(record, path, **extra):
    """What ``domain-tune index`` prints: the record without its fingerprint and calibration."""
    skip = {"fingerprint", "calibration", "format", "version"}
    return {"out": os.fspath(path), **{k: v for k, v in record.items() if k not in skip},
            **{k: v for k, v in extra.items() if v is not None}}
