"""Bulk embedding on Apache Beam's DirectRunner against ``domain-tune embed``, in one run.

Embeds the same ``--texts`` (10,000) STS-B train sentences, one per line, with

* ``domain-tune embed TEXTS --out OUT.npy`` (the reference), and
* ``domain-tune beam embed TEXTS --out PREFIX`` (RunInference on the DirectRunner, one .npz shard),

each a whole command in a fresh process (start-up, model load, pipeline construction included),
interleaved ``--reps`` times per instruction-set setting (``native``; ``avx2``: oneDNN capped at
AVX2), and checks that the Beam rows equal ``embed``'s (largest difference, by line).  Target:
Beam's wall time within 2x of ``embed``'s.  Writes ``results/beam.md`` and ``results/beam.json``.

    python scripts/bench_beam.py
    python scripts/bench_beam.py --texts 2000 --reps 1 --isa native     # a quick look
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from bench_speed import harness  # noqa: E402

ROOT = harness.ROOT
STS_TRAIN = harness.SHARED / "stsbenchmark" / "sts-train.csv"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="use-m3")
    p.add_argument("--texts", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--isa", default="native,avx2")
    p.add_argument("--out", default=str(ROOT / "results" / "beam.md"))
    return p.parse_args(argv)


def sentences(n):
    from domain_tune.datasets.sts import read_sts

    if not STS_TRAIN.is_file():
        raise SystemExit(f"{STS_TRAIN} not found: the benchmark embeds STS-B train sentences")
    sts = read_sts(str(STS_TRAIN))
    texts = [t for t in dict.fromkeys([*sts.sentences1, *sts.sentences2]) if t.strip()]
    if len(texts) < n:
        raise SystemExit(f"{n} texts asked, STS-B train has {len(texts)} distinct sentences")
    return texts[:n]


def beam_rows(prefix, path, n):
    from domain_tune.beam import read_npz_shards

    ids, _, rows = read_npz_shards(str(prefix))
    lines = [int(i.rsplit(":", 1)[1]) - 1 for i in ids]
    if sorted(lines) != list(range(n)):
        raise SystemExit(f"beam embed wrote {len(ids)} rows for {n} texts")
    out = np.empty_like(rows)
    out[lines] = rows
    return out


def render(r):
    m = r["machine"]
    lines = [
        "# Bulk embedding on Beam's DirectRunner against `embed`",
        "",
        f"{m['date']}, commit {m['commit']}, {m['cores']} cores, {m['cpu_model']}; SIMD flags: "
        f"{' '.join(m['simd_flags'])}; load average at start {m['load_average_1min']}.",
        "",
        f"Command: `{r['command']}` ({r['seconds']:.0f} s). {r['texts']:,} distinct STS-B train "
        f"sentences in one text file, model `{r['model']}`. Each figure is a whole command in a fresh "
        f"process (median of {r['reps']}, interleaved): `domain-tune embed TEXTS --out OUT.npy` and "
        "`domain-tune beam embed TEXTS --out PREFIX` (DirectRunner; Prism cannot fetch its binary "
        "offline, so Beam runs the bundle on its FnApiRunner).",
        "",
        "| setting | `embed` wall s | `beam embed` wall s | ratio | CPU s (embed / beam) | "
        "texts/s (embed / beam) | rows equal (largest difference) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for x in r["settings"]:
        lines.append(
            f"| {x['isa']} | {x['embed_wall']:.1f} | {x['beam_wall']:.1f} | {x['ratio']:.2f}x | "
            f"{x['embed_cpu']:.1f} / {x['beam_cpu']:.1f} | {r['texts'] / x['embed_wall']:,.0f} / "
            f"{r['texts'] / x['beam_wall']:,.0f} | {'yes' if x['equal'] else 'no'} "
            f"({x['max_abs_diff']:.1e}) |")
    lines += ["", "Target: `beam embed` within 2x of `embed`'s wall time, rows equal to 1e-6."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    meta = harness.machine_info()
    texts = sentences(args.texts)
    isas = args.isa.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        tmp = pathlib.Path(tmp)
        path = tmp / "texts.txt"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        runs = {"n": 0}

        def embed(isa):
            return harness.run([harness.DOMAIN_TUNE, "embed", str(path), "--out", str(tmp / f"{isa}.npy"),
                                "--model", args.model, "--overwrite"], isa)

        def beam(isa):
            runs["n"] += 1
            prefix = tmp / f"beam-{runs['n']}" / "rows"
            result = harness.run([harness.DOMAIN_TUNE, "beam", "embed", str(path), "--out", str(prefix),
                                  "--model", args.model], isa)
            result["prefix"] = str(prefix)
            return result

        timed = harness.interleaved({"embed": embed, "beam": beam}, isas, args.reps)
        settings = []
        for isa in isas:
            ref = np.load(tmp / f"{isa}.npy")
            diffs = [float(np.abs(beam_rows(b["prefix"], path, len(texts)) - ref).max())
                     for b in timed[("beam", isa)]]
            e = timed[("embed", isa)]
            b = timed[("beam", isa)]
            x = {"isa": isa,
                 "embed_wall": harness.median([t["wall"] for t in e]),
                 "beam_wall": harness.median([t["wall"] for t in b]),
                 "embed_cpu": harness.median([t["user"] + t["sys"] for t in e]),
                 "beam_cpu": harness.median([t["user"] + t["sys"] for t in b]),
                 "max_abs_diff": max(diffs)}
            x["ratio"] = round(x["beam_wall"] / x["embed_wall"], 3)
            x["equal"] = x["max_abs_diff"] <= 1e-6
            settings.append(x)
    result = {"command": "python scripts/bench_beam.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": args.model, "texts": len(texts), "reps": args.reps, "machine": meta,
              "settings": settings, "seconds": round(time.time() - started, 1)}
    out = pathlib.Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0 if all(x["equal"] for x in settings) else 1


if __name__ == "__main__":
    sys.exit(main())
