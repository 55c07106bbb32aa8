"""Compare the four embedding strategies where a domain vocabulary matters.

The question: when a domain brings many words that the pretrained vocabulary
splits badly, does keeping the pretrained rows frozen while the new rows train
(``semi-frozen``) beat random rows (``random``), frozen rows initialised from
their pieces (``frozen``) and unfreezing the whole table (``trainable``)?

Data: ESCO occupations of technical ISCO groups (default 21, 25, 31, 35:
science, engineering and ICT professionals and associate professionals), pairs
built by :func:`domain_tune.datasets.taxonomy.build_pairs` (what ``domain-tune
pairs esco --only-groups ...`` does), a random subset of ``--max-pairs``
training pairs (80 % train, 20 % validation) and the first ``--queries``
held-out occupation queries for retrieval.  Domain vocabulary: every word of
the training split seen at least twice that the model splits into
``--min-pieces`` or more pieces, at most ``--max-new-pieces`` (the term list
goes to ``--add-vocab``).

Settings (``--settings``): the embeddings doing the work (``--freeze-encoder``,
only the table trains; lr 3e-4 and 3e-3) and the whole model training (lr
1e-5, 3e-4, 3e-3): learning rates from the article's 1e-5 to the original
experiment's 3e-3.  Every setting trains the four strategies from the same
data, seed and batches, for ``--epochs`` epochs (no early stopping; the
reported model is the best validation epoch's, as ``train`` restores it).
The whole-model settings at 1e-5 and 3e-4 also train a reference without new
pieces (does adding them pay at all?).

Per setting and strategy: train and validation loss per epoch (epoch 0 is the
starting point), held-out retrieval top-1 / MRR, STS-B dev Pearson (first
``--sts-limit`` pairs), how far the pretrained rows moved (L2 norm of each
row's change: mean and max over the rows the training texts use, and over all
rows) and how far the new rows moved.

Writes ``results/embedding_strategies.md``, ``results/embedding_strategies.png``
(a panel per setting) and ``results/embedding_strategies.json``.  Each
(setting, strategy) result is cached as JSON in ``--cache-dir`` (keyed by
every option that changes it), so a run that is cut off resumes where it
stopped; ``--fresh`` ignores the cache.

    python scripts/compare_embedding_strategies.py
"""

import argparse
import datetime
import gc
import hashlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

from domain_tune.datasets.pairs import read_pairs, split_pairs  # noqa: E402
from domain_tune.datasets.sts import load_split  # noqa: E402
from domain_tune.datasets.pairs_folder import write_pairs  # noqa: E402
from domain_tune.datasets.retrieval_set import read_retrieval_set  # noqa: E402
from domain_tune.datasets.taxonomy import only_groups, read_esco  # noqa: E402
from domain_tune.datasets.taxonomy_pairs import build_pairs  # noqa: E402
from domain_tune.evaluation.retrieval import evaluate_retrieval  # noqa: E402
from domain_tune.evaluation.sts import evaluate_sts  # noqa: E402
from domain_tune.models.layers import use_sparse_reads  # noqa: E402
from domain_tune.models.loading import load_model  # noqa: E402
from domain_tune.models.semi_frozen import split_table, with_strategy  # noqa: E402
from domain_tune.models.vocabulary import mine_terms  # noqa: E402
from domain_tune.seeding import seed_everything  # noqa: E402
from domain_tune.training.embeddings import EmbeddingOptions, prepare_encoder  # noqa: E402
from domain_tune.training.fit import FitOptions, compile_siamese, evaluate, fit  # noqa: E402
from domain_tune.training.optimizers import sparse_table_access  # noqa: E402

STRATEGIES = ("trainable", "semi-frozen", "frozen", "random")
# the reference where the whole model trains at a workable rate: the same training
# without new pieces (the question whether to add them at all)
NO_VOCAB = "no new pieces"
NO_VOCAB_SETTINGS = ("whole-1e-5", "whole-3e-4")
COLORS = {"trainable": "tab:blue", "semi-frozen": "tab:red", "frozen": "tab:green",
          "random": "tab:gray", NO_VOCAB: "black"}
# name: (freeze_encoder, learning_rate)
SETTINGS = {
    "table-3e-4": (True, 3e-4),
    "table-3e-3": (True, 3e-3),
    "whole-1e-5": (False, 1e-5),
    "whole-3e-4": (False, 3e-4),
    "whole-3e-3": (False, 3e-3),
}
CACHE_VERSION = 1
TIE = 0.01  # validation losses within 1 % count as a tie in the summary


def strategies_of(setting):
    """The four strategies, and the no-new-pieces reference in :data:`NO_VOCAB_SETTINGS`."""
    return (*STRATEGIES, NO_VOCAB) if setting in NO_VOCAB_SETTINGS else STRATEGIES


def setting_label(name):
    freeze, lr = SETTINGS[name]
    return f"{'embeddings only (--freeze-encoder)' if freeze else 'whole model'}, lr {lr:g}"


# --- data -------------------------------------------------------------------------


def build_data(args, work):
    """Pairs, retrieval set, STS subset and the term list, all under ``work``."""
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    taxonomy = only_groups(read_esco(esco), args.groups.split(","))
    pairset = build_pairs(taxonomy, max_pairs=args.max_pairs, seed=args.pairs_seed)
    pairs_dir = os.path.join(work, "pairs")
    write_pairs(pairset, pairs_dir)
    pairs = read_pairs(os.path.join(pairs_dir, "train.csv"))
    train, val = split_pairs(pairs, 0.2, args.seed)
    retrieval = read_retrieval_set(os.path.join(pairs_dir, "heldout_queries.csv"),
                                   os.path.join(pairs_dir, "corpus.csv"), limit=args.queries)
    sts = load_split("dev", os.path.join(args.shared, "stsbenchmark"), args.sts_limit)
    all_pairs = pairset.stats["train_pairs"] + pairset.stats["dropped_max_pairs"]
    return {"taxonomy": taxonomy, "train": train, "val": val, "retrieval": retrieval,
            "sts": sts, "all_pairs": all_pairs}


def write_terms(data, tokenizer, args, work):
    texts = list(data["train"].base) + list(data["train"].ref)
    terms = mine_terms(texts, tokenizer, min_pieces=args.min_pieces,
                       max_new_pieces=args.max_new_pieces, min_count=2)
    path = os.path.join(work, "terms.txt")
    pathlib.Path(path).write_text("".join(t + "\n" for t in terms), encoding="utf-8")
    return path, terms


# --- measuring --------------------------------------------------------------------


def retrieval_metrics(model, data):
    r = data["retrieval"]
    out = evaluate_retrieval(model, r.queries, r.query_ids, r.corpus_labels, r.corpus_ids)
    return {"top1": out["top1"], "mrr": out["mrr"]}


def sts_pearson(model, data):
    s = data["sts"]
    return evaluate_sts(model, s.sentences1, s.sentences2, s.scores)["pearson"]


def used_ids(tokenizer, texts):
    ids = set()
    for row in tokenizer.tokenize(texts):
        ids.update(row)
    return np.array(sorted(ids), dtype=np.int64)


def row_change(before, after, rows=None):
    """Mean and max L2 norm of the per-row change (over ``rows``, or all)."""
    if rows is not None:
        before, after = before[rows], after[rows]
    if len(before) == 0:
        return {"mean": 0.0, "max": 0.0}
    norms = np.linalg.norm(after.astype(np.float64) - before.astype(np.float64), axis=1)
    return {"mean": float(norms.mean()), "max": float(norms.max())}


def run_strategy(base, setting, strategy, data, terms_path, args, state_dir):
    freeze, lr = SETTINGS[setting]
    started = time.perf_counter()
    seed_everything(args.seed)
    options = FitOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=lr,
                         seed=args.seed, patience=args.epochs, min_delta=0.0,
                         optimizer=args.optimizer)
    use_sparse_reads(base, sparse_table_access(options.optimizer))
    train, val = data["train"], data["val"]
    if strategy == NO_VOCAB:  # a copy: prepare_encoder would train ``base`` itself
        source, embeddings = with_strategy(base, "trainable"), EmbeddingOptions(
            strategy="trainable", freeze_encoder=freeze)
    else:
        source, embeddings = base, EmbeddingOptions(
            strategy=strategy, add_vocab=terms_path, max_new_pieces=args.max_new_pieces,
            freeze_encoder=freeze)
    encoder, added = prepare_encoder(source, embeddings, train.base + train.ref, args.seed)
    del source
    layer = encoder.backbone.token_embedding
    pre_before, new_before = split_table(layer)
    pre_before, new_before = pre_before.copy(), new_before.copy()
    siamese = compile_siamese(encoder, options, len(train))
    start = {"loss": evaluate(siamese, train)["loss"], "val_loss": evaluate(siamese, val)["loss"]}
    history = [{"epoch": 0, **start}]
    if siamese.trainable_weights:
        state = fit(siamese, train, val, options, state_dir, verbose=0)
        history += [{"epoch": r["epoch"], "loss": r["loss"], "val_loss": r["val_loss"]}
                    for r in state.history]
        best_epoch = state.best_epoch + 1
    else:  # frozen table and frozen encoder: nothing trains, every epoch is epoch 0
        history += [{"epoch": e, **start} for e in range(1, args.epochs + 1)]
        best_epoch = 0
    pre_after, new_after = split_table(layer)
    touched = used_ids(encoder.tokenizer, train.base + train.ref)
    touched_pre = touched[touched < len(pre_before)]
    result = {
        "setting": setting, "strategy": strategy, "history": history,
        "best_epoch": best_epoch,
        "best_val_loss": min(r["val_loss"] for r in history),
        "last_val_loss": history[-1]["val_loss"],
        "new_rows": len(added),
        "pretrained_rows_used": int(len(touched_pre)),
        "pretrained_change_used": row_change(pre_before, pre_after, touched_pre),
        "pretrained_change_all": row_change(pre_before, pre_after),
        "pretrained_row_norm": float(np.linalg.norm(pre_before[touched_pre], axis=1).mean()),
        "new_change": row_change(new_before, new_after),
        **retrieval_metrics(encoder, data),
        "sts": sts_pearson(encoder, data),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    del siamese, encoder, layer, pre_before, pre_after, new_before, new_after
    gc.collect()
    return result


# --- cache ------------------------------------------------------------------------


def cache_key(args, setting, strategy):
    keys = ("groups", "max_pairs", "pairs_seed", "queries", "sts_limit", "min_pieces",
            "max_new_pieces", "epochs", "batch_size", "seed", "optimizer")
    blob = json.dumps({"v": CACHE_VERSION, "setting": SETTINGS.get(setting, setting), "strategy": strategy,
                       **{k: getattr(args, k) for k in keys}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_path(args, setting):
    return os.path.join(args.cache_dir, f"{setting}.json")


def load_cached(args, setting, strategy):
    path = cache_path(args, setting)
    if args.fresh or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        entry = json.load(f).get(strategy)
    if entry and entry.get("key") == cache_key(args, setting, strategy):
        return entry["result"]
    return None


def store_cached(args, setting, strategy, result):
    path = cache_path(args, setting)
    os.makedirs(args.cache_dir, exist_ok=True)
    cached = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    cached[strategy] = {"key": cache_key(args, setting, strategy), "result": result}
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(cached, f, indent=1)
    os.replace(path + ".tmp", path)


# --- report -----------------------------------------------------------------------


def plot_settings(results, settings, path, base_val_loss=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    cols = 2 if len(settings) <= 4 else 3
    rows = (len(settings) + cols - 1) // cols
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.9 * rows), layout="constrained",
                             squeeze=False)
    # widest first, so that curves lying on top of each other stay visible as nested lines
    widths = {"frozen": 4.5, "trainable": 3.0, "semi-frozen": 1.6, "random": 2.0}
    for ax, setting in zip(axes.flat, settings):
        for strategy in ("frozen", "trainable", "semi-frozen", "random"):
            r = results[setting][strategy]
            epochs = [h["epoch"] for h in r["history"]]
            color, lw = COLORS[strategy], widths[strategy]
            ax.plot(epochs, [h["val_loss"] for h in r["history"]], color=color, lw=lw)
            ax.plot(epochs, [h["loss"] for h in r["history"]], color=color, lw=lw * 0.6, ls="--")
            ax.plot([r["best_epoch"]], [r["best_val_loss"]], "o", color=color, ms=6)
        if base_val_loss is not None:
            ax.axhline(base_val_loss, color="black", lw=1, ls="-.", alpha=0.6)
        ref = results[setting].get(NO_VOCAB)
        if ref:
            ax.plot([h["epoch"] for h in ref["history"]], [h["val_loss"] for h in ref["history"]],
                    color="black", lw=1.2, ls=":")
        ax.set_title(setting_label(setting), fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    handles = [Line2D([], [], color=COLORS[s], lw=2, label=s) for s in STRATEGIES]
    handles += [Line2D([], [], color="black", lw=1, ls=":",
                       label=f"{NO_VOCAB}, whole model (validation)")]
    if base_val_loss is not None:
        handles.append(Line2D([], [], color="black", lw=1, ls="-.", alpha=0.6,
                              label="base model, no new pieces, untrained (validation)"))
    handles += [Line2D([], [], color="black", lw=2, label="validation"),
                Line2D([], [], color="black", lw=1.3, ls="--", label="train"),
                Line2D([], [], color="black", marker="o", ls="", label="best validation epoch")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)
    fig.suptitle("Embedding strategies on ESCO technical occupations with new domain pieces: "
                 "MSE per epoch", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _f(x, fmt="{:.4f}"):
    return "n/a" if x is None else fmt.format(x)


def table_rows(results, settings):
    lines = [
        "| setting | strategy | best epoch | best val loss | last val loss | held-out top-1 | MRR | "
        "STS-B dev Pearson | pretrained rows moved, used rows: mean / max | all rows: mean / max | "
        "new rows moved: mean | time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for setting in settings:
        for strategy in strategies_of(setting):
            r = results[setting][strategy]
            used, allr, new = r["pretrained_change_used"], r["pretrained_change_all"], r["new_change"]
            lines.append(
                f"| {setting} | {strategy} | {r['best_epoch']} | {r['best_val_loss']:.5f} | "
                f"{r['last_val_loss']:.5f} | {r['top1']:.4f} | {r['mrr']:.4f} | {r['sts']:.4f} | "
                f"{used['mean']:.4f} / {used['max']:.4f} | {allr['mean']:.5f} / {allr['max']:.4f} | "
                f"{new['mean']:.4f} | {r['seconds']:.0f} |"
            )
    return lines


def lscpu_flags():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "n/a"
    for line in out.splitlines():
        if line.startswith("Flags:"):
            flags = line.split(":", 1)[1].split()
            return " ".join(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    return "n/a"


def write_report(args, results, settings, base, info, summary, path, elapsed):
    lines = [
        "# Embedding strategies where the domain vocabulary matters",
        "",
        "Question: when a domain brings many words that the pretrained vocabulary splits badly, does "
        "`--embeddings semi-frozen` (pretrained rows frozen, new rows train) beat `random`, `frozen` "
        "(new rows fixed at the mean of the pieces they replace) and `trainable` (whole table)?",
        "",
        "## Setup",
        "",
        f"- Pairs: ESCO occupations of ISCO groups {args.groups.replace(',', ', ')} "
        f"({info['occupations']} occupations; `domain-tune pairs esco occupations_en.csv "
        f"--only-groups {args.groups} --max-pairs {args.max_pairs}`, seed {args.pairs_seed}): "
        f"{info['train_pairs']} training and {info['val_pairs']} validation pairs "
        f"(a random subset of the {info['all_pairs']} pairs the groups give).",
        f"- Domain vocabulary: {info['new_rows']} new pieces, the words of the training split seen "
        f"at least twice that the model splits into {args.min_pieces} or more pieces "
        f"(`--add-vocab terms.txt --max-new-pieces {args.max_new_pieces}`), e.g. "
        f"{', '.join('`' + t + '`' for t in info['terms'][:8])}. {info['train_new_share']:.0%} of "
        f"the training texts and {info['query_new_share']:.0%} of the held-out queries contain at "
        "least one of them.",
        f"- Retrieval: the first {info['queries']} held-out occupation queries (alternative labels "
        f"of occupations never trained on) against the {info['corpus']} preferred labels; STS-B dev: "
        f"the first {args.sts_limit} pairs.",
        f"- Recipe: {args.epochs} epochs, batch {args.batch_size}, {args.optimizer} (clipnorm 1), "
        f"constant learning rate, MSE, seed {args.seed}; new rows start at the mean of their "
        "pieces (`--new-rows pieces`). Every epoch runs (no early stopping); the model measured "
        "is the best validation epoch's, which `train` restores.",
        "- Row change: the L2 norm of (row after - row before), mean and max over the "
        f"{info['pretrained_rows_used']} pretrained rows the training texts use and over all "
        f"{info['pretrained_rows']} rows; a used row's norm is {info['row_norm']:.3f} on average.",
        "",
        "## Summary",
        "",
        summary,
        "",
        "## Results",
        "",
        f"Base model, no training, no new pieces: validation loss {base['val_loss']:.5f}, held-out "
        f"top-1 {base['top1']:.4f}, MRR {base['mrr']:.4f}, STS-B dev Pearson {base['sts']:.4f}.",
        "",
        *table_rows(results, settings),
        "",
        "Settings: `table-LR` trains only the embedding table (`--freeze-encoder`), `whole-LR` the "
        "whole model. Time includes the measurements.",
        "",
        "![loss per epoch](embedding_strategies.png)",
        "",
        "Loss curves (`embedding_strategies.png`): a panel per setting, validation solid, train "
        "dashed, the best validation epoch marked; epoch 0 is before training (the train loss "
        "of later epochs is Keras' running mean over the epoch). With "
        "`--freeze-encoder` and `frozen` nothing trains (a flat line). All numbers are in "
        "`embedding_strategies.json`.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({lscpu_flags()}); Python "
        f"{platform.python_version()}; {datetime.date.today()}; training and measuring took "
        f"{sum(r['seconds'] for x in results.values() for r in x.values()) / 60:.0f} min in all "
        f"(this run: {elapsed / 60:.0f} min, the rest from the cache) on a machine shared with "
        "other jobs, so 2-3x slower than a quiet one. Command: "
        "`python scripts/compare_embedding_strategies.py`"
        + (f" `{' '.join(sys.argv[1:])}`" if sys.argv[1:] else "") + ".",
    ]
    pathlib.Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def summarize(results, settings, base, info):
    """The summary paragraph, written from the numbers: where semi-frozen helps, where not."""

    def v(r):
        return f"{r['best_val_loss']:.4f}"

    wins, ties, rest = [], [], []
    for setting in settings:
        r = results[setting]
        others = [s for s in STRATEGIES if s != "semi-frozen"]
        best = min(others, key=lambda s: r[s]["best_val_loss"])
        sf, other = r["semi-frozen"]["best_val_loss"], r[best]["best_val_loss"]
        if abs(sf - other) <= TIE * other:
            ties.append(setting)
        else:
            (wins if sf < other else rest).append((setting, best))
    parts = [f"With {info['new_rows']} new pieces, semi-frozen has the clearly lowest validation "
             f"loss of the four strategies in {len(wins)} of {len(settings)} settings."]
    if ties:
        parts.append("It ties (within {:.0%}) in ".format(TIE) + "; ".join(
            f"{s} (" + ", ".join(f"{k} {v(results[s][k])}" for k in STRATEGIES if k != "random")
            + f"; top-1 {results[s]['semi-frozen']['top1']:.3f})" for s in ties)
            + ", where the pretrained rows hardly move under trainable (mean "
            + ", ".join(f"{results[s]['trainable']['pretrained_change_used']['mean']:.4f}"
                        for s in ties) + ").")
    if wins:
        parts.append("It helps in " + "; ".join(
            f"{s} (validation loss {v(results[s]['semi-frozen'])} vs {b} {v(results[s][b])}, "
            f"held-out top-1 {results[s]['semi-frozen']['top1']:.3f} vs {results[s][b]['top1']:.3f}, "
            f"STS-B {results[s]['semi-frozen']['sts']:.3f} vs {results[s][b]['sts']:.3f})"
            for s, b in wins) + ".")
    if rest:
        parts.append("It does not in " + "; ".join(
            f"{s}, where {b} is better ({v(results[s][b])} vs {v(results[s]['semi-frozen'])}, "
            f"top-1 {results[s][b]['top1']:.3f} vs {results[s]['semi-frozen']['top1']:.3f}, "
            f"STS-B {results[s][b]['sts']:.3f} vs {results[s]['semi-frozen']['sts']:.3f}"
            + (f"; the pretrained rows the texts use moved by "
               f"{results[s]['trainable']['pretrained_change_used']['mean']:.3f} on average under "
               f"trainable, rows of norm {info['row_norm']:.1f}" if b == "trainable" else "")
            + ")" for s, b in rest) + ".")
    def beats(s, other):
        return results[s]["semi-frozen"]["best_val_loss"] < (1 - TIE) * results[s][other]["best_val_loss"]

    beat_frozen = [s for s in settings if beats(s, "frozen")]
    beat_random = [s for s in settings if beats(s, "random")]
    parts.append(f"It is clearly better than frozen in {len(beat_frozen)} and than random in "
                 f"{len(beat_random)} of {len(settings)} "
                 "settings (random loses STS-B: "
                 + ", ".join(f"{results[s]['random']['sts']:.2f}" for s in settings) + ").")
    untrained = next((results[s]["frozen"] for s in settings if SETTINGS[s][0]), None)
    if untrained:
        parts.append(f"The new pieces themselves cost retrieval before any training: with their "
                     f"rows at the mean of their old pieces, held-out top-1 falls from "
                     f"{base['top1']:.3f} (base model) to {untrained['top1']:.3f}.")
    refs = [s for s in settings if NO_VOCAB in results[s]]
    if refs:
        parts.append("Training the whole model without new pieces gives top-1 " + ", ".join(
            f"{results[s][NO_VOCAB]['top1']:.3f} ({s}, semi-frozen "
            f"{results[s]['semi-frozen']['top1']:.3f})" for s in refs) + ".")
    if not wins:
        parts.append("So semi-frozen never helps in this comparison. The option stays for what "
                     "it guarantees: with `--freeze-encoder`, a text made only of pretrained pieces "
                     "embeds bit-identically before and after training, so an index built from such "
                     "texts stays valid (tests/training/test_embeddings.py).")
    return " ".join(parts)


def data_info(data, terms, tokenizer_vocab, encoder_probe):
    train = data["train"]
    new_ids = set(range(tokenizer_vocab, tokenizer_vocab + len(terms)))

    def share(texts):
        rows = encoder_probe.tokenize(list(texts))
        return float(np.mean([bool(new_ids.intersection(r)) for r in rows])) if rows else 0.0

    return {
        "train_new_share": share(list(train.base) + list(train.ref)),
        "query_new_share": share(dict.fromkeys(data["retrieval"].queries)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--groups", default="21,25,31,35", help="ISCO group prefixes")
    parser.add_argument("--max-pairs", type=int, default=2000)
    parser.add_argument("--pairs-seed", type=int, default=0)
    parser.add_argument("--queries", type=int, default=600, help="held-out queries scored")
    parser.add_argument("--sts-limit", type=int, default=500)
    parser.add_argument("--min-pieces", type=int, default=2)
    parser.add_argument("--max-new-pieces", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", default="lazy-adam")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--cache-dir", default=str(ROOT / ".cache" / "embedding_strategies"))
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    parser.add_argument("--out-dir", default=str(ROOT / "results"))
    args = parser.parse_args()
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")

    started = time.perf_counter()
    results = {s: {} for s in settings}
    with tempfile.TemporaryDirectory(prefix="embedding-strategies-") as work:
        data = build_data(args, work)
        base = load_model("use-m3")
        terms_path, terms = write_terms(data, base.tokenizer, args, work)
        base_metrics = load_cached(args, "_base", "base-v2")
        if base_metrics is None:
            siamese = compile_siamese(base, FitOptions(optimizer=args.optimizer))
            base_metrics = {**retrieval_metrics(base, data), "sts": sts_pearson(base, data),
                            "loss": evaluate(siamese, data["train"])["loss"],
                            "val_loss": evaluate(siamese, data["val"])["loss"]}
            del siamese
            store_cached(args, "_base", "base-v2", base_metrics)
        print(f"{len(data['train'])} train / {len(data['val'])} validation pairs, "
              f"{len(terms)} terms; base {base_metrics}", file=sys.stderr, flush=True)
        for setting in settings:
            for strategy in strategies_of(setting):
                result = load_cached(args, setting, strategy)
                if result is None:
                    print(f"== {setting} {strategy}", file=sys.stderr, flush=True)
                    result = run_strategy(base, setting, strategy, data, terms_path, args,
                                          os.path.join(work, "state", setting, strategy))
                    store_cached(args, setting, strategy, result)
                r = result
                print(f"{setting:>11} {strategy:>13}: best val {r['best_val_loss']:.5f} "
                      f"(epoch {r['best_epoch']}), last {r['last_val_loss']:.5f}, top-1 "
                      f"{r['top1']:.4f}, MRR {r['mrr']:.4f}, STS {r['sts']:.4f}, "
                      f"{r['seconds']:.0f} s", file=sys.stderr, flush=True)
                results[setting][strategy] = result
        # texts that use the new pieces: the extended tokenizer of any strategy
        probe, added = prepare_encoder(
            base, EmbeddingOptions(strategy="frozen", add_vocab=terms_path,
                                   max_new_pieces=args.max_new_pieces), [], args.seed)
        info = data_info(data, [a.term for a in added], base.tokenizer.vocabulary_size,
                         probe.tokenizer)
        touched = used_ids(probe.tokenizer, data["train"].base + data["train"].ref)
        info.update({
            "occupations": len(data["taxonomy"]),
            "all_pairs": data["all_pairs"],
            "train_pairs": len(data["train"]), "val_pairs": len(data["val"]),
            "new_rows": len(added), "terms": [a.term for a in added],
            "queries": len(dict.fromkeys(data["retrieval"].queries)),
            "corpus": len(data["retrieval"].corpus_labels),
            "pretrained_rows": base.tokenizer.vocabulary_size,
            "pretrained_rows_used": int((touched < base.tokenizer.vocabulary_size).sum()),
            "row_norm": next(iter(results[settings[0]].values()))["pretrained_row_norm"],
        })
    elapsed = time.perf_counter() - started
    os.makedirs(args.out_dir, exist_ok=True)
    plot_settings(results, settings, os.path.join(args.out_dir, "embedding_strategies.png"),
                  base_metrics["val_loss"])
    summary = summarize(results, settings, base_metrics, info)
    write_report(args, results, settings, base_metrics, info, summary,
                 os.path.join(args.out_dir, "embedding_strategies.md"), elapsed)
    with open(os.path.join(args.out_dir, "embedding_strategies.json"), "w", encoding="utf-8") as f:
        json.dump({"base": base_metrics, "info": info, "results": results}, f, indent=1)
    print("\n".join(table_rows(results, settings)))


if __name__ == "__main__":
    main()
