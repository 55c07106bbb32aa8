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
    ap.add_argument("--from-log", type=pathlib.Path, nargs="+", metavar="LOG",
                    help="write the report from the stderr logs of earlier runs (one JSON line "
                         "per figure), e.g. of sections run as separate processes, or cut short")
    args = ap.parse_args(argv)
    if args.from_log:
        meta, results, isas = from_logs(args.from_log)
        meta["command"] = shlex.join(["python", "-m", "scripts.bench_speed", *(argv or sys.argv[1:])])
        report.write(args.out_dir, meta, results, isas)
        log(f"wrote {args.out_dir / 'speed.md'} and speed.json from {len(args.from_log)} log(s)")
        return
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


def from_logs(paths):
    """``(meta, results, isas)`` from the logs of earlier runs (see harness.interleaved)."""
    import ast
    import json
    import re

    figure = re.compile(r"^\[[\d:]+\] rep \d+/\d+ (\w+): (.+?): (\{.*\})$")
    section_line = re.compile(r"^\[[\d:]+\] section (\w+)$")
    meta = machine_info()
    meta.update({"onednn_isa": {}, "total_minutes": None, "load_average_end": load_average(),
                 "logs": [str(p) for p in paths]})
    results, isas, section = {}, [], None
    for path in paths:
        for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
            if "oneDNN kernels: " in line:
                meta["onednn_isa"].update(ast.literal_eval(line.split("oneDNN kernels: ", 1)[1]))
            elif m := section_line.match(line):
                section = m.group(1)
                results.setdefault(section, {"runs": {}, "load_average": [None, None]})
            elif (m := figure.match(line)) and section:
                isa, name, data = m.group(1), m.group(2), json.loads(m.group(3))
                results[section]["runs"].setdefault((name, isa), []).append(data)
                if isa not in isas:
                    isas.append(isa)
    return meta, results, isas


if __name__ == "__main__":
    sys.exit(main())
