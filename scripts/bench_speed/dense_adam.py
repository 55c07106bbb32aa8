"""Time of Adam's update of USE-m3's 26 small (dense) weights: Keras' formulas vs the fused kernel.

    python -m scripts.bench_speed.dense_adam [--isa native,avx2] [--steps 50] [--rounds 5]

Keras' Adam updates each dense weight with twelve element-wise ops, each streaming the weight or
its moments through memory.  :class:`domain_tune.training.optimizers.Adam` runs TensorFlow's
fused ``ResourceApplyAdam`` kernel instead (with its inputs scaled so that it computes Keras'
numbers: see ``_kernel_scales``).  This times one update step of all 26 weights (3.4 million
numbers, the shapes of the real model) for both, in alternating rounds inside one process per
instruction-set setting, and checks that the two optimizers end with the same weights.  The
result is recorded in results/dense_adam.md and .json.
"""

import json
import pathlib
import sys
import time

from scripts.bench_speed.harness import log, median, run_children, script_meta, script_parser, write_json


def measure(args):
    """In a child process: one JSON line with the milliseconds per step of each round."""
    from domain_tune import _env

    _env.import_tensorflow()
    import keras
    import numpy as np
    import tensorflow as tf

    from domain_tune.models.loading import from_preset
    from domain_tune.training.optimizers import Adam

    encoder = from_preset("use-m3")
    shapes = [tuple(w.shape) for w in encoder.trainable_weights
              if "embedding" not in w.path]  # all but the embedding table
    del encoder
    rng = np.random.default_rng(0)
    grads = [[tf.constant(rng.normal(size=s).astype("float32") * 1e-2) for s in shapes]
             for _ in range(4)]
    kwargs = dict(learning_rate=1e-4, beta_1=0.9, beta_2=0.9999, epsilon=1e-7)

    def runner(cls):
        init = np.random.default_rng(1)
        variables = [keras.Variable(init.normal(size=s).astype("float32")) for s in shapes]
        optimizer = cls(**kwargs)
        optimizer.build(variables)

        @tf.function
        def step(gradients):
            optimizer.apply_gradients(zip(gradients, variables))

        return step, variables

    runners, finals = {}, {}
    for name, cls in (("keras", keras.optimizers.Adam), ("fused", Adam)):
        runners[name], finals[name] = runner(cls)
    timings = {name: [] for name in runners}
    for name, step in runners.items():  # trace and warm up
        for i in range(3):
            step(grads[i % len(grads)])
    for _ in range(args.rounds):
        for name, step in runners.items():
            started = time.perf_counter()
            for i in range(args.steps):
                step(grads[i % len(grads)])
            timings[name].append((time.perf_counter() - started) / args.steps * 1000)
    worst = max(float(np.max(np.abs(a.numpy() - b.numpy()) / (1e-7 + 1e-6 * np.abs(b.numpy()))))
                for a, b in zip(finals["fused"], finals["keras"]))
    print(json.dumps({"weights": len(shapes), "numbers": int(sum(np.prod(s) for s in shapes)),
                      "ms_per_step": {k: [round(t, 2) for t in v] for k, v in timings.items()},
                      "worst_difference_in_tolerances": round(worst, 3)}), flush=True)


def main(argv=None):
    ap = script_parser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.child:
        return measure(args)
    started = time.time()
    meta = script_meta("scripts.bench_speed.dense_adam", argv)
    results = {isa: lines[-1] for isa, lines in run_children(
        "scripts.bench_speed.dense_adam", ["--steps", str(args.steps), "--rounds", str(args.rounds)],
        args.isa.split(",")).items()}
    meta["minutes"] = round((time.time() - started) / 60, 1)
    out = pathlib.Path(args.out_dir)
    write_json(out / "dense_adam.json", {"meta": meta, "results": results})
    first = next(iter(results.values()))
    lines = ["# Adam's update of USE-m3's small weights: Keras' formulas vs the fused kernel", "",
             f"Date {meta['date']}; commit {meta['commit']}; command `{meta['command']}`; "
             f"{meta['minutes']} min.", "",
             f"Machine: {meta['cores']} cores, {meta['cpu_model']}, SIMD flags: "
             f"{' '.join(meta['simd_flags'])}. Load average (1 min) {meta['load_average_1min']} "
             "at start.", "",
             f"Milliseconds per update step of the {first['weights']} weights "
             f"({first['numbers']:,} numbers), {args.steps} steps per round, "
             f"{args.rounds} alternating rounds, one process per setting:", "",
             "| setting | Keras' Adam, each round | fused, each round | medians | speed-up |",
             "|---|---|---|---|---|"]
    for isa, r in results.items():
        k, f = r["ms_per_step"]["keras"], r["ms_per_step"]["fused"]
        lines.append(f"| {isa} | {', '.join(map(str, k))} | {', '.join(map(str, f))} | "
                     f"{median(k):.2f} -> {median(f):.2f} | {median(k) / median(f):.2f}x |")
    lines += ["", "After all steps, the largest difference between the two optimizers' weights, "
              "in units of the tests' tolerance (rtol 1e-6, atol 1e-7): "
              + ", ".join(f"{isa} {r['worst_difference_in_tolerances']}"
                          for isa, r in results.items()) + "."]
    (out / "dense_adam.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    log(f"wrote {out / 'dense_adam.md'}")


if __name__ == "__main__":
    sys.exit(main())
