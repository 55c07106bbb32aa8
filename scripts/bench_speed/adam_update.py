"""Time of the dense Adam update of USE-m3's table by number of active rows, on both of its paths.

    python -m scripts.bench_speed.adam_update [--isa native,avx2] [--steps 30] [--batch-rows 200]

:class:`domain_tune.training.optimizers.Adam` updates the rows that ever had a gradient (gather,
arithmetic, scatter) while they are few, and streams the whole table and its moments (two in-place
XLA passes) once more than ``Adam.DENSE_FRACTION`` of the rows are active.  This prints the time of
one update on a 128,000 x 512 table for either path at several counts of active rows, which is what
the switch point was chosen from.  Each instruction-set setting runs in its own process (see
harness.py); the result is recorded in results/adam_update.md and .json.
"""

import json
import pathlib
import sys
import time

from scripts.bench_speed.harness import log, run_children, script_meta, script_parser, write_json


def measure(args):
    """In a child process: one JSON line per (active rows, path) on stdout."""
    from domain_tune import _env

    _env.import_tensorflow()
    import numpy as np
    import tensorflow as tf

    from domain_tune.training.optimizers import Adam

    rows, dim = 128_000, 512
    rng = np.random.default_rng(0)
    for active in [int(a) for a in args.active.split(",")]:
        for path, fraction in (("active rows", 2.0), ("whole tables", 0.0)):
            table = tf.Variable(rng.normal(size=(rows, dim)).astype("float32"))
            opt = Adam(learning_rate=1e-4)
            opt.DENSE_FRACTION = fraction
            opt.build([table])
            # make `active` rows active with one step over them
            ids = rng.choice(rows, active, replace=False)
            opt.apply_gradients([(tf.IndexedSlices(tf.ones((active, dim)), ids), table)])

            @tf.function
            def step(ids):
                opt.apply_gradients([(tf.IndexedSlices(tf.ones((args.batch_rows, dim)), ids),
                                      table)])

            batches = [rng.choice(ids, args.batch_rows, replace=False) for _ in range(args.steps + 3)]
            for b in batches[:3]:
                step(b)
            t = time.perf_counter()
            for b in batches[3:]:
                step(b)
            ms = (time.perf_counter() - t) / args.steps * 1000
            print(json.dumps({"active_rows": active, "path": path, "ms_per_step": round(ms, 2)}),
                  flush=True)


def main(argv=None):
    ap = script_parser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-rows", type=int, default=200, help="distinct rows of a step's gradient")
    ap.add_argument("--active", default="2000,8000,12000,16000,32000,64000,128000")
    args = ap.parse_args(argv)
    if args.child:
        return measure(args)
    started = time.time()
    meta = script_meta("scripts.bench_speed.adam_update", argv)
    results = run_children("scripts.bench_speed.adam_update",
                           ["--steps", str(args.steps), "--batch-rows", str(args.batch_rows),
                            "--active", args.active], args.isa.split(","))
    meta["minutes"] = round((time.time() - started) / 60, 1)
    out = pathlib.Path(args.out_dir)
    write_json(out / "adam_update.json", {"meta": meta, "results": results})
    isas = list(results)
    lines = ["# Adam's update of the 128,000 x 512 table: active rows vs whole tables", "",
             f"Date {meta['date']}; command `{meta['command']}`; {meta['minutes']} min.", "",
             f"Machine: {meta['cores']} cores, {meta['cpu_model']}, SIMD flags: "
             f"{' '.join(meta['simd_flags'])}. Load average (1 min) {meta['load_average_1min']} "
             "at start.", "",
             f"Milliseconds per update step ({args.batch_rows} rows in the step's gradient, "
             f"{args.steps} steps after 3 warm-up steps, one process per setting):", "",
             "| active rows | " + " | ".join(f"{i} active rows | {i} whole tables" for i in isas) + " |",
             "|---|" + "---|---|" * len(isas)]
    for active in [int(a) for a in args.active.split(",")]:
        cells = []
        for isa in isas:
            by_path = {r["path"]: r["ms_per_step"] for r in results[isa] if r["active_rows"] == active}
            cells += [f"{by_path.get('active rows', '')}", f"{by_path.get('whole tables', '')}"]
        lines.append(f"| {active:,} ({active / 128_000:.0%}) | " + " | ".join(cells) + " |")
    lines += ["", "`Adam.DENSE_FRACTION` (0.1) switches to the whole tables above 12,800 active rows."]
    (out / "adam_update.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"wrote {out / 'adam_update.md'}")


if __name__ == "__main__":
    sys.exit(main())
