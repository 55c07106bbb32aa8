"""Does fine-tuning on ESCO pairs improve the domain and keep general quality?

Builds the ESCO pairs (``domain-tune pairs esco``, 20% of occupations held
out: none of their labels is in any training pair), trains with the recipe
below, and evaluates the base, the tuned model and their weight interpolation
(``--interpolate``, WiSE-FT) on

* held-out retrieval: each alternative label of a held-out occupation ranks
  all 2,942 preferred labels; top-1 / top-5 / top-10 accuracy and MRR;
* STS-B dev Pearson / Spearman (general quality).

Writes ``results/quality.md`` and ``results/quality.json`` (table, options,
data hashes, machine, date, wall time).

    python scripts/bench_quality.py            # the documented recipe
    python scripts/bench_quality.py --max-pairs 5000 --epochs 1   # a quick look
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

from domain_tune.datasets.pairs import sha256  # noqa: E402
from domain_tune.datasets.sts import load_split  # noqa: E402
from domain_tune.datasets.retrieval_set import read_retrieval_set  # noqa: E402
from domain_tune.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from domain_tune.evaluation.sts import evaluate_sts  # noqa: E402
from domain_tune.models.interpolation import interpolate  # noqa: E402
from domain_tune.models.loading import load_model  # noqa: E402
from domain_tune.training.embeddings import EmbeddingOptions  # noqa: E402
from domain_tune.training.fit import FitOptions  # noqa: E402
from domain_tune.training.run import TrainJob, train_run  # noqa: E402

# The documented recipe (see README "Domain adaptation on ESCO").
RECIPE = {
    "epochs": 3,
    "batch_size": 64,
    "learning_rate": 1e-4,
    "optimizer": "lazy-adam",
    "lr_schedule": "constant",
    "warmup": 0.0,
    "loss": "in-batch-symmetric",
    "embeddings": "trainable",
    "add_vocab": None,
    "negatives": 1,
    "synonym_pairs": 0,
    "related": 3,
    "descriptions": False,
    "hard_negatives": False,
    "holdout": 0.2,
    "validation_split": 0.05,
    "seed": 0,
    "interpolate": 0.8,  # also measure alpha * tuned + (1 - alpha) * base (WiSE-FT); 1: skip
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out-dir", default=str(ROOT / "results"))
    p.add_argument("--max-pairs", type=int, help="Train on a random subset of the pairs.")
    for key, value in RECIPE.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            p.add_argument(flag, default=None)
        elif isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            p.add_argument(flag, type=type(value), default=value)
    p.add_argument("--keep", help="Keep the pairs and the tuned model in this folder.")
    p.add_argument("--multilingual", default="all",
                   help="Languages of the multilingual STS panel (comma-separated, all or none).")
    p.add_argument("--multilingual-dir", default=str(ROOT.parent / "shared" / "data" / "stsb-multi-mt"))
    return p.parse_args()


def main():
    args = parse_args()
    started = time.perf_counter()
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    sts_dir = os.path.join(args.shared, "stsbenchmark")
    work = args.keep or tempfile.mkdtemp(prefix="bench-quality-")
    os.makedirs(work, exist_ok=True)
    pairs_dir = os.path.join(work, "pairs")
    command = [sys.executable, "-m", "domain_tune.cli", "pairs", "esco", esco, "--out", pairs_dir,
               "--holdout", str(args.holdout), "--seed", str(args.seed), "--negatives",
               str(args.negatives), "--related", str(args.related), "--overwrite"]
    if args.max_pairs:
        command += ["--max-pairs", str(args.max_pairs)]
    if args.descriptions:
        command += ["--descriptions"]
    if args.synonym_pairs:
        command += ["--synonym-pairs", str(args.synonym_pairs)]
    if args.hard_negatives:
        command += ["--hard-negatives"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    train_csv = os.path.join(pairs_dir, "train.csv")
    data = read_retrieval_set(os.path.join(pairs_dir, "heldout_queries.csv"),
                              os.path.join(pairs_dir, "corpus.csv"))
    dev = load_split("dev", sts_dir)

    def measure(model):
        r = evaluate_retrieval(model, data.queries, data.query_ids, data.corpus_labels,
                               data.corpus_ids)
        s = evaluate_sts(model, dev.sentences1, dev.sentences2, dev.scores)
        return {**{k: r[k] for k in ("n", "corpus", "top1", "top5", "top10", "mrr")},
                "sts_pearson": s["pearson"], "sts_spearman": s["spearman"]}

    print("measuring the base model", file=sys.stderr)
    base = measure(load_model("use-m3"))
    job = TrainJob(
        pairs_path=train_csv, out=os.path.join(work, "tuned"), sts=False, overwrite=True,
        validation_split=args.validation_split,
        fit=FitOptions(epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, optimizer=args.optimizer,
                       loss=args.loss, seed=args.seed, patience=args.epochs,
                       lr_schedule=args.lr_schedule, warmup=args.warmup),
        embeddings=EmbeddingOptions(strategy=args.embeddings, add_vocab=args.add_vocab),
        verbose=2,
    )
    train_start = time.perf_counter()
    metrics = train_run(job, echo=lambda line: print(line, file=sys.stderr))
    train_seconds = time.perf_counter() - train_start
    tuned = measure(load_model(job.out))
    interpolated = None
    if args.interpolate < 1.0:
        merged, _ = interpolate(load_model("use-m3"), load_model(job.out), args.interpolate)
        interpolated = measure(merged)
    result = {
        "base": base, "tuned": tuned, "interpolated": interpolated,
        "recipe": {k: getattr(args, k) for k in RECIPE} | {"max_pairs": args.max_pairs},
        "train_pairs": metrics["train_pairs"], "val_pairs": metrics["val_pairs"],
        "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "data": {"esco_sha256": sha256(esco), "train_csv_sha256": sha256(train_csv),
                 "sts_dev_sha256": sha256(os.path.join(sts_dir, "sts-dev.csv"))},
        "machine": {"arch": platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "scripts/bench_quality.py", *sys.argv[1:]]),
    }
    result["multilingual"] = multilingual_panels(args, job.out)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "quality.json"), "w") as f:
        json.dump(result, f, indent=2)
    report = render(result) + render_multilingual(result)
    pathlib.Path(args.out_dir, "quality.md").write_text(report, encoding="utf-8")
    print(report)


def multilingual_panels(args, tuned_dir):
    """The multilingual STS panel (mono, cross-lingual en-LANG, translation retrieval) of the
    base, the tuned and the interpolated model, on stsb-multi-mt dev."""
    from domain_tune.datasets.stsb_multi import file_name, load_multilingual
    from domain_tune.evaluation.multilingual import evaluate_panel

    if args.multilingual == "none":
        return None
    print("measuring the multilingual panel", file=sys.stderr)
    data = load_multilingual(args.multilingual_dir, "dev", args.multilingual)
    base, tuned = load_model("use-m3"), load_model(tuned_dir)
    panels = {"base": evaluate_panel(base, data), "tuned": evaluate_panel(tuned, data)}
    if args.interpolate < 1.0:
        panels["interpolated"] = evaluate_panel(interpolate(base, tuned, args.interpolate)[0], data)
    panels["sha256"] = {lang: sha256(os.path.join(data.folder, file_name(lang, "dev")))
                        for lang in [data.pivot, *data.languages]}
    return panels


def render_multilingual(r):
    from domain_tune.evaluation.multilingual import panel_markdown

    m = r.get("multilingual")
    if not m:
        return ""
    b = m["base"]
    text = f"""
## Multilingual STS-B dev (stsb-multi-mt, {b['n']} pairs per language)

Pearson of cosine similarity: mono per language, cross-lingual with sentence 1 in English and
sentence 2 in LANG; translation retrieval accuracy (both directions averaged). Base -> tuned:

{panel_markdown(b, m["tuned"])}
"""
    if m.get("interpolated"):
        text += f"""
Base -> interpolated (alpha {r['recipe']['interpolate']:g}):

{panel_markdown(b, m["interpolated"])}
"""
    hashes = ", ".join(f"{lang} `{h[:12]}`" for lang, h in m["sha256"].items())
    return text + f"\nData sha256 (first 12 hex digits of stsb-LANG-dev.csv): {hashes}.\n"


def _verdict(m):
    top1 = "met" if m["top1"] >= 0.70 else "not met"
    sts = "met" if m["sts_pearson"] >= 0.82 else "not met"
    return f"held-out top-1 >= 0.70 ({top1}); STS-B dev Pearson >= 0.82 ({sts})"


def render(r):
    b, t, w = r["base"], r["tuned"], r.get("interpolated")
    alpha = r["recipe"].get("interpolate")
    rows = [
        ("held-out ESCO top-1", "top1"), ("held-out ESCO top-5", "top5"),
        ("held-out ESCO top-10", "top10"), ("held-out ESCO MRR", "mrr"),
        ("STS-B dev Pearson", "sts_pearson"), ("STS-B dev Spearman", "sts_spearman"),
    ]
    head = "| metric | base (use-m3) | tuned | change |"
    rule = "| --- | --- | --- | --- |"
    if w:
        head += f" interpolated (alpha {alpha:g}) | change |"
        rule += " --- | --- |"
    lines = []
    for label, k in rows:
        line = f"| {label} | {b[k]:.4f} | {t[k]:.4f} | {t[k] - b[k]:+.4f} |"
        if w:
            line += f" {w[k]:.4f} | {w[k] - b[k]:+.4f} |"
        lines.append(line)
    table = "\n".join([head, rule, *lines])
    recipe = ", ".join(f"{k} {v}" for k, v in r["recipe"].items() if v is not None)
    targets = f"Targets, tuned: {_verdict(t)}."
    if w:
        targets += f"\nInterpolated: {_verdict(w)}."
        targets += (f"\n\nInterpolated: every weight alpha * tuned + (1 - alpha) * base "
                    f"(`domain-tune interpolate --alpha {alpha:g}`, WiSE-FT).")
    return f"""# Domain adaptation on ESCO: base vs tuned

{table}

{targets}

- Held-out queries: {b['n']} distinct alternative labels of the {r['recipe']['holdout']:.0%} of
  occupations held out (no label of theirs is in any training pair), ranked against all {b['corpus']}
  occupations' preferred labels.
- Training: {r['train_pairs']} pairs ({r['val_pairs']} more for validation), {r['epochs_run']} epochs
  (best {r['best_epoch']}), {r['train_seconds']:.0f} s; whole benchmark {r['wall_seconds']:.0f} s.
- Recipe: {recipe}.
- Data: ESCO occupations sha256 `{r['data']['esco_sha256']}`; training pairs sha256
  `{r['data']['train_csv_sha256']}`; STS-B dev sha256 `{r['data']['sts_dev_sha256']}`.
- Machine: {r['machine']['arch']}, {r['machine']['cores']} cores, Python {r['machine']['python']};
  {r['date']}; command `{r['command']}`.
"""


if __name__ == "__main__":
    main()
