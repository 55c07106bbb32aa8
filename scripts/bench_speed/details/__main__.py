"""``python -m scripts.bench_speed.details [--quick] [--sections a,b] ...``: see __init__."""

import argparse
import datetime
import os
import pathlib
import shlex
import sys
import time

# common first: it records the environment before domain_tune configures TensorFlow
from scripts.bench_speed.details import common  # isort: skip
from scripts.bench_speed import details
from scripts.bench_speed.details import (cold, findings, inputs, memory, profile, report,
                                         scaling, sts, throughput, train)
from scripts.bench_speed.details.settings import FULL, QUICK, SECTIONS, STRATEGIES
from scripts.bench_speed.harness import ROOT, SHARED, load_average, log

PROG = "python -m scripts.bench_speed.details"
RUNNERS = {"throughput": throughput.run, "sts": sts.run, "cold": cold.run, "train": train.run,
           "memory": memory.run, "scaling": scaling.run, "profile": profile.run}


def parse_args(argv=None):
    doc = details.__doc__.splitlines()
    parser = argparse.ArgumentParser(prog=PROG, description=doc[0], epilog="\n".join(doc[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Smaller inputs, fewer repetitions.")
    parser.add_argument("--out-dir", default=str(ROOT / "results"), type=pathlib.Path)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"Comma-separated subset of {','.join(SECTIONS)}.")
    parser.add_argument("--strategies", default="trainable,semi-frozen,frozen",
                        help=f"Embedding strategies of the train section: {','.join(STRATEGIES)}.")
    parser.add_argument("--sts-dir", default=str(SHARED / "stsbenchmark"), type=pathlib.Path)
    parser.add_argument("--seed-pairs", default=str(SHARED / "seed-sample" / "training_data.csv"),
                        type=pathlib.Path)
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for s in args.sections:
        if s not in SECTIONS:
            parser.error(f"unknown section {s!r}; choose from {', '.join(SECTIONS)}")
    for s in args.strategies:
        if s not in STRATEGIES:
            parser.error(f"unknown strategy {s!r}; available: {', '.join(STRATEGIES)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    args.out_dir.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    revision = common.library_revision()
    from domain_tune._env import import_tensorflow

    import_tensorflow()
    bench = inputs.Bench(args, settings)
    results = {}
    for name in args.sections:
        log(f"== {name}")
        load = load_average()
        start = time.perf_counter()
        results[name] = RUNNERS[name](bench)
        results[name]["load"] = [load, load_average()]
        results[name]["background_cores"] = [c for sec, c in common.BACKGROUND if sec == name]
        results[name]["seconds"] = time.perf_counter() - start
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "scripts.bench_speed.details",
                               *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick, "settings": settings, "machine": common.machine(),
        "versions": common.package_versions(), "load_start": load_start,
        "load_end": os.getloadavg(), "total_seconds": time.perf_counter() - common.STARTED,
        "strategies": args.strategies, "library": revision,
    }
    if common.library_revision() != revision:
        meta["library"]["changed_during_run"] = True
    meta["findings"] = findings.findings(results)
    report.write_report(args.out_dir, meta, results)
    log(f"wrote {args.out_dir / 'speed_details.md'} and speed_details.json in "
        f"{meta['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
