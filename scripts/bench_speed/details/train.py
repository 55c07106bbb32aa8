"""Section ``train``: training pairs/s by embedding strategy, optimizer, batch size and batching.

    python -m scripts.bench_speed.details --sections train --strategies trainable
"""

import gc
import math
import tempfile

from scripts.bench_speed.details.common import epoch_timer, fmt, section_result, wait_for_quiet
from scripts.bench_speed.details.settings import OPTIMIZERS, STRATEGIES, TARGETS, TRAIN_BATCHES
from scripts.bench_speed.harness import log, median


def train_config(b, pairs, strategy, optimizer, batch_size, timed_epochs, bucket):
    """Steady-state pairs/s of ``fit`` for one configuration (a fresh encoder)."""
    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese, fit

    encoder = STRATEGIES[strategy](load_model("use-m3"))
    options = FitOptions(epochs=1 + timed_epochs, batch_size=batch_size, optimizer=optimizer,
                         monitor="loss", patience=timed_epochs + 2, bucket_by_length=bucket)
    siamese = compile_siamese(encoder, options)
    timer = epoch_timer()
    with tempfile.TemporaryDirectory() as state_dir:
        fit(siamese, pairs, None, options, state_dir, callbacks=[timer], verbose=0)
    steady = timer.epochs[1:]  # the first epoch traces the train function
    n = len(pairs)
    out = {
        "strategy": strategy, "optimizer": optimizer, "batch_size": batch_size, "pairs": n,
        "bucket_by_length": bucket,
        "first_epoch_seconds": timer.epochs[0]["seconds"],
        "epoch_seconds": [e["seconds"] for e in steady],
        "steps_seconds": [e["steps_seconds"] for e in steady],
        "trainable_weights": int(sum(math.prod(v.shape) for v in encoder.trainable_variables)),
    }
    out["pairs_per_s"] = n / median(out["epoch_seconds"])
    out["pairs_per_s_steps_only"] = n / median(out["steps_seconds"])
    del encoder, siamese
    gc.collect()
    return out


def run(b):
    pairs = b.repeated_seed_pairs(b.s["train_pairs"])
    timed_epochs = b.s["train_timed_epochs"]
    from domain_tune.training.fit import FitOptions

    default_bucket = FitOptions().bucket_by_length
    # every optimizer x batch size with fit's defaults, and batch 64 with the other batching
    configs = [(o, bs, default_bucket) for o in OPTIMIZERS for bs in TRAIN_BATCHES]
    configs += [(o, 64, not default_bucket) for o in OPTIMIZERS]
    results = []
    for k, strategy in enumerate(b.args.strategies):
        for optimizer, bs, bucket in configs:
            if k > 0 and bucket != default_bucket:
                continue  # the batching comparison once, for the first strategy
            log(f"train: {strategy}, {optimizer}, batch {bs}, bucket_by_length={bucket}: "
                f"{len(pairs)} pairs, 1 + {timed_epochs} epochs")
            wait_for_quiet("train", b.s["quiet_wait"])
            r = train_config(b, pairs, strategy, optimizer, bs, timed_epochs, bucket)
            results.append(r)
            log(f"train: {r['pairs_per_s']:.1f} pairs/s "
                f"({r['pairs_per_s_steps_only']:.1f} without the checkpoint)")
    rows, targets = [], []
    for r in results:
        batching = "length-bucketed" if r["bucket_by_length"] else "random"
        if r["bucket_by_length"] == default_bucket:
            batching += " (default)"
        rows.append([r["strategy"], r["optimizer"], str(r["batch_size"]), batching,
                     f"{r['trainable_weights']:,}", fmt(r["first_epoch_seconds"], 1),
                     fmt(median(r["epoch_seconds"]), 2), fmt(r["pairs_per_s"], 1),
                     fmt(r["pairs_per_s_steps_only"], 1)])
        if (r["batch_size"] == 64 and r["bucket_by_length"] == default_bucket
                and (r["strategy"] == "trainable" or r["strategy"].startswith("semi-frozen"))):
            semi = r["strategy"].startswith("semi-frozen")
            goal = TARGETS["train_pairs_per_s_64_semi_frozen" if semi else "train_pairs_per_s_64"]
            targets.append({
                "name": f"training throughput, batch 64, {r['strategy']} embedding, "
                        f"{r['optimizer']}",
                "target": f">= {goal:.0f} pairs/s", "measured": f"{r['pairs_per_s']:.1f} pairs/s",
                "met": r["pairs_per_s"] >= goal})
    if not any(r["strategy"].startswith("semi-frozen") for r in results):
        targets.append({"name": "training throughput, batch 64, semi-frozen embedding",
                        "target": f">= {TARGETS['train_pairs_per_s_64_semi_frozen']:.0f} pairs/s",
                        "measured": "not measured (strategy not wired yet; see STRATEGIES hook)",
                        "met": None})
    notes = [
        f"Pairs: the seed sample ({len(b.seed_pairs())} pairs) repeated and shuffled to "
        f"{len(pairs)}; `compile_siamese` + `fit` (FitOptions defaults but the optimizer, batch "
        "size and batching, monitor=loss, no validation, verbose=0) with a callback timing "
        "epochs; a fresh `load_model(\"use-m3\")` per row. Targets are judged on fit's default "
        f"batching (bucket_by_length={default_bucket}); batch 64 is also run with the other.",
        f"Steady state: median over epochs 2..{1 + timed_epochs} ({timed_epochs} epochs; epoch 1 "
        "traces the train function and is shown apart). `pairs/s` is what `fit` delivers: "
        "epoch wall time, including the per-epoch checkpoint `fit` writes (the last state, and "
        "the best weights when the loss improves). `steps only` stops the clock at the end of "
        "the epoch's last batch.",
        "adam: Keras Adam, dense update of the whole table and both moment tables every step; "
        "lazy-adam: updates only the rows of the batch (domain_tune.training.optimizers).",
        "Strategies: " + ", ".join(b.args.strategies)
        + ". `trainable`: the preset's embedding layer (`domain_tune.models.layers.Embedding`: "
        "Keras `Embedding` reading only the batch's rows with a ResourceGather, a choice "
        "`compile_siamese` turns off under adam through `use_sparse_reads`), all 65.5M table "
        "weights trainable. "
        "Others: `domain_tune.models.semi_frozen.with_strategy(encoder, name)` on the preset; "
        "with no added vocabulary rows (none here) `semi-frozen` and `frozen` both keep the "
        "whole pretrained table frozen, so they train the same weights (the rest of the "
        "encoder). The batching comparison (batch 64, random batches) is run for the first "
        "strategy only.",
    ]
    return section_result(
        "4. Training throughput (pairs/s, steady state)",
        ["embedding", "optimizer", "batch", "batches", "trainable weights", "epoch 1 s (tracing)",
         "epoch s (median)", "pairs/s", "pairs/s steps only"], rows, notes, {"configs": results},
        targets=targets)
