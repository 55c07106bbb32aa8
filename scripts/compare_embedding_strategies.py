"""Train the four embedding strategies on the same domain pairs and compare them.

Same pairs, seed, recipe and budget for each of ``trainable``, ``frozen``,
``semi-frozen`` and ``random`` (all with ``--add-vocab auto``).  Reports per
strategy the best validation loss, STS-B dev Pearson after training, domain
retrieval top-1 / MRR on held-out occupations, the number of frozen rows that
changed, and the training time; writes ``results/embedding_strategies.md`` and
``results/embedding_strategies.png`` (train loss solid, validation dashed).

Domain pairs: ESCO occupations of ISCO groups 25, 351 and 1330 (ICT), built
with ``domain-tune pairs esco`` (held-out occupations for retrieval); without
ESCO, the article's sample pairs (no retrieval figure).

    python scripts/compare_embedding_strategies.py [--epochs 5] [--learning-rate 5e-5]
"""

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

from domain_tune.datasets.retrieval_set import read_retrieval_set  # noqa: E402
from domain_tune.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from domain_tune.models.loading import load_model  # noqa: E402
from domain_tune.plotting import plot_history  # noqa: E402
from domain_tune.training.embeddings import EmbeddingOptions  # noqa: E402
from domain_tune.training.fit import FitOptions  # noqa: E402
from domain_tune.training.run import TrainJob, train_run  # noqa: E402

STRATEGIES = ("trainable", "frozen", "semi-frozen", "random")


def build_pairs(shared, work):
    esco = os.path.join(shared, "esco", "occupations_en.csv")
    if not os.path.isfile(esco):
        return os.path.join(shared, "seed-sample", "training_data.csv"), None
    out = os.path.join(work, "esco_ict")
    subprocess.run([sys.executable, "-m", "domain_tune.cli", "pairs", "esco", esco,
                    "--only-groups", "25,351,1330", "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(out, "train.csv"), out


def retrieval(model, pairs_dir):
    if pairs_dir is None:
        return None
    data = read_retrieval_set(os.path.join(pairs_dir, "heldout_queries.csv"),
                              os.path.join(pairs_dir, "corpus.csv"))
    return evaluate_retrieval(model, data.queries, data.query_ids, data.corpus_labels,
                              data.corpus_ids)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    sts_dir = os.path.join(args.shared, "stsbenchmark")
    rows, histories = [], {}
    with tempfile.TemporaryDirectory() as work:
        pairs, pairs_dir = build_pairs(args.shared, work)
        base = retrieval(load_model("use-m3"), pairs_dir)
        for strategy in STRATEGIES:
            print(f"== {strategy}", file=sys.stderr)
            job = TrainJob(
                pairs_path=pairs, out=os.path.join(work, strategy), sts_dir=sts_dir,
                fit=FitOptions(epochs=args.epochs, batch_size=args.batch_size,
                               learning_rate=args.learning_rate, seed=args.seed,
                               patience=args.epochs),
                embeddings=EmbeddingOptions(strategy=strategy, add_vocab="auto"),
                verbose=0,
            )
            start = time.perf_counter()
            metrics = train_run(job, echo=lambda line: print(line, file=sys.stderr))
            seconds = time.perf_counter() - start
            tuned = retrieval(load_model(job.out), pairs_dir)
            history = pd.read_csv(os.path.join(job.out, "history.csv")).to_dict("records")
            histories[strategy] = history
            rows.append({
                "strategy": strategy,
                "best_val_loss": min(r["val_loss"] for r in history),
                "sts_before": metrics["sts"]["before"]["pearson"],
                "sts_after": metrics["sts"]["after"]["pearson"],
                "top1": tuned["top1"] if tuned else None,
                "mrr": tuned["mrr"] if tuned else None,
                "new_rows": metrics["embeddings"]["new_rows"],
                "frozen_changed": metrics["embeddings"]["frozen_rows_changed"],
                "seconds": seconds,
            })
        os.makedirs(args.out_dir, exist_ok=True)
        png = os.path.join(args.out_dir, "embedding_strategies.png")
        plot_history(histories, png, title="Embedding strategies: MSE per epoch "
                     "(solid train, dashed validation)")
        write_report(args, rows, base, pairs, pairs_dir, os.path.join(args.out_dir,
                                                                      "embedding_strategies.md"))


def _f(x, fmt="{:.4f}"):
    return "n/a" if x is None else fmt.format(x)


def write_report(args, rows, base, pairs, pairs_dir, path):
    lines = [
        "# Embedding strategies on the same domain pairs",
        "",
        f"Pairs: {'ESCO ICT occupations (ISCO 25, 351, 1330), `domain-tune pairs esco --only-groups 25,351,1330`' if pairs_dir else os.path.relpath(pairs, ROOT)}; "
        f"recipe: {args.epochs} epochs, batch {args.batch_size}, Adam lr {args.learning_rate:g}, "
        f"seed {args.seed}, `--add-vocab auto`, MSE.",
        "",
        "| strategy | best val loss | STS-B dev Pearson (before -> after) | held-out top-1 | MRR | "
        "new rows | frozen rows changed | train time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if base:
        lines.append(f"| base model (no training) | | {_f(rows[0]['sts_before'])} | {_f(base['top1'])} | "
                     f"{_f(base['mrr'])} | | | |")
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {_f(r['best_val_loss'], '{:.5f}')} | {_f(r['sts_before'])} -> "
            f"{_f(r['sts_after'])} | {_f(r['top1'])} | {_f(r['mrr'])} | {r['new_rows']} | "
            f"{_f(r['frozen_changed'], '{}')} | {r['seconds']:.0f} |"
        )
    lines += [
        "",
        "Loss curves: `results/embedding_strategies.png`. Train time includes the STS-B checks, "
        "saving and export.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"{datetime.date.today()}; command: `python scripts/compare_embedding_strategies.py "
        f"--epochs {args.epochs} --batch-size {args.batch_size} --learning-rate {args.learning_rate:g}`.",
    ]
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
