"""Section ``profile``: where the time of one batch goes.

Per stage of the encoder (tokenize, embedding gather, n-gram projection, convolutions,
pooling, DNN) on one inference batch and one training batch; backward pass; optimizer
apply; copy-on-read of the table after a sparse update; padding of an epoch's batches;
the per-epoch checkpoint of ``fit``; and what-ifs (a packed forward without padding, an
XLA-compiled backbone, batch-1 call overhead).  The table is written by ``profile_table``.

    python -m scripts.bench_speed.details --sections profile
"""

import gc
import os
import tempfile

from scripts.bench_speed.details import profile_table
from scripts.bench_speed.details.common import median_time, medians, wait_for_quiet
from scripts.bench_speed.details.encoder_parts import STAGES, backbone_prefix, packed_forward
from scripts.bench_speed.details.settings import OPTIMIZERS, TRAIN_BATCHES
from scripts.bench_speed.harness import log


def prefix_fns(model):
    """One traced function per stage: the encoder up to and including it, summed."""
    import tensorflow as tf

    tok, bb = model.tokenizer, model.backbone

    def prefix_fn(k):
        @tf.function(reduce_retracing=True)
        def f(texts):
            inputs = tok(texts)
            if k == 0:
                return tf.reduce_sum(inputs["token_ids"])
            return tf.add_n([tf.reduce_sum(o) for o in backbone_prefix(bb, inputs, k)])

        return f

    return [prefix_fn(k) for k in range(len(STAGES))]


def stage_times(prefixes, texts, reps):
    """Cumulative and per-stage seconds; round-robin over the prefixes, so that a burst of
    load elsewhere hits all of them."""
    timed_medians = medians({k: (lambda f=f: f(texts)) for k, f in enumerate(prefixes)}, reps)
    cum = [timed_medians[k] for k in range(len(prefixes))]
    return cum, [cum[0]] + [cum[i] - cum[i - 1] for i in range(1, len(cum))]


def step_fn(model, forward):
    """A traced forward + gradient of the encoder's trainable variables."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def f(texts):
        with tf.GradientTape() as tape:
            y = forward(texts)
            n = tf.shape(y)[0] // 2
            loss = tf.reduce_sum(y[:n] * y[n:])
        return tape.gradient(loss, model.trainable_variables)

    return f


def optimizer_apply(grads, one_t, reps):
    """Optimizer apply on a batch's whole gradient, on a fresh copy of the model; around it,
    the one-text call with the library's read of the table and with the read it replaced.

    The library's read is a ResourceGather of the rows; the read it replaced is Keras
    Embedding's `ops.take` on the Keras variable, which reads the whole variable (on the
    tf.Variable itself `ops.take` would be a ResourceGather too).  A sparse update or read
    switches the table to TensorFlow's copy-on-read mode for good, so the `ops.take` read and
    Adam's dense update come first, while the table is in normal mode.
    """
    import numpy as np
    import tensorflow as tf
    from keras import ops

    from domain_tune.embedding import inference_fn
    from domain_tune.models.loading import load_model
    from domain_tune.training.optimizers import make_optimizer

    fresh = load_model("use-m3")
    fresh_fn = inference_fn(fresh)  # the library's read (the layer's default)
    table = fresh.backbone.token_embedding.embeddings  # the Keras variable
    dense_read = tf.function(lambda t: backbone_prefix(
        fresh.backbone, fresh.tokenizer(t), 5,
        lookup=lambda ids: ops.take(table, ids, axis=0))[0])
    one_call = {"ops.take": lambda: dense_read(one_t).numpy(),
                "library": lambda: fresh_fn(one_t).numpy()}
    # keys: "before", "after_<optimizer>": the `ops.take` read; "..._sparse_read": the library's
    copy_on_read = {"before": medians({"d": one_call["ops.take"]}, 5 * reps)["d"]}
    apply_s = {}
    for name in OPTIMIZERS:  # adam first: its dense update leaves the table in normal mode
        opt = make_optimizer(name, 1e-9, 0.9, 0.9999, 1e-7, 1.0)
        opt.build(fresh.trainable_variables)

        @tf.function
        def apply(g, opt=opt):
            opt.apply(g, fresh.trainable_variables)

        apply_s[name] = median_time(lambda: apply(grads), reps)
        copy_on_read[f"after_{name}"] = medians({"d": one_call["ops.take"]}, 5 * reps)["d"]
        copy_on_read[f"after_{name}_sparse_read"] = medians(
            {"s": one_call["library"]}, 5 * reps)["s"]
        del opt
    copy_on_read["sparse_read_max_abs_difference"] = float(
        np.abs(dense_read(one_t).numpy() - fresh_fn(one_t).numpy()).max())
    del fresh, fresh_fn, table, dense_read, one_call
    gc.collect()
    return apply_s, copy_on_read


def epoch_padding(tok, pairs, lengths_chars):
    """Real tokens and padded slots of an epoch's batches, with and without length bucketing."""
    import tensorflow as tf

    from domain_tune.training.fit import epoch_batches

    lengths = tok(tf.constant(pairs.base + pairs.ref))["padding_mask"].numpy().sum(1)
    padding = {}
    for bs in TRAIN_BATCHES:
        padding[bs] = {}
        for name, on in (("bucketed (fit default)", True), ("random (--no-bucket)", False)):
            batches = epoch_batches(lengths_chars, bs, 42, 1, on)
            real = int(sum(lengths[ix].sum() + lengths[len(pairs) + ix].sum() for ix in batches))
            slots = int(sum(2 * len(ix) * max(lengths[ix].max(), lengths[len(pairs) + ix].max())
                            for ix in batches))
            padding[bs][name] = {"real": real, "slots": slots}
    return padding


def checkpoint_writes(pairs, ix):
    """The per-epoch checkpoint of fit (TrainingState): the last state (trainable weights and
    optimizer variables) and the best weights (the encoder's trainable weights)."""
    import tensorflow as tf

    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese
    from domain_tune.training.state_io import save_variables

    options = FitOptions(batch_size=64)
    siamese = compile_siamese(load_model("use-m3"), options)
    siamese.train_on_batch({"base": tf.constant([pairs.base[i] for i in ix]),
                            "ref": tf.constant([pairs.ref[i] for i in ix])},
                           tf.constant(pairs.similarity[ix]))
    ckpt = {}
    state = {"last": list(siamese.trainable_weights) + list(siamese.optimizer.variables),
             "best": siamese.encoder.trainable_weights}
    with tempfile.TemporaryDirectory() as tmp:
        for name, variables in state.items():
            path = os.path.join(tmp, f"{name}.h5")
            seconds = median_time(lambda variables=variables, path=path: save_variables(
                path, variables, options.optimizer != "adam"), 3)
            ckpt[name] = {"seconds": seconds, "mb": os.path.getsize(path) / 1024**2}
    del siamese, state
    gc.collect()
    return ckpt


def run(b):
    import numpy as np
    import tensorflow as tf

    from domain_tune.embedding import encode, inference_fn
    from domain_tune.training.fit import FitOptions, epoch_batches, pair_lengths

    reps = max(7, b.s["reps"])
    wait_for_quiet("profile", b.s["quiet_wait"])
    model = b.model
    tok, bb = model.tokenizer, model.backbone
    prefixes = prefix_fns(model)

    # (a) one inference batch of 256 STS-B dev sentences, as encode makes them (length-sorted)
    sents = b.dev_sentences()
    order = np.argsort([len(t) for t in sents], kind="stable")
    mid = len(order) // 2 - 128
    infer_texts = tf.constant([sents[i] for i in order[mid : mid + 256]])
    reference = model(infer_texts).numpy()
    check = float(np.abs(backbone_prefix(bb, tok(infer_texts), 5)[0].numpy() - reference).max())
    log("profile: inference stages")
    inf_cum, inf_split = stage_times(prefixes, infer_texts, reps)
    infer_mask = tok(infer_texts)["padding_mask"].numpy()

    # (b) one training batch of 64 seed pairs (128 texts through the encoder), as fit makes it
    # (FitOptions defaults: length-bucketed batches)
    pairs = b.repeated_seed_pairs(b.s["train_pairs"])
    bucket = FitOptions().bucket_by_length
    lengths_chars = pair_lengths(pairs)
    batches64 = epoch_batches(lengths_chars, 64, 42, 1, bucket)

    def texts_of(idx):
        return [pairs.base[i] for i in idx] + [pairs.ref[i] for i in idx]

    widths = [tok(tf.constant(texts_of(ix)))["padding_mask"].shape[1] for ix in batches64]
    train_idx = batches64[int(np.argsort(widths)[len(widths) // 2])]  # the median-width batch
    train_texts = tf.constant(texts_of(train_idx))
    train_mask = tok(train_texts)["padding_mask"].numpy()
    log("profile: training-batch stages (forward), forward + backward")
    tr_cum, tr_split = stage_times(prefixes, train_texts, reps)
    padded_step = step_fn(model, lambda t: model(t, training=True))
    fwd_bwd = median_time(lambda: padded_step(train_texts), reps)

    # (c) prototype without padding, same weights: outputs and time
    log("profile: packed (no padding) prototype")
    packed = tf.function(lambda t: packed_forward(model, t), reduce_retracing=True)
    packed_check = max(
        float(np.abs(packed(infer_texts).numpy() - reference).max()),
        float(np.abs(packed(train_texts).numpy() - model(train_texts).numpy()).max()))
    packed_step = step_fn(model, lambda t: packed_forward(model, t))
    padded = tf.function(lambda t: model(t), reduce_retracing=True)
    proto = medians({
        "inference_padded_s": lambda: padded(infer_texts),
        "inference_packed_s": lambda: packed(infer_texts),
        "train_forward_padded_s": lambda: padded(train_texts),
        "train_forward_packed_s": lambda: packed(train_texts),
        "train_fwd_bwd_padded_s": lambda: padded_step(train_texts),
        "train_fwd_bwd_packed_s": lambda: packed_step(train_texts),
    }, reps)
    epoch_texts = [tf.constant(texts_of(ix)) for ix in batches64]
    proto.update(medians({
        "train_epoch_padded_s": lambda: [padded_step(t) for t in epoch_texts],
        "train_epoch_packed_s": lambda: [packed_step(t) for t in epoch_texts],
    }, 3))
    proto["max_abs_difference"] = packed_check

    # (c') inference what-ifs: XLA-compiled backbone; compute rate of the convs vs a plain GEMM
    log("profile: XLA backbone, GEMM rate, batch-1 call overhead")
    infer_inputs = tok(infer_texts)
    bb_plain = tf.function(lambda i: bb(i))
    bb_xla = tf.function(lambda i: bb(i), jit_compile=True)
    xla_check = float(np.abs(bb_xla(infer_inputs).numpy() - reference).max())
    gemm_a = tf.random.normal([int(infer_mask.size), 1280])
    gemm_w = tf.random.normal([1280, 256])
    gemm = tf.function(lambda: tf.matmul(gemm_a, gemm_w))
    xla = medians({"backbone_s": lambda: bb_plain(infer_inputs),
                   "backbone_xla_s": lambda: bb_xla(infer_inputs),
                   "gemm_s": gemm}, reps)
    conv_flop = infer_mask.size * sum(2 * n for n in bb.ngram_orders) * bb.ngram_dim ** 2 * 2
    rates = {"conv_gflops": conv_flop / inf_split[STAGES.index("n-gram convs (6)")] / 1e9,
             "gemm_gflops": infer_mask.size * 1280 * 256 * 2 / xla["gemm_s"] / 1e9}
    # batch 1: what one call costs (encode, the traced call alone, an empty traced call)
    one = [sents[int(order[len(order) // 2])]]
    infer_fn = inference_fn(model)
    empty = tf.function(lambda t: tf.zeros([1, 512]))
    one_t = tf.constant(one)
    batch1 = medians({"encode_s": lambda: encode(model, one, batch_size=1),
                      "traced_call_s": lambda: infer_fn(one_t).numpy(),
                      "empty_traced_call_s": lambda: empty(one_t).numpy()}, 5 * reps)

    # (c'') optimizer apply on that batch's whole gradient; copy-on-read of the table
    log("profile: optimizer apply; copy-on-read of the table after a sparse update")
    apply_s, copy_on_read = optimizer_apply(padded_step(train_texts), one_t, reps)
    log("profile: optimizer apply "
        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in apply_s.items()))

    # (d) padding of an epoch's batches, with and without fit's length bucketing
    padding = epoch_padding(tok, pairs, lengths_chars)

    # (e) the per-epoch checkpoint of fit
    log("profile: checkpoint writes")
    ckpt = checkpoint_writes(pairs, batches64[0])

    data = {"inference_cumulative_s": inf_cum, "inference_stage_s": inf_split,
            "training_forward_cumulative_s": tr_cum, "training_forward_stage_s": tr_split,
            "training_fwd_bwd_s": fwd_bwd, "optimizer_apply_s": apply_s, "checkpoint": ckpt,
            "padding": {str(k): v for k, v in padding.items()}, "bucketed_batches": bucket,
            "what_if_packed": proto, "what_if_xla": xla,
            "xla_max_abs_difference": xla_check, "compute_rates": rates, "batch1": batch1,
            "copy_on_read": copy_on_read,
            "prefix_check_max_abs": check, "stages": list(STAGES),
            "inference_batch_shape": list(infer_mask.shape),
            "training_batch_shape": list(train_mask.shape),
            "inference_real_fraction": float(infer_mask.mean()),
            "training_real_fraction": float(train_mask.mean())}
    return profile_table.section(data, reps, len(batches64))
