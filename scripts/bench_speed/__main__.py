"""``python -m scripts.bench_speed [SECTION ...] [--isa native,avx2] [--reps N]``: see __init__."""

import argparse
import pathlib
import shlex
import sys
import tempfile
import time

from scripts.bench_speed import report
from scripts.bench_speed.harness import ROOT, interleaved, load_average, log, machine_info, onednn_isa
from scripts.bench_speed.sections import SECTIONS


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_speed")
    ap.add_argument("sections", nargs="*", default=[],
                    help=f"sections to run (default all: {', '.join(SECTIONS)})")
    ap.add_argument("--isa", default="native,avx2", help="instruction-set settings, comma-separated")
    ap.add_argument("--reps", type=int, default=2, help="repetitions of every figure (median)")
    ap.add_argument("--out-dir", type=pathlib.Path, default=ROOT / "results")
    args = ap.parse_args(argv)
    sections = args.sections or list(SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    isas = [s.strip() for s in args.isa.split(",") if s.strip()]
    meta = machine_info()
    meta["command"] = shlex.join(["python", "-m", "scripts.bench_speed", *(argv or sys.argv[1:])])
    meta["onednn_isa"] = {isa: onednn_isa(isa) for isa in isas}
    log(f"oneDNN kernels: {meta['onednn_isa']}")
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        for name in sections:
            log(f"section {name}")
            load_before = load_average()
            figures = SECTIONS[name](pathlib.Path(tmp))
            results[name] = {"runs": interleaved(figures, isas, args.reps),
                             "load_average": [load_before, load_average()]}
    meta["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
    meta["load_average_end"] = load_average()
    report.write(args.out_dir, meta, results, isas)
    log(f"wrote {args.out_dir / 'speed.md'} and speed.json")


if __name__ == "__main__":
    sys.exit(main())
