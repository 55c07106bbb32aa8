"""Does fine-tuning on ESCO pairs improve the domain and keep general quality? (an honest protocol)

Three disjoint sets of ESCO occupations per split seed:

* **test**: 20% of the occupations held out (``pairs esco --holdout 0.2 --seed S``);
  their alternative labels are the held-out queries, reported once;
* **validation**: ``--validation-concepts`` (10%) of the remaining occupations, also
  out of training; every choice (retrieval weights, interpolation alpha, and
  the recipe, by running this script with ``--no-test``) is made on their
  alternative labels;
* **training**: the rest.

Two settings:

* ``strict``: no text of a test or validation occupation in any training pair;
* ``corpus_aware``: the corpus (every occupation's preferred label and
  description) is known at deployment, only the queries are not: pairs built
  from the corpus side of every occupation (``pairs --corpus-aware``) join the
  training pairs; still no alternative label of a test or validation
  occupation.

Each split trains one model and measures the base, the tuned and the
interpolated model (WiSE-FT, alpha chosen on validation), each densely and
hybrid (character n-gram TF-IDF fusion and description-weighted entries,
weights chosen on validation), plus STS-B dev.  With labels in more languages
(``--labels fr=occupations_fr.csv``, as ``pairs esco --labels``) the pairs are multilingual and
every model is also measured across languages: held-out queries in each language against the
concepts labelled in each (``fr->en``: French queries, English labels).  Results are merged into
``results/quality.json`` (keys ``strict`` / ``corpus_aware``, then ``seed_0`` ...)
and ``results/quality.md`` is rendered from all that is there.

    python scripts/bench_quality.py --settings strict --seeds 0 1
    python scripts/bench_quality.py --no-test --max-pairs 10000 --epochs 1   # scouting
    python scripts/bench_quality.py --labels fr=../shared/data/esco/occupations_fr.csv
"""

import argparse
import dataclasses
import datetime
import gc
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

import numpy as np  # noqa: E402

from domain_tune._env import import_tensorflow  # noqa: E402

import_tensorflow()  # quietly, as the CLI does (DOMAIN_TUNE_DEBUG=1 shows the start-up lines)

from domain_tune.datasets.pairs import sha256  # noqa: E402
from domain_tune.datasets.sts import load_split  # noqa: E402
from domain_tune.datasets.retrieval_set import RetrievalSet  # noqa: E402
from domain_tune.datasets.taxonomy import parse_label_files, read_esco, read_translation  # noqa: E402
from domain_tune.datasets.taxonomy_pairs import build_pairs  # noqa: E402
from domain_tune.datasets.validation import carve_validation, concept_keys, drop_texts  # noqa: E402
from domain_tune.embedding import encode  # noqa: E402
from domain_tune.evaluation.crosslingual import evaluate_languages  # noqa: E402
from domain_tune.evaluation.hybrid import (  # noqa: E402
    DenseParts, HybridWeights, LexicalScorer, choose_weights, hybrid_ranks,
)
from domain_tune.evaluation.retrieval import group_queries, metrics_from_ranks  # noqa: E402
from domain_tune.evaluation.sts import evaluate_sts  # noqa: E402
from domain_tune.models.interpolation import interpolate  # noqa: E402
from domain_tune.models.loading import load_model  # noqa: E402
from domain_tune.training.embeddings import EmbeddingOptions  # noqa: E402
from domain_tune.training.fit import FitOptions  # noqa: E402
from domain_tune.training.run import TrainJob, train_run  # noqa: E402

SETTINGS = ("strict", "corpus_aware")

# The recipe (see README "Domain adaptation on ESCO").
RECIPE = {
    "epochs": 3,
    "batch_size": 64,
    "mini_batch_size": 0,  # GradCache mini-batch (0: off)
    "learning_rate": 1e-4,
    "optimizer": "lazy-adam",
    "lr_schedule": "constant",
    "warmup": 0.0,
    "loss": "in-batch-symmetric",
    "scale": 20.0,  # of the in-batch loss (train --scale)
    "embeddings": "trainable",
    "add_vocab": None,
    "negatives": 1,
    "synonym_pairs": 0,
    "related": 3,
    "descriptions": False,
    "hard_negatives": 0,  # mined hard negatives per positive pair (0: none)
    "mining_depth": 10,
    "holdout": 0.2,
    "validation_concepts": 0.1,
    "validation_split": 0.05,
    "interpolate": "0.7,0.8,0.9,1.0",  # alphas tried on validation (1: the tuned model)
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out-dir", default=str(ROOT / "results"))
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=["strict"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--max-pairs", type=int, help="Train on a random subset of the pairs.")
    p.add_argument("--no-test", action="store_true",
                   help="Scouting: measure validation only, never the held-out queries.")
    p.add_argument("--no-base", action="store_true", help="Skip measuring the base model.")
    p.add_argument("--name", default="", help="Label of this run in the scouting log.")
    for key, value in RECIPE.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            p.add_argument(flag, default=None)
        elif isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            p.add_argument(flag, type=type(value), default=value)
    p.add_argument("--labels", action="append", default=[], metavar="LANG=FILE",
                   help="Labels in one more language (ESCO's columns, as pairs esco --labels); "
                        "repeat for more. Adds multilingual pairs and cross-lingual retrieval.")
    p.add_argument("--keep", help="Keep the pairs and the tuned models in this folder.")
    p.add_argument("--multilingual", default="all",
                   help="Languages of the multilingual STS panel (comma-separated, all or none).")
    p.add_argument("--multilingual-dir", default=str(ROOT.parent / "shared" / "data" / "stsb-multi-mt"))
    p.add_argument("--render", action="store_true",
                   help="Only render quality.md from the quality.json in --out-dir.")
    return p.parse_args()


# --- data ------------------------------------------------------------------------------


def build_split(args, taxonomy, setting, seed, work):
    """``(train.csv path, data)``: training pairs and the validation / test retrieval sets."""
    import pandas as pd

    from domain_tune.datasets.mining import add_hard_negatives

    options = dict(negatives=args.negatives, related=args.related,
                   descriptions=args.descriptions, synonyms=args.synonym_pairs)
    outer = build_pairs(taxonomy, holdout=args.holdout, seed=seed, **options)
    inner = carve_validation(taxonomy, outer.heldout_ids, args.validation_concepts, seed,
                             **options)
    if setting == "corpus_aware":
        corpus_pairs = _corpus_pairs(taxonomy, outer, seed, args, options)
        # never an alternative label of a test or validation concept, in any language
        held = set(outer.heldout_ids) | set(inner.heldout_ids)
        corpus_pairs = drop_texts(corpus_pairs, concept_keys(taxonomy, held, alternative_only=True))
        inner.train = pd.concat([inner.train, corpus_pairs], ignore_index=True)
        inner.stats["corpus_pairs"] = len(corpus_pairs)
    if args.hard_negatives:
        add_hard_negatives(inner, "use-m3", args.mining_depth, seed, per_pair=args.hard_negatives)
    if args.max_pairs and len(inner.train) > args.max_pairs:
        inner.train = inner.train.sample(args.max_pairs, random_state=seed).reset_index(drop=True)
    train_csv = os.path.join(work, f"{setting}_seed{seed}_train.csv")
    inner.train.to_csv(train_csv, index=False)
    descriptions = dict(zip(taxonomy.ids, taxonomy.descriptions))
    id_col = outer.corpus.columns[1]
    corpus_ids = outer.corpus[id_col].tolist()
    data = {
        "corpus_labels": outer.corpus.iloc[:, 0].tolist(),
        "corpus_ids": corpus_ids,
        "corpus_descriptions": [descriptions[c] for c in corpus_ids],
        "validation": (inner.queries.iloc[:, 0].tolist(), inner.queries.iloc[:, 1].tolist()),
        "test": (outer.queries.iloc[:, 0].tolist(), outer.queries.iloc[:, 1].tolist()),
        "languages": {"validation": pairset_retrieval_sets(taxonomy.language, inner, outer),
                      "test": pairset_retrieval_sets(taxonomy.language, outer, outer)}
        if taxonomy.translations else None,
        "stats": {"train_pairs": len(inner.train), "validation_concepts": len(inner.heldout_ids),
                  "test_concepts": len(outer.heldout_ids),
                  "corpus_pairs": inner.stats.get("corpus_pairs", 0),
                  "hard_negatives": inner.stats.get("hard_negatives", 0)},
    }
    # the protocol's guarantee, checked: no alternative label of a test or validation
    # concept is a training text (corpus-aware pairs may hold their preferred labels)
    # (corpus-aware: their preferred labels are corpus texts), in every language
    held = concept_keys(taxonomy, set(outer.heldout_ids) | set(inner.heldout_ids),
                        alternative_only=setting == "corpus_aware")
    columns = [c for c in inner.train.columns if c != "similarity"]  # negatives included
    assert len(drop_texts(inner.train, held, columns)) == len(inner.train), "leak into training"
    return train_csv, data


def pairset_retrieval_sets(main, queries, corpora):
    """``{lang: RetrievalSet}``: the held-out queries of ``queries`` (a PairSet) in the main
    language and every other, each against the whole corpus of ``corpora`` (the outer PairSet)
    in its language."""
    def one(q, c):
        return RetrievalSet(q.iloc[:, 0].tolist(), q.iloc[:, 1].tolist(), c.iloc[:, 0].tolist(),
                            c.iloc[:, 1].tolist())
    sets = {main: one(queries.queries, corpora.corpus)}
    for lang, q in queries.language_queries.items():
        sets[lang] = one(q, corpora.language_corpora[lang])
    return sets


def _corpus_pairs(taxonomy, strict, seed, args, options):
    """The corpus-side pairs of ``pairs --corpus-aware``: its rows that the strict build lacks."""
    aware = build_pairs(taxonomy, holdout=args.holdout, seed=seed, corpus_aware=True, **options)
    key = ["base", "ref"]
    merged = aware.train.merge(strict.train[key].drop_duplicates(), on=key, how="left",
                               indicator=True)
    return merged[merged["_merge"] == "left_only"][["base", "ref", "similarity"]]


# --- measuring ---------------------------------------------------------------------------


def measure(model, data, sts, test=True, weights=None):
    """Dense and hybrid metrics on validation (and test), STS-B dev Pearson / Spearman.

    Hybrid weights are chosen on the validation queries unless ``weights`` is given.
    """
    labels = encode(model, data["corpus_labels"])
    has = [bool(d) for d in data["corpus_descriptions"]]
    descriptions = encode(model, [d if h else "" for d, h in zip(data["corpus_descriptions"], has)])
    lexical = data.setdefault("_lexical", LexicalScorer(data["corpus_labels"]))
    ids = data["corpus_ids"]
    out = {}
    for split in ("validation", "test") if test else ("validation",):
        texts, gold = group_queries(*data[split])
        parts = DenseParts(encode(model, texts), labels, descriptions, has)
        dense = metrics_from_ranks(hybrid_ranks(parts, gold, ids, texts, lexical, HybridWeights()))
        if split == "validation" and weights is None:
            weights, grid = choose_weights(parts, gold, ids, texts, lexical)
            out["grid"] = grid
        hybrid = metrics_from_ranks(hybrid_ranks(parts, gold, ids, texts, lexical, weights))
        out[split] = {"dense": dense, "hybrid": hybrid}
        if data.get("languages"):  # dense, every query language against every corpus language
            out[split]["languages"] = evaluate_languages(model, data["languages"][split])
    out["weights"] = dataclasses.asdict(weights)
    s = evaluate_sts(model, sts.sentences1, sts.sentences2, sts.scores)
    out["sts"] = {"pearson": s["pearson"], "spearman": s["spearman"]}
    return out


def _score(m):
    return (m["validation"]["hybrid"]["top1"], m["validation"]["hybrid"]["mrr"])


def run_split(args, taxonomy, sts, setting, seed, work):
    started = time.perf_counter()
    train_csv, data = build_split(args, taxonomy, setting, seed, work)
    log = lambda *a: print(f"[{setting} seed {seed}]", *a, file=sys.stderr, flush=True)  # noqa: E731
    log("pairs:", data["stats"])
    result = {"stats": data["stats"], "train_csv_sha256": sha256(train_csv)}
    if not args.no_base:
        result["base"] = measure(load_model("use-m3"), data, sts, test=not args.no_test)
        log("base:", _brief(result["base"]))
    out = os.path.join(work, f"tuned_{setting}_seed{seed}")
    job = TrainJob(
        pairs_path=train_csv, out=out, sts=False, overwrite=True,
        validation_split=args.validation_split,
        fit=FitOptions(epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, optimizer=args.optimizer,
                       loss=args.loss, scale=args.scale, seed=seed, patience=args.epochs,
                       lr_schedule=args.lr_schedule, warmup=args.warmup,
                       mini_batch_size=args.mini_batch_size or None),
        embeddings=EmbeddingOptions(strategy=args.embeddings, add_vocab=args.add_vocab),
        verbose=2,
    )
    train_start = time.perf_counter()
    metrics = train_run(job, echo=log)
    train_seconds = time.perf_counter() - train_start
    result["training"] = {"pairs": metrics["train_pairs"], "val_pairs": metrics["val_pairs"],
                          "epochs_run": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
                          "seconds": round(train_seconds, 1),
                          "seconds_per_epoch": round(train_seconds / metrics["epochs_run"], 1),
                          "fit_cpu_seconds_per_epoch": round(
                              metrics["fit_cpu_seconds"] / metrics["epochs_run"], 1)
                          if "fit_cpu_seconds" in metrics else None}
    log("training:", result["training"])
    # interpolation: every alpha measured on validation; the best one (hybrid top-1, MRR)
    # among those keeping STS-B dev Pearson >= 0.825 is then measured on test
    tried = {}
    for alpha in sorted({float(a) for a in args.interpolate.split(",")}, reverse=True):
        model = load_model(out)
        if alpha < 1.0:
            model, _ = interpolate(load_model("use-m3"), model, alpha)
        tried[alpha] = measure(model, data, sts, test=False)
        log(f"alpha {alpha:g}:", _brief(tried[alpha]))
        del model
        gc.collect()
    result["alphas"] = {str(a): {"validation": m["validation"], "weights": m["weights"],
                                 "sts": m["sts"]} for a, m in tried.items()}
    ok = [a for a, m in tried.items() if m["sts"]["pearson"] >= 0.825] or list(tried)
    best = max(ok, key=lambda a: _score(tried[a]))
    if not args.no_test:
        result["tuned"] = measure(load_model(out), data, sts)
        model = load_model(out)
        if best < 1.0:
            model, _ = interpolate(load_model("use-m3"), model, best)
        result["chosen"] = measure(model, data, sts, weights=HybridWeights(**tried[best]["weights"]))
        log("tuned:", _brief(result["tuned"]), "chosen:", _brief(result["chosen"]))
        result["multilingual"] = multilingual_panels(args, out, best)
    else:
        result["tuned"] = tried[1.0] if 1.0 in tried else None
    result["alpha"] = best
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def multilingual_panels(args, tuned_dir, alpha=1.0):
    """The multilingual STS panel (mono, cross-lingual en-LANG, translation retrieval) of the
    base, the tuned and the interpolated model, on stsb-multi-mt dev and on the held-out panel
    (a fifth of the train rows that no parallel file holds) as ``panels["heldout"]``."""
    from domain_tune.datasets.stsb_multi import file_name, load_multilingual
    from domain_tune.evaluation.multilingual import evaluate_panel

    if args.multilingual == "none":
        return None
    print("measuring the multilingual panel", file=sys.stderr)
    data = load_multilingual(args.multilingual_dir, "dev", args.multilingual)
    base, tuned = load_model("use-m3"), load_model(tuned_dir)
    held = load_multilingual(args.multilingual_dir, "heldout", args.multilingual)
    models = {"base": base, "tuned": tuned}
    if alpha < 1.0:
        models["interpolated"] = interpolate(base, tuned, alpha)[0]
    panels = {name: evaluate_panel(m, data) for name, m in models.items()}
    panels["heldout"] = {name: evaluate_panel(m, held) for name, m in models.items()}
    if alpha < 1.0:
        panels["alpha"] = alpha
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
### Multilingual STS-B dev (stsb-multi-mt, {b['n']} pairs per language)

Pearson of cosine similarity: mono per language, cross-lingual with sentence 1 in English and
sentence 2 in LANG; translation retrieval accuracy (both directions averaged). Base -> tuned:

{panel_markdown(b, m["tuned"])}
"""
    if m.get("interpolated"):
        text += f"""
Base -> interpolated (alpha {m['alpha']:g}):

{panel_markdown(b, m["interpolated"])}
"""
    held = m.get("heldout")
    if held:
        text += f"""
### Multilingual held-out panel (a fifth of stsb-multi-mt train, {held['base']['n']} pairs per language)

The rows that `parallel-sentences` never writes, so no alignment step saw them. Base -> tuned:

{panel_markdown(held["base"], held["tuned"])}
"""
        if held.get("interpolated"):
            text += f"""
Base -> interpolated (alpha {m['alpha']:g}):

{panel_markdown(held["base"], held["interpolated"])}
"""
    hashes = ", ".join(f"{lang} `{h[:12]}`" for lang, h in m["sha256"].items())
    return text + f"\nData sha256 (first 12 hex digits of stsb-LANG-dev.csv): {hashes}.\n"


def render_languages(r, base):
    """Cross-lingual domain retrieval (dense top-1 per query and corpus language), on test."""
    if "languages" not in r["tuned"].get("test", {}):
        return ""
    models = ([("base (use-m3)", base)] if base and "languages" in base["test"] else [])
    models.append(("tuned", r["tuned"]))
    if r["alpha"] < 1:
        models.append((f"interpolated (alpha {r['alpha']:g})", r["chosen"]))
    pairs = list(r["tuned"]["test"]["languages"])
    ref = models[0][1]["test"]["languages"]
    out = ["", "### Across languages (held-out occupations, dense)", "",
           "Held-out queries in one language against every occupation labelled in another "
           "(`fr->en`: French alternative labels, English preferred labels). Top-1 (change "
           "against the base):", "",
           "| model | " + " | ".join(f"{p} ({ref[p]['n']:,} queries)" for p in pairs) + " |",
           "| --- |" + " --- |" * len(pairs)]
    for name, m in models:
        cells = []
        for p in pairs:
            v = m["test"]["languages"][p]["top1"]
            cells.append(f"{v:.4f}" + ("" if m is models[0][1] else f" ({v - ref[p]['top1']:+.4f})"))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _brief(m):
    parts = []
    for split in ("validation", "test"):
        if split in m:
            d, h = m[split]["dense"], m[split]["hybrid"]
            parts.append(f"{split} top-1 {d['top1']:.4f} (hybrid {h['top1']:.4f}) "
                         f"MRR {d['mrr']:.4f} ({h['mrr']:.4f})")
    return "; ".join(parts) + f"; weights {m['weights']}; STS {m['sts']['pearson']:.4f}"


# --- main --------------------------------------------------------------------------------


def main():
    args = parse_args()
    if args.render:
        merged = json.load(open(os.path.join(args.out_dir, "quality.json")))
        pathlib.Path(args.out_dir, "quality.md").write_text(render(merged), encoding="utf-8")
        return
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    sts_dir = os.path.join(args.shared, "stsbenchmark")
    work = args.keep or tempfile.mkdtemp(prefix="bench-quality-")
    os.makedirs(work, exist_ok=True)
    taxonomy = read_esco(esco)
    labels = parse_label_files(args.labels, taxonomy.language)
    for lang, path in labels:
        taxonomy = read_translation(taxonomy, lang, path, id_column="conceptUri",
                                    label_column="preferredLabel", synonyms_column="altLabels")
    sts = load_split("dev", sts_dir)
    meta = {
        "recipe": {k: getattr(args, k) for k in RECIPE} | {"max_pairs": args.max_pairs},
        "data": {"esco_sha256": sha256(esco), **{f"esco_{lang}_sha256": sha256(path) for lang, path in labels},
                 "sts_dev_sha256": sha256(os.path.join(sts_dir, "sts-dev.csv"))},
        "machine": _machine(),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python", "scripts/bench_quality.py", *sys.argv[1:]]),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    for setting in args.settings:
        for seed in args.seeds:
            run = run_split(args, taxonomy, sts, setting, seed, work)
            record({setting: {f"seed_{seed}": run}}, meta, args)  # each split as it ends


def record(runs, meta, args):
    if args.no_test:  # scouting: appended to a log, never to the results
        with open(os.path.join(args.out_dir, "quality_scouting.jsonl"), "a") as f:
            f.write(json.dumps({"name": args.name, **meta, "runs": runs}) + "\n")
        for setting, seeds in runs.items():
            for seed, r in seeds.items():
                print(f"{args.name} {setting} {seed}: alpha {r['alpha']}:",
                      _brief(r["alphas"][str(r["alpha"])] | {}), r["training"])
        return
    path = os.path.join(args.out_dir, "quality.json")
    merged = json.load(open(path)) if os.path.isfile(path) else {}
    merged = {k: v for k, v in merged.items() if k in SETTINGS}
    for setting, seeds in runs.items():
        for seed, r in seeds.items():
            merged.setdefault(setting, {})[seed] = {**r, **meta}
    with open(path, "w") as f:
        json.dump(merged, f, indent=2)
    report = render(merged)
    pathlib.Path(args.out_dir, "quality.md").write_text(report, encoding="utf-8")
    print(report)


def _machine():
    flags = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        flags = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                      if l.startswith("Flags")), "")
    except OSError:
        pass
    wanted = [f for f in ("avx", "avx2", "avx512f", "fma") if f in flags.split()]
    return {"arch": platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "cpu_flags": wanted}


def _recipe(run):
    """The recipe of a recorded run; runs recorded before ``--scale`` existed trained at 20."""
    recipe = dict(run["recipe"])
    if "scale" not in recipe:
        items = list(recipe.items())
        at = next((i + 1 for i, (k, _) in enumerate(items) if k == "loss"), len(items))
        recipe = dict(items[:at] + [("scale", 20.0)] + items[at:])
    return recipe


def _row(label, m, split="test"):
    d, h = m[split]["dense"], m[split]["hybrid"]
    return (f"| {label} | {d['top1']:.4f} | {d['mrr']:.4f} | {h['top1']:.4f} | {h['top5']:.4f} | "
            f"{h['mrr']:.4f} | {m['sts']['pearson']:.4f} |")


def render(merged):
    out = ["# Domain adaptation on ESCO: base vs tuned, strict and corpus-aware", ""]
    out.append(
        "Held-out queries: the alternative labels of 20% of the occupations (`--holdout 0.2 "
        "--seed S`), ranked against all occupations' preferred labels. Every choice (hybrid "
        "weights, interpolation alpha, recipe) was made on a validation split of 10% of the "
        "*training* occupations, also out of training; the held-out numbers below were measured "
        "once. *Dense*: cosine of the embeddings. *Hybrid*: dense + w_lex x character 2-4-gram "
        "TF-IDF cosine, each occupation embedded as normalize(label + w_desc x description), "
        "weights chosen on validation.")
    out.append("")
    out.append("- **strict**: no text of a held-out (or validation) occupation in any training pair.")
    out.append("- **corpus_aware**: the corpus (every occupation's preferred label and description) "
               "is known at deployment: pairs from the corpus side of every occupation join "
               "training; no alternative label of a held-out occupation ever does.")
    for setting in SETTINGS:
        if setting not in merged:
            continue
        for seed, r in sorted(merged[setting].items()):
            out += ["", f"## {setting}, split {seed.replace('_', ' ')}", "",
                    "| model | top-1 dense | MRR dense | top-1 hybrid | top-5 hybrid | MRR hybrid "
                    "| STS-B dev Pearson |",
                    "| --- | --- | --- | --- | --- | --- | --- |"]
            base = r.get("base") or merged.get("strict", {}).get(seed, {}).get("base")
            if base:  # the base model is the same in both settings (same queries and corpus)
                out.append(_row("base (use-m3)", base))
            out.append(_row("tuned", r["tuned"]))
            if r["alpha"] < 1:
                out.append(_row(f"tuned, interpolated (alpha {r['alpha']:g}, chosen on "
                                "validation)", r["chosen"]))
            w = r["chosen"]["weights"]
            t = r["training"]
            base_w = (f" (base: lexical {base['weights']['lexical']:g}, description "
                      f"{base['weights']['description']:g})") if base else ""
            cpu = t.get("fit_cpu_seconds_per_epoch")
            alphas = ", ".join(f"{float(a):g}: {m['validation']['hybrid']['top1']:.4f}"
                               for a, m in r["alphas"].items())
            out += ["", f"Interpolation (WiSE-FT) alpha chosen on validation: {r['alpha']:g} "
                    f"(validation hybrid top-1 by alpha: {alphas}; 1 is the tuned model).",
                    f"Hybrid weights chosen on validation: lexical {w['lexical']:g}, "
                    f"description {w['description']:g}{base_w}.",
                    f"Training: {t['pairs']:,} pairs ({r['stats']['corpus_pairs']:,} corpus-side, "
                    f"{r['stats']['hard_negatives']:,} hard negatives), {t['epochs_run']} epochs, "
                    f"{t['seconds']:.0f} s ({t['seconds_per_epoch']:.0f} s per epoch"
                    + (f", {cpu:.0f} CPU-s per epoch" if cpu else "") + "); "
                    f"{r['stats']['validation_concepts']} validation and "
                    f"{r['stats']['test_concepts']} held-out occupations.",
                    f"Recipe: {', '.join(f'{k} {v}' for k, v in _recipe(r).items() if v is not None)}.",
                    f"Command: `{r['command']}`; {r['date']}; machine {r['machine']}."]
            out.append(render_languages(r, base))
            out.append(render_multilingual(r))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
