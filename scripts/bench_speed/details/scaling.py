"""Section ``scaling``: eval time and train time per epoch vs the number of pairs.

    python -m scripts.bench_speed.details --sections scaling
"""

import gc

from scripts.bench_speed.details.common import (epoch_timer, fmt, section_result, timed,
                                                wait_for_quiet)
from scripts.bench_speed.harness import log, median


def run(b):
    import numpy as np
    import tensorflow as tf

    from domain_tune.datasets.pairs import Pairs
    from domain_tune.embedding import encode
    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese, train_dataset

    sizes = b.s["scaling_pairs"]
    sentences = b.synthetic_sentences(2 * max(sizes))
    model = b.model
    encode(model, sentences[:512])
    eval_rows = {}
    for n, reps in zip(sizes, b.s["scaling_eval_reps"]):
        texts = sentences[: 2 * n]
        ts = []
        for _ in range(reps):
            wait_for_quiet("scaling", b.s["quiet_wait"])
            ts.append(timed(lambda: encode(model, texts))[0])
        eval_rows[n] = {"sentences": 2 * n, "seconds": ts, "reps": reps}
        log(f"scaling: eval {n:,} pairs: {median(ts):.1f} s")

    # Train: Adam (the default), batch 64, one compiled model reused for every size.
    bs, cap, chunks = 64, b.s["scaling_train_steps"], b.s["scaling_train_chunks"]
    options = FitOptions(batch_size=bs, optimizer="adam")
    siamese = compile_siamese(load_model("use-m3"), options)
    rng = np.random.default_rng(0)
    train_rows = {}
    for n in sizes:
        pairs = Pairs(sentences[:n], sentences[n : 2 * n],
                      rng.uniform(0, 1, n).astype(np.float32))
        ds, steps = train_dataset(pairs, bs, options.seed, 0, 1 + chunks,
                                  bucket=options.bucket_by_length)
        # padding of the batches timed below (the same dataset, iterated separately)
        widths, real = [], 0
        for x, _ in ds.take((1 + chunks) * cap):
            mask = model.tokenizer(tf.concat([x["base"], x["ref"]], 0))["padding_mask"]
            widths.append(int(mask.shape[1]))
            real += int(tf.reduce_sum(tf.cast(mask, tf.int32)))
        slots = sum(w * 2 * bs for w in widths)
        timer = epoch_timer()
        wait_for_quiet("scaling", b.s["quiet_wait"])
        log(f"scaling: train {n:,} pairs: 1 + {chunks} chunks of {cap} steps")
        siamese.fit(ds, epochs=1 + chunks, steps_per_epoch=cap, callbacks=[timer], verbose=0)
        per_step = median([e["steps_seconds"] / cap for e in timer.epochs[1:]])
        train_rows[n] = {"steps_per_epoch": steps, "timed_steps": cap * chunks,
                         "seconds_per_step": per_step, "epoch_seconds": per_step * steps,
                         "extrapolated": steps > cap, "mean_padded_width": float(np.mean(widths)),
                         "real_token_fraction": real / slots}
        log(f"scaling: train {n:,} pairs: {per_step:.2f} s/step, "
            f"epoch ~ {per_step * steps:.0f} s")
    del siamese
    gc.collect()
    rows = []
    for n in sizes:
        e, t = eval_rows[n], train_rows[n]
        rows.append([
            f"{n:,}", f"{e['sentences']:,}", fmt(median(e["seconds"]), 1),
            fmt(median(e["seconds"]) / n * 1e3, 2), str(e["reps"]),
            f"{t['steps_per_epoch']:,}", fmt(t["mean_padded_width"], 0),
            f"{100 * t['real_token_fraction']:.0f}%", fmt(t["seconds_per_step"], 3),
            fmt(t["epoch_seconds"], 0)
            + (" (extrapolated)" if t["extrapolated"] else " (measured)"),
        ])
    notes = [
        "Sentences: STS train sentences repeated with a counter suffix, all distinct; N pairs use "
        "the first 2N of them (base = the first N, ref = the next N, random scores).",
        "Eval: `encode(model, 2N sentences)` (batch 256), median of the repetitions shown.",
        f"Train: Adam, batch 64, fit's default batching (bucket_by_length="
        f"{FitOptions().bucket_by_length}), `train_dataset` of the N pairs fed to the compiled "
        "siamese "
        f"model's `fit` with `steps_per_epoch={cap}`: one warm-up chunk, then {chunks} timed "
        f"chunks of {cap} steps; seconds per step is their median, and the epoch time is "
        "seconds per step x ceil(N/64) steps: **extrapolated** where the epoch has more steps "
        "than were timed. It excludes the per-epoch checkpoint of `fit` (see the profile). "
        "Batch width: the mean padded length of the timed batches (2 x 64 texts padded together), "
        "and the share of their slots that are real tokens, shown because the cost of a step "
        "depends on them.",
    ]
    return section_result(
        "6. Scaling with the number of pairs",
        ["pairs", "eval sentences", "eval s", "eval ms/pair", "eval reps", "train steps/epoch",
         "train batch width (tokens)", "real tokens", "train s/step", "train s/epoch"], rows, notes,
        {"eval": {str(k): v for k, v in eval_rows.items()},
         "train": {str(k): v for k, v in train_rows.items()}})
