"""Matching at scale: exact search, faiss indexes and quantised codes, on 2 cores.

Real USE-multilingual v3 embeddings: the corpus is every distinct ESCO
occupation label (preferred and alternative, English) plus the STS-B train
sentences; the queries are job titles made from ESCO labels with a seniority
or gender marker (``senior …``, ``… (m/f/d)``), as job ads write them, half
for choosing search parameters, half (never seen by the tuning) for recall.
The 1,000,000-entry corpus is the real embeddings plus perturbed copies of them
(each a real row + Gaussian noise at cosine about 0.9 to it, renormalised),
since embedding a million texts takes longer than this benchmark; this is said
in the results.

Measured in one run, CPU time beside wall time:

1. exact search (``domain_tune.matching.search``) against a plain numpy
   blocked loop (512-query blocks x 32,768-entry tiles, argpartition, a running
   merge) at 30,000 real entries and at 1,000,000, the same top-k;
2. the same under ``OPENBLAS_CORETYPE=Haswell`` (AVX2 kernels), in a child;
3. faiss kinds at 1,000,000 entries: build time, bytes an entry, queries/s and
   recall@10 against exact on held-out queries, the search parameter chosen for
   ``--target-recall 0.95``;
4. flat float16 / int8 / binary codes with float32 rescoring: memory and recall;
5. the model's embedding rate, for a million queries against a million entries.

Writes ``results/match.md`` and ``results/match.json``.

    python scripts/bench_match.py                 # the full run (about 30 minutes)
    python scripts/bench_match.py --big 200000    # a quicker look
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

import numpy as np  # noqa: E402

ESCO = ROOT.parent / "shared" / "data" / "esco" / "occupations_en.csv"
STS = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-train.csv"
MARKERS = ["senior {}", "junior {}", "{} (m/f/d)", "lead {}", "{} - remote", "trainee {}",
           "head {}", "{} wanted"]
K = 10


def lscpu_flags():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "lscpu not available"
    for line in out.splitlines():
        if line.startswith("Flags:"):
            wanted = ("avx", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "fma", "amx")
            return " ".join(f for f in line.split()[1:] if f in wanted)
    return "unknown"


def clock():
    return time.perf_counter(), time.process_time()


def since(start):
    wall, cpu = clock()
    return round(wall - start[0], 3), round(cpu - start[1], 3)


def texts():
    import pandas as pd

    frame = pd.read_csv(ESCO, dtype=str, keep_default_na=False)
    labels = list(frame["preferredLabel"])
    for cell in frame["altLabels"]:
        labels.extend(t.strip() for t in cell.split("\n") if t.strip())
    labels = list(dict.fromkeys(labels))
    from domain_tune.datasets.sts import read_sts

    split = read_sts(str(STS))
    s1, s2 = list(split.sentences1), list(split.sentences2)
    known = set(labels)
    sts = [t for t in dict.fromkeys(s1 + s2) if t not in known]
    return labels, sts


def plain_loop(q, c, k, block=512, tile=32768):
    """The reference: numpy blocks x tiles, argpartition, a merge by full sort of 2k."""
    out_i, out_v = [], []
    for s in range(0, len(q), block):
        qb = q[s : s + block]
        bi = bv = None
        for t in range(0, len(c), tile):
            sc = qb @ c[t : t + tile].T
            w = sc.shape[1]
            kk = min(k, w)
            i = np.argpartition(sc, w - kk, axis=1)[:, w - kk:]
            v = np.take_along_axis(sc, i, 1)
            i = i + t
            if bi is not None:
                i, v = np.concatenate([bi, i], 1), np.concatenate([bv, v], 1)
            o = np.argsort(-v, axis=1, kind="stable")[:, :k]
            bi, bv = np.take_along_axis(i, o, 1), np.take_along_axis(v, o, 1)
        out_i.append(bi)
        out_v.append(bv)
    return np.concatenate(out_i), np.concatenate(out_v)


def project_search(q, c, k):
    from domain_tune.matching import search

    lookup = {str(i): i for i in range(len(q))}
    blocks = search([[str(i) for i in range(len(q))]], lambda t: q[[lookup[x] for x in t]], c, k)
    return np.concatenate([b.index for b in blocks])


def exact_row(label, q, c, k=5):
    start = clock()
    ref_i, _ = plain_loop(q, c, k)
    plain = since(start)
    start = clock()
    got = project_search(q, c, k)
    ours = since(start)
    return {"label": label, "queries": len(q), "corpus": len(c),
            "plain_qps": round(len(q) / plain[0], 1), "plain_cpu_s": plain[1],
            "project_qps": round(len(q) / ours[0], 1), "project_cpu_s": ours[1],
            "ratio": round(plain[0] / ours[0], 3),
            "same_top_k": float((got == ref_i).mean())}


def perturbed(real, n, seed=0, cosine=0.9):
    """``n`` unit rows: the real ones, then real rows plus noise at about ``cosine`` to them."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, real.shape[1]), np.float32)
    out[: len(real)] = real
    sigma = np.sqrt(1 / cosine**2 - 1) / np.sqrt(real.shape[1])
    for s in range(len(real), n, 65536):
        e = min(n, s + 65536)
        rows = real[rng.integers(0, len(real), e - s)]
        noisy = rows + rng.normal(scale=sigma, size=rows.shape).astype(np.float32)
        out[s:e] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    return out


def rss_gib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def index_rows(big, tune_q, eval_q, exact_eval, kinds, precisions, folder):
    from domain_tune import indexing

    fp = {"model": "use-m3", "fingerprint": {"texts": [], "embeddings": []}}
    ids = list(range(len(big)))
    names = [""] * len(big)
    rows = []
    for kind, precision in [(k, "float32") for k in kinds] + [("flat", p) for p in precisions]:
        out = folder / f"{kind}-{precision}".replace(",", "_")
        start = clock()
        record = indexing.build(out, big, ids, names, fp, kind=kind, precision=precision,
                                target_recall=0.95, recall_queries=tune_q)
        build = since(start)
        before = rss_gib()
        index = indexing.Index.load(out)
        loaded = rss_gib() - before
        index.search(eval_q[:64], K)  # warm
        start = clock()
        found, _ = index.search(eval_q, K)
        took = since(start)
        rows.append({"kind": kind, "factory": record["factory"], "precision": precision,
                     "bytes_per_entry": record["bytes_per_entry"],
                     "memory_gib": round(record["bytes_per_entry"] * len(big) / 2**30, 3),
                     "resident_after_load_gib": round(loaded, 3),
                     "search": {k: v for k, v in record["search"].items() if k != "tried"},
                     "tuned_recall": record["recall"][f"recall_at_{K}"],
                     "heldout_recall": round(indexing.recall_at_k(found, exact_eval), 4),
                     "qps": round(len(eval_q) / took[0], 1), "cpu_s": took[1],
                     "build_s": build[0], "build_cpu_s": build[1]})
        print(json.dumps(rows[-1]), flush=True)
        del index
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    return rows


def child_exact(path):
    """In a child process (another BLAS core type): the exact rows of a saved problem."""
    data = np.load(path)
    print(json.dumps([exact_row("30,000 entries", data["q30"], data["c30"]),
                      exact_row(f"{len(data['cbig']):,} entries", data["qbig"], data["cbig"])]))


def render(r):
    m = r["machine"]
    lines = [
        f"# Matching at scale: exact search, faiss indexes, quantised codes",
        "",
        f"Date {r['date']}; total {r['total_s']:.0f} s. Command: `{r['command']}`",
        "",
        f"Machine: {m['cores']} cores, {m['machine']}, Python {m['python']}, CPU flags "
        f"{m['cpu_flags']}; load average {m['load_start']} at start, {m['load_end']} at end. "
        "numpy's OpenBLAS picks its kernels by CPU; the AVX2 rows run in a child with "
        "`OPENBLAS_CORETYPE=Haswell`.",
        "",
        f"Embeddings: USE-multilingual v3 (`use-m3`) of {r['real']:,} real texts "
        f"({r['labels']:,} distinct ESCO occupation labels, {r['sts']:,} STS-B train sentences); "
        f"queries: {r['queries']:,} job titles made from ESCO labels with a marker ('senior …', "
        "'… (m/f/d)'), half to choose search parameters, half to measure recall. "
        f"The {r['big']:,}-entry corpus is the real rows plus perturbed copies (real row + "
        "Gaussian noise at cosine about 0.9, renormalised): not texts, but vectors with the "
        "real embeddings' geometry around them.",
        "",
        "## Exact search: `domain_tune.match` against a plain numpy blocked loop (top 5)",
        "",
        "| corpus | BLAS kernels | queries | numpy loop queries/s | domain-tune queries/s | "
        "ratio | CPU s (loop / domain-tune) | same top-5 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for isa, rows in (("native", r["exact"]), ("AVX2 (Haswell)", r.get("exact_avx2") or [])):
        for e in rows:
            lines.append(f"| {e['label']} | {isa} | {e['queries']:,} | {e['plain_qps']:,} | "
                         f"{e['project_qps']:,} | {e['ratio']:.2f}x | {e['plain_cpu_s']:.1f} / "
                         f"{e['project_cpu_s']:.1f} | {e['same_top_k']:.3f} |")
    lines += [
        "",
        f"## Indexes over {r['big']:,} entries (recall@{K} against exact, held-out queries)",
        "",
        "Each built with `--target-recall 0.95`, its search parameter chosen on the tuning "
        "queries; queries/s on the held-out half, both cores. Memory is the codes searched "
        "(the float32 rows stay on disk, memory-mapped, for rescoring the candidates).",
        "",
        "| kind | faiss factory | bytes / entry | memory | search parameter | recall@10 (tuning) "
        "| recall@10 (held out) | queries/s | x exact | build |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    exact_qps = r["exact_index_qps"]
    for x in r["indexes"]:
        s = x["search"]
        param = (f"{s['parameter']} {s['value']}" + (f", rescore {s['rescore']}x" if s.get("rescore")
                                                     else "")) if s.get("parameter") else "exact"
        lines.append(f"| {x['kind']} {x['precision'] if x['kind'] == 'flat' else ''} | "
                     f"{x['factory'] or '-'} | {x['bytes_per_entry']:,} | {x['memory_gib']:.2f} GiB | "
                     f"{param} | {x['tuned_recall']:.3f} | {x['heldout_recall']:.3f} | "
                     f"{x['qps']:,} | {x['qps'] / exact_qps:.1f}x | {x['build_s']:.0f} s |")
    p = r["projection"]
    lines += [
        "",
        "## A million queries against a million entries",
        "",
        f"The model embeds {p['embed_rate']:,.0f} short texts a second here (the ESCO labels, "
        f"batch 256): {p['embed_hours']:.2f} h for two million texts (the queries and the corpus). "
        f"Searching a million queries then takes {p['exact_hours']:.2f} h exact (scaled to a "
        f"million entries), or {p['best_hours']:.2f} h with `{p['best_kind']}` (recall@10 "
        f"{p['best_recall']:.3f}, at {r['big']:,} entries): {p['total_hours']:.2f} h in all, "
        "model included.",
        "",
        "Rerun: `python scripts/bench_match.py` (add `--big 200000` for a quicker look).",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--exact-big-queries", type=int, default=1024)
    parser.add_argument("--exact-small-queries", type=int, default=16384)
    parser.add_argument("--kinds", default="ivf,ivf-sq8,ivf-pq")
    parser.add_argument("--precisions", default="float16,int8,binary")
    parser.add_argument("--real", type=int, help="embed only this many real texts (a quick look)")
    parser.add_argument("--out", default=str(ROOT / "results" / "match.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_exact(args.child)
    started = time.time()
    load_start = os.getloadavg()[0]
    from domain_tune.api import encode, load_model
    from domain_tune.similarity import normalize_in_place

    labels, sts = texts()
    if args.real:
        labels, sts = labels[: args.real], sts[: max(0, args.real - len(labels))]
    model = load_model("use-m3")
    encode(model, labels[:256])
    start = time.perf_counter()
    label_emb = encode(model, labels, batch_size=256, progress=True)
    embed_rate = len(labels) / (time.perf_counter() - start)
    sts_emb = encode(model, sts, batch_size=256, progress=True)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(labels), size=args.queries, replace=False)
    queries = [MARKERS[i % len(MARKERS)].format(labels[j]) for i, j in enumerate(picks)]
    q = normalize_in_place(encode(model, queries, batch_size=256))
    real = normalize_in_place(np.concatenate([label_emb, sts_emb]))
    c30 = real[:30000]
    big = perturbed(real, args.big)
    del model
    half = len(q) // 2
    tune_q, eval_q = q[:half], q[half:]
    qbig = q[: args.exact_big_queries]
    q30 = normalize_in_place(np.tile(q, (max(1, args.exact_small_queries // len(q)), 1))
                             + 0.01 * rng.normal(size=(len(q) * max(1, args.exact_small_queries
                                                                    // len(q)), q.shape[1]))
                             .astype(np.float32))
    exact = [exact_row("30,000 entries", q30, c30), exact_row(f"{len(big):,} entries", qbig, big)]
    print(json.dumps(exact), flush=True)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="bench-match-"))
    saved = folder / "problem.npz"
    np.savez(saved, q30=q30, c30=c30, qbig=qbig, cbig=big)
    child = subprocess.run([sys.executable, __file__, "--child", str(saved)], capture_output=True,
                           text=True, env=dict(os.environ, OPENBLAS_CORETYPE="Haswell"))
    exact_avx2 = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else []
    saved.unlink()
    from domain_tune.indexing import _exact

    exact_eval = _exact(eval_q, big, K)[0]
    start = clock()
    _exact(eval_q, big, K)
    exact_index_qps = len(eval_q) / since(start)[0]
    kinds = [k for k in args.kinds.split(",") if k]
    precisions = [p for p in args.precisions.split(",") if p]
    indexes = index_rows(big, tune_q, eval_q, exact_eval, kinds, precisions, folder)
    approx = [x for x in indexes if x["heldout_recall"] >= 0.95]
    best = max(approx, key=lambda x: x["qps"]) if approx else None
    exact_hours = 1e6 / exact_index_qps / 3600 * (1e6 / len(big))  # exact time grows with the corpus
    projection = {"embed_rate": round(embed_rate, 1), "embed_hours": 2e6 / embed_rate / 3600,
                  "exact_hours": exact_hours,
                  "best_kind": best["factory"] or best["kind"] if best else "exact",
                  "best_recall": best["heldout_recall"] if best else 1.0,
                  "best_hours": 1e6 / best["qps"] / 3600 if best else exact_hours}
    projection["total_hours"] = projection["embed_hours"] + projection["best_hours"]
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python scripts/bench_match.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "machine": platform.machine(),
                    "python": platform.python_version(), "cpu_flags": lscpu_flags(),
                    "load_start": round(load_start, 2), "load_end": round(os.getloadavg()[0], 2)},
        "labels": len(labels), "sts": len(sts), "real": len(real), "queries": len(q),
        "big": len(big), "exact": exact, "exact_avx2": exact_avx2,
        "exact_index_qps": round(exact_index_qps, 1), "indexes": indexes,
        "projection": projection, "peak_rss_gib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "total_s": round(time.time() - started, 1),
    }
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.write_text(render(result), encoding="utf-8")
    print(render(result))


if __name__ == "__main__":
    main()
