"""What the detailed sections run: section names, input sizes of a full and a --quick run,
the targets they are judged against, the embedding strategies of the train section."""

SECTIONS = ("throughput", "sts", "cold", "train", "memory", "scaling", "profile")
BATCHES = (1, 32, 256)
TRAIN_BATCHES = (8, 64)
OPTIMIZERS = ("adam", "lazy-adam")

# Settings of a full run and of --quick.
FULL = {
    "reps": 3,  # repetitions of every timed figure (median reported)
    "throughput_reps": 5,  # cheap, and the reference is fragile under load (see section 1)
    "throughput_texts": None,  # None: all 3,000 STS-B dev sentences
    "batch1_texts": 300,  # batch 1 is timed on the first N of them (both implementations)
    "sts_pairs": None,  # None: all 1,500 dev pairs
    "predict_pairs": 100,  # the model.predict variant of the article's method: first N pairs
    "train_pairs": 512,
    "train_timed_epochs": 3,  # after one warm-up epoch (tracing)
    "memory_train_epochs": 2,
    "memory_embed_lines": (10_000, 100_000),
    "scaling_pairs": (1_000, 10_000, 50_000),
    "scaling_eval_reps": (3, 3, 1),
    "scaling_train_steps": 8,  # steps per timed chunk (per-epoch time extrapolated from it)
    "scaling_train_chunks": 3,
    "quiet_wait": 60,  # seconds to wait for other processes to go quiet before a repetition
}
QUICK = {
    "reps": 2,
    "throughput_reps": 3,
    "throughput_texts": 1000,
    "batch1_texts": 100,
    "sts_pairs": 150,
    "predict_pairs": 20,
    "train_pairs": 256,
    "train_timed_epochs": 2,
    "memory_train_epochs": 1,
    "memory_embed_lines": (2_000, 20_000),
    "scaling_pairs": (1_000, 5_000),
    "scaling_eval_reps": (2, 2),
    "scaling_train_steps": 4,
    "scaling_train_chunks": 2,
    "quiet_wait": 10,
}

TARGETS = {
    "throughput_ratio_256": 1.5,
    "sts_speedup": 30.0,
    "sts_pearson_tolerance": 1e-4,
    "cold_start_seconds": 10.0,
    "train_pairs_per_s_64": 100.0,
    "train_pairs_per_s_64_semi_frozen": 150.0,
    "train_peak_rss_gb": 3.0,
}


def _identity(encoder):
    return encoder


# Embedding strategies of the train section: name -> function(encoder) -> the encoder to train.
# HOOK: adding a strategy is one line here; it is then run by default and selectable with
# --strategies.  "trainable" is the preset's domain_tune.models.layers.Embedding (the whole
# 128,000 x 512 table trainable); the others go through
# domain_tune.models.semi_frozen.with_strategy.  Targets: "trainable" >= 100 pairs/s at
# batch 64, names starting with "semi-frozen" >= 150.
STRATEGIES = {
    "trainable": _identity,
    "semi-frozen": lambda enc: _semi_frozen().with_strategy(enc, "semi-frozen"),
    "frozen": lambda enc: _semi_frozen().with_strategy(enc, "frozen"),
}


def _semi_frozen():  # imported only when a strategy above uses it
    from domain_tune.models import semi_frozen

    return semi_frozen
