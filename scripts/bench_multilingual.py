"""The domain gain in every language: ESCO tuned with English labels only, and with French labels too.

Builds two pairs folders from ESCO (20% of occupations held out, seed 0, the same concepts
in both): English labels only (``domain-tune pairs esco``) and English plus French labels
(``--labels fr=occupations_fr.csv``: French pairs and French-English pairs), and a parallel
file from the stsb-multi-mt *train* rows outside the held-out panel (``domain-tune
parallel-sentences``).  It trains the documented ESCO recipe (in-batch-symmetric, lazy-adam,
lr 1e-4, batch 64, 3 epochs, validation 0.05) once per variant (:data:`VARIANTS`):

* ``en``: English labels, no alignment; ``en+contrastive``: with the multilingual recipe
  (``--parallel --align-loss contrastive --align-weight 5 --parallel-batch-size 32``);
* transfer mechanisms with English labels only: ``en+frozen`` / ``en+frozen+contrastive``
  (the embedding table frozen, so the domain is learnt in the layers every language shares);
  ``en+tuned-teacher`` (the tuned ``en`` model distilled onto the translations of general
  sentences: one more epoch from it with its own frozen embeddings as the teacher);
  ``en+self-teacher`` (each translation pulled onto the tuned model's own embedding of its
  English source, ``--align-loss embedding --align-teacher self``, at weight 5 and 1);
* with the French labels: ``fr``, ``fr+contrastive`` (alignment at weight 5) and
  ``fr+contrastive10`` (at 10), ``fr+frozen+contrastive`` (the embedding table frozen; also
  ``+lr2e-4``), ``fr+contrastive+scale14`` (the in-batch loss at ``--scale 14``, the scale
  ``bench_quality`` chose on validation);

each also interpolated with the base (``--alpha``, WiSE-FT; ``--more-alphas`` for some).
Every model is measured on

* domain retrieval in both languages: queries in one language, concepts in the other or the
  same (``en->en``, ``fr->en``, ``fr->fr``, ``en->fr``;
  :mod:`domain_tune.evaluation.crosslingual`), on the held-out concepts split by a hash of
  their id into **validation** (choices: the transfer mechanism, the recipe) and **test**
  (reported);
* STS-B dev (English) Pearson;
* the multilingual panel on the **held-out** stsb-multi-mt train rows (no sentence of them is
  parallel data) and on the dev split: monolingual STS per language, cross-lingual STS
  (sentence 1 English), translation retrieval.

Writes ``results/multilingual.md`` and ``results/multilingual.json``.  With ``--keep DIR`` the
pairs, the parallel file, the runs and the measurements stay in DIR, and a finished run with
the same options is reused.  With ``--reuse PREVIOUS.json`` (repeatable) a variant measured
there with the same spec, recipe, data (sha256 of ESCO, the pairs and the parallel file) and
panel is taken from it instead of trained again; the report says which were, and when.

    python scripts/bench_multilingual.py --keep /tmp/bench-ml
    python scripts/bench_multilingual.py --variants en,fr --epochs 1 --keep /tmp/quick
    python scripts/bench_multilingual.py --reuse results/multilingual.json --keep /tmp/bench-ml
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_speed import harness  # noqa: E402
from domain_tune.datasets.pairs import sha256  # noqa: E402

# The documented ESCO recipe (docs/training.md; scripts/bench_quality.py).
RECIPE = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-4, "optimizer": "lazy-adam",
          "loss": "in-batch-symmetric", "validation_split": 0.05, "seed": 0}
CONTRASTIVE = {"align_loss": "contrastive", "align_weight": 5.0, "parallel_batch_size": 32}
VARIANTS = {
    "en": {"pairs": "en"},
    "en+contrastive": {"pairs": "en", "parallel": True, **CONTRASTIVE},
    "en+frozen": {"pairs": "en", "embeddings": "frozen"},
    "en+frozen+contrastive": {"pairs": "en", "embeddings": "frozen", "parallel": True, **CONTRASTIVE},
    "en+tuned-teacher": {"pairs": "en", "start": "en", "parallel": True, "align_loss": "embedding",
                         "align_teacher": "base", "align_weight": 10.0, "parallel_batch_size": 32,
                         "epochs": 1},
    "en+self-teacher": {"pairs": "en", "parallel": True, "align_loss": "embedding", "align_teacher": "self",
                        "align_weight": 5.0, "parallel_batch_size": 32},
    "en+self-teacher1": {"pairs": "en", "parallel": True, "align_loss": "embedding", "align_teacher": "self",
                         "align_weight": 1.0, "parallel_batch_size": 32},
    "fr": {"pairs": "fr"},
    "fr+contrastive": {"pairs": "fr", "parallel": True, **CONTRASTIVE},
    "fr+contrastive10": {"pairs": "fr", "parallel": True, **CONTRASTIVE, "align_weight": 10.0},
    "fr+frozen+contrastive": {"pairs": "fr", "embeddings": "frozen", "parallel": True, **CONTRASTIVE},
    "fr+contrastive+scale14": {"pairs": "fr", "parallel": True, **CONTRASTIVE, "scale": 14.0},
    "fr+frozen+contrastive+lr2e-4": {"pairs": "fr", "embeddings": "frozen", "parallel": True, **CONTRASTIVE,
                                     "learning_rate": 2e-4},
}
LABELS = {
    "en": "English labels",
    "en+contrastive": "English labels + contrastive alignment",
    "en+frozen": "English labels, frozen embeddings",
    "en+frozen+contrastive": "English labels, frozen embeddings + contrastive alignment",
    "en+tuned-teacher": "English labels, then the tuned model distilled onto translations",
    "en+self-teacher": "English labels + translations pulled onto their tuned sources",
    "en+self-teacher1": "English labels + translations pulled onto their tuned sources at weight 1",
    "fr": "English + French labels",
    "fr+contrastive": "English + French labels + contrastive alignment",
    "fr+contrastive10": "English + French labels + contrastive alignment at weight 10",
    "fr+frozen+contrastive": "English + French labels, frozen embeddings + contrastive alignment",
    "fr+contrastive+scale14": "English + French labels + contrastive alignment, in-batch scale 14",
    "fr+frozen+contrastive+lr2e-4": "English + French labels, frozen embeddings + contrastive alignment, lr 2e-4",
}
HOLDOUT, SEED = 0.2, 0
PAIR_DROP = 0.005  # no language pair of the held-out panel more than this below the base
TARGETS = {"fr_gain": 0.08, "en_top1": 0.65}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out-dir", default=str(ROOT / "results"))
    p.add_argument("--keep", help="Keep pairs, parallel file, runs and measurements here (and reuse them).")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"Comma-separated, of: {', '.join(VARIANTS)}.")
    p.add_argument("--alpha", type=float, default=0.8, help="Interpolation weight of the tuned model (1: skip).")
    p.add_argument("--more-alphas", default="", metavar="VARIANT=A,...",
                   help="More interpolation weights for some variants, e.g. en=0.6,0.4;en+contrastive=0.6.")
    p.add_argument("--panel-limit", type=int, help="Only the first N pairs of each panel language.")
    p.add_argument("--reuse", action="append", default=[], metavar="PREVIOUS.json",
                   help="Take variants measured alike in this earlier multilingual.json (repeatable).")
    for key, value in RECIPE.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    return p.parse_args(argv)


def run(command):
    print("$ " + " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def train(args, name, spec, folders, parallel_csv, work):
    """Train one variant into ``work/runs/NAME`` through ``domain_tune.train`` (reused when the
    options it was trained with are these)."""
    import domain_tune

    out = os.path.join(work, "runs", name)
    options = {k: getattr(args, k) for k in RECIPE} | {"patience": args.epochs, "no_sts": True,
                                                        "overwrite": True, "quiet": True}
    options |= {k: v for k, v in spec.items() if k not in ("pairs", "start", "parallel")}
    if spec.get("start"):
        options["model"] = os.path.join(work, "runs", spec["start"])
    if spec.get("parallel"):
        options["parallel"] = parallel_csv
    options["patience"] = options["epochs"]
    pairs = os.path.join(folders[spec["pairs"]], "train.csv")
    stamp = os.path.join(out, "bench_options.json")
    wanted = json.dumps({"pairs": sha256(pairs), **options}, sort_keys=True)
    if os.path.isfile(stamp) and os.path.isfile(os.path.join(out, "metrics.json")):
        if pathlib.Path(stamp).read_text(encoding="utf-8") == wanted:
            print(f"reusing {out}", file=sys.stderr)
            return json.loads(pathlib.Path(out, "metrics.json").read_text(encoding="utf-8"))
    print(f"training {name}", file=sys.stderr)
    result = domain_tune.train(pairs, out, echo=lambda line: print(line, file=sys.stderr), **options)
    pathlib.Path(stamp).write_text(wanted, encoding="utf-8")
    return result.metrics


def measure(args, name, model_fn, sets, stsb_dir, sts, work, run_dir=None):
    """Domain retrieval per language pair and part, STS-B, both panels (cached in work/measure)."""
    from domain_tune.evaluation.crosslingual import PARTS, concept_split, evaluate_languages
    from domain_tune.evaluation.multilingual import evaluate_panel
    from domain_tune.evaluation.sts import evaluate_sts

    path = os.path.join(work, "measure", f"{name}.json")
    trained = os.path.join(run_dir, "metrics.json") if run_dir else None
    stale = trained and os.path.isfile(path) and os.path.getmtime(trained) > os.path.getmtime(path)
    if os.path.isfile(path) and not stale:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    print(f"measuring {name}", file=sys.stderr)
    model = model_fn()
    result = {"retrieval": {part: evaluate_languages(model, concept_split(sets, part)) for part in PARTS},
              "retrieval_all": evaluate_languages(model, sets)}
    s = evaluate_sts(model, sts.sentences1, sts.sentences2, sts.scores)
    result["sts_pearson"], result["sts_spearman"] = s["pearson"], s["spearman"]
    for split in ("heldout", "dev"):
        result[f"panel_{split}"] = evaluate_panel(model, stsb_dir, split=split, limit=args.panel_limit)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pathlib.Path(path).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def reusable(args, data, paths):
    """The earlier results of ``paths`` measured as this run would: ``[(path, result)]``."""
    found = []
    for path in paths:
        r = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
        same = (r.get("data") == data and r.get("recipe") == {k: getattr(args, k) for k in RECIPE}
                and r.get("panel_limit") == args.panel_limit)
        print(f"{path}: {'reusable' if same else 'measured otherwise (data, recipe or panel); not reused'}",
              file=sys.stderr)
        if same:
            found.append((path, r))
    return found


def reused_variant(previous, name, alphas):
    """``(variant entry, {model name: measurement})`` of ``name`` from an earlier result with
    the same spec and every interpolation weight asked for, else None."""
    for path, r in previous:
        v = r.get("variants", {}).get(name)
        wanted = [name] + [f"{name}+wise{a:g}" for a in alphas if a < 1.0]
        if v and v["spec"] == VARIANTS[name] and all(w in r["models"] for w in wanted):
            origin = v.get("measured") or {"date": r["machine"]["date"], "commit": r["machine"]["commit"],
                                           "command": r["commands"]["bench"]}
            return {**v, "measured": origin, "reused_from": os.fspath(path)}, \
                {w: r["models"][w] for w in wanted}
    return None


def panel_check(m, base, split="heldout"):
    """Mono and cross-lingual means not below the base, no pair more than PAIR_DROP below."""
    p, b = m[f"panel_{split}"], base[f"panel_{split}"]
    changes = {f"mono {lang}": p["mono"][lang]["pearson"] - b["mono"][lang]["pearson"] for lang in p["mono"]}
    changes |= {f"cross {pair}": p["cross"][pair]["pearson"] - b["cross"][pair]["pearson"] for pair in p["cross"]}
    worst = min(changes, key=changes.get)
    return {"mono_mean": p["mean"]["mono"] - b["mean"]["mono"], "cross_mean": p["mean"]["cross"] - b["mean"]["cross"],
            "worst": worst, "worst_change": changes[worst],
            "kept": (p["mean"]["mono"] >= b["mean"]["mono"] and p["mean"]["cross"] >= b["mean"]["cross"]
                     and changes[worst] >= -PAIR_DROP and m["sts_pearson"] >= base["sts_pearson"])}


def choose(models, names, base, part="validation"):
    """Of ``names``, the model with the best mean of fr->en and fr->fr top-1 on ``part`` among
    those that keep the languages (:func:`panel_check`), else among all."""
    def score(n):
        r = models[n]["retrieval"][part]
        return (r["fr->en"]["top1"] + r["fr->fr"]["top1"]) / 2

    kept = [n for n in names if panel_check(models[n], base)["kept"]]
    return max(kept or names, key=score) if names else None


def main(argv=None):
    args = parse_args(argv)
    started = time.perf_counter()
    meta = harness.machine_info()
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    esco_fr = os.path.join(args.shared, "esco", "occupations_fr.csv")
    sts_dir = os.path.join(args.shared, "stsbenchmark")
    stsb_dir = os.path.join(args.shared, "stsb-multi-mt")
    work = args.keep or tempfile.mkdtemp(prefix="bench-multilingual-")
    os.makedirs(work, exist_ok=True)
    cli = [sys.executable, "-m", "domain_tune.cli"]
    split = ["--holdout", str(HOLDOUT), "--seed", str(SEED), "--overwrite"]
    folders = {"en": os.path.join(work, "pairs"), "fr": os.path.join(work, "pairs-fr")}
    commands = {"en": ["pairs", "esco", esco, "--out", folders["en"], *split],
                "fr": ["pairs", "esco", esco, "--labels", f"fr={esco_fr}", "--out", folders["fr"], *split]}
    parallel_csv = os.path.join(work, "parallel.csv")
    commands["parallel"] = ["parallel-sentences", stsb_dir, "--out", parallel_csv, "--overwrite"]
    for key, folder in folders.items():
        if not os.path.isfile(os.path.join(folder, "train.csv")):
            run(cli + commands[key])
    if not os.path.isfile(parallel_csv):
        run(cli + commands["parallel"])

    from domain_tune.datasets.sts import load_split
    from domain_tune.evaluation.crosslingual import language_sets
    from domain_tune.models.interpolation import interpolate
    from domain_tune.models.loading import load_model

    sets = language_sets(folders["fr"])  # en and fr, the held-out concepts of both folders
    sts = load_split("dev", sts_dir)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}: choose from {', '.join(VARIANTS)}")
    for n in names:  # a variant that starts from another needs it first
        start = VARIANTS[n].get("start")
        if start and start not in names:
            raise SystemExit(f"{n} starts from {start}: add it to --variants")
    more = {}
    for part in filter(None, args.more_alphas.split(";")):
        variant, _, alphas = part.partition("=")
        more[variant.strip()] = [float(a) for a in alphas.split(",") if a.strip()]
    data = {"esco_sha256": sha256(esco), "esco_fr_sha256": sha256(esco_fr),
            "parallel_csv_sha256": sha256(parallel_csv),
            "train_csv_sha256": {k: sha256(os.path.join(f, "train.csv")) for k, f in folders.items()}}
    previous = reusable(args, data, args.reuse)
    base_from = next((r for _, r in previous if "base" in r["models"]), None)
    models = {"base": base_from["models"]["base"] if base_from else
              measure(args, "base", lambda: load_model("use-m3"), sets, stsb_dir, sts, work)}
    trained = {}
    for name in names:
        alphas = [args.alpha] + more.get(name, [])
        taken = reused_variant(previous, name, alphas)
        if taken:
            trained[name], measured = taken
            models.update(measured)
            print(f"{name}: reused from {trained[name]['reused_from']}", file=sys.stderr)
            continue
        start = VARIANTS[name].get("start")
        if start and not os.path.isfile(os.path.join(work, "runs", start, "metrics.json")):
            train(args, start, VARIANTS[start], folders, parallel_csv, work)  # reused above
        metrics = train(args, name, VARIANTS[name], folders, parallel_csv, work)
        trained[name] = {"spec": VARIANTS[name], "seconds": metrics["seconds"],
                         "train_pairs": metrics["train_pairs"], "epochs_run": metrics["epochs_run"]}
        out = os.path.join(work, "runs", name)
        models[name] = measure(args, name, lambda out=out: load_model(out), sets, stsb_dir, sts, work, out)
        for alpha in alphas:
            if alpha >= 1.0:
                continue

            def mixed(out=out, alpha=alpha):
                return interpolate(load_model("use-m3"), load_model(out), alpha)[0]
            models[f"{name}+wise{alpha:g}"] = measure(
                args, f"{name}+wise{alpha:g}", mixed, sets, stsb_dir, sts, work, out)
    english = [n for n in models if n.startswith("en")]
    french = [n for n in models if n.startswith("fr")]
    base = models["base"]
    result = {
        "models": models, "variants": trained, "recipe": {k: getattr(args, k) for k in RECIPE},
        "alpha": args.alpha,
        "chosen": {"english_labels": choose(models, english, base), "french_labels": choose(models, french, base)},
        "checks": {n: panel_check(m, base) for n, m in models.items() if n != "base"},
        "commands": {k: "domain-tune " + " ".join(v).replace(args.shared, "../shared/data").replace(work, "WORK")
                     for k, v in commands.items()}
        | {"bench": " ".join(["python", "scripts/bench_multilingual.py", *(sys.argv[1:] if argv is None else argv)])},
        "data": data, "panel_limit": args.panel_limit,
        "machine": meta, "wall_seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    pathlib.Path(args.out_dir, "multilingual.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    report = render(result)
    pathlib.Path(args.out_dir, "multilingual.md").write_text(report, encoding="utf-8")
    print(report)


# --- the report -------------------------------------------------------------------------


def label(name):
    if name is None:
        return "none (no variant in this run)"
    base, _, wise = name.partition("+wise")
    if name == "base":
        return "base (use-m3)"
    return LABELS.get(base, base) + (f", interpolated {wise}" if wise else "")


def _translation_mean(panel):
    return panel["mean"]["translation"]


def render(r):
    models = r["models"]
    names = list(models)
    base = models["base"]
    chosen = r["chosen"]

    def table(columns, names=names):
        """One row per model, one column per ``(heading, fn)``; changes against the base."""
        out = ["| model | " + " | ".join(text for text, _ in columns) + " |",
               "| --- |" + " --- |" * len(columns)]
        for n in names:
            cells = []
            for _, fn in columns:
                v, b = fn(models[n]), fn(base)
                cells.append(f"{v:.4f}" + ("" if n == "base" else f" ({v - b:+.4f})"))
            out.append(f"| {label(n)} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def by_metric(rows, names):
        """One row per ``(heading, fn)``, one column per model (few models, many metrics)."""
        out = ["| | " + " | ".join(label(n) for n in names) + " |", "| --- |" + " --- |" * len(names)]
        for text, fn in rows:
            cells = [f"{fn(models[n]):.4f}" + ("" if n == "base" else f" ({fn(models[n]) - fn(base):+.4f})")
                     for n in names]
            out.append(f"| {text} | " + " | ".join(cells) + " |")
        return "\n".join(out)

    def retrieval_columns(part):
        return [(f"{p} top-1", lambda m, p=p: m["retrieval"][part][p]["top1"]) for p in base["retrieval"][part]]

    def queries(part):
        return ", ".join(f"{p} {base['retrieval'][part][p]['n']:,}" for p in base["retrieval"][part])

    general = [
        ("STS-B dev, en", lambda m: m["sts_pearson"]),
        ("held-out mono", lambda m: m["panel_heldout"]["mean"]["mono"]),
        ("held-out cross", lambda m: m["panel_heldout"]["mean"]["cross"]),
        ("held-out translation", lambda m: _translation_mean(m["panel_heldout"])),
        ("dev mono", lambda m: m["panel_dev"]["mean"]["mono"]),
        ("dev cross", lambda m: m["panel_dev"]["mean"]["cross"]),
    ]
    panel = base["panel_heldout"]
    per_language = ([(f"mono {lang}", lambda m, lang=lang: m["panel_heldout"]["mono"][lang]["pearson"])
                     for lang in panel["mono"]]
                    + [(f"cross {p}", lambda m, p=p: m["panel_heldout"]["cross"][p]["pearson"])
                       for p in panel["cross"]])
    shown = ["base"] + [n for n in (chosen["english_labels"], chosen["french_labels"]) if n]
    checks = []
    for n, c in r["checks"].items():
        checks.append(f"| {label(n)} | {c['mono_mean']:+.4f} | {c['cross_mean']:+.4f} | "
                      f"{c['worst']} {c['worst_change']:+.4f} | {'yes' if c['kept'] else 'no'} |")
    targets = verdict(r)
    rc = r["recipe"]
    recipe = (f"--loss {rc['loss']} --optimizer {rc['optimizer']} --lr {rc['learning_rate']:g} "
              f"-b {rc['batch_size']} --epochs {rc['epochs']} --validation-split {rc['validation_split']:g} "
              f"--seed {rc['seed']}")
    timing = "; ".join(f"{n} {v['seconds']:.0f} s ({v['train_pairs']:,} pairs)" for n, v in r["variants"].items())
    reused = [f"{n} ({v['measured']['date'][:10]}, commit {v['measured']['commit']}"
              + (f": `{v['measured']['command']}`" if v["measured"].get("command") else "") + ")"
              for n, v in r["variants"].items() if v.get("reused_from")]
    reused = (f"\n- Taken from earlier runs of this benchmark with the same data, recipe and panel "
              f"(`--reuse`): {'; '.join(reused)}." if reused else "")
    m = r["machine"]
    return f"""# The domain gain in every language: ESCO with English labels, and with French labels too

Each row is a model: the base, the ESCO recipe trained on English labels only (with and
without alignment preservation, and with the transfer mechanisms tried), and on English plus
French labels; each also interpolated with the base (`interpolate --alpha {r['alpha']:g}`; some at
other weights). Changes against the base in brackets.

**Retrieval** ranks all {base['retrieval']['test']['en->en']['corpus']:,} occupations' preferred labels for
the alternative labels of the occupations held out of training (20%, seed 0), queries in one language
and concepts labelled in the same or the other (`fr->en`: French queries, English labels). The
held-out occupations are split by a hash of their id: **validation** (every choice below) and
**test** (the reported figures). **General quality** is measured on the held-out panel: a fifth of
the stsb-multi-mt train rows (the same rows in 11 languages) that no parallel file contains, so
no training step saw those sentences; the dev split is beside it.

## Test concepts

Top-1 of the queries of test concepts ({queries('test')} queries), then general quality (Pearson):
STS-B dev in English, and the means of the held-out panel (mono STS of 10 languages, cross-lingual
STS en-X, translation retrieval) and of the dev panel.

{table(retrieval_columns('test') + general)}

Chosen on validation concepts (the best mean of French top-1s among the models that keep the
languages): with English labels only **{label(chosen['english_labels'])}**; with French labels
**{label(chosen['french_labels'])}**.

{targets}

## Validation concepts (the choices)

Top-1 of the queries of validation concepts ({queries('validation')} queries).

{table(retrieval_columns('validation'))}

## Languages on the held-out panel

Change against the base (mono and cross-lingual means, the worst of the 21 language pairs);
kept: both means not below the base, no pair more than {PAIR_DROP} below, English STS-B not below.

| model | mono mean | cross mean | worst pair | kept |
| --- | --- | --- | --- | --- |
{chr(10).join(checks)}

Every language pair of the held-out panel (Pearson), the base and the two chosen models:

{by_metric(per_language, shown)}

## How it was measured

- Recipe: `{recipe} --patience {rc['epochs']} --no-sts`; alignment: `--parallel WORK/parallel.csv
  --align-loss contrastive --align-weight 5 --parallel-batch-size 32`; frozen embeddings:
  `--embeddings frozen`; the tuned teacher: `train ... --model RUN_EN --parallel WORK/parallel.csv
  --align-loss embedding --align-teacher base --align-weight 10 --parallel-batch-size 32 --epochs 1`
  (the `base` teacher is the model training starts from, here the tuned one); the self teacher:
  `--parallel WORK/parallel.csv --align-loss embedding --align-teacher self --align-weight 5
  --parallel-batch-size 32` (and `--align-weight 1`); alignment at weight 10: `--align-weight 10`;
  in-batch scale 14: `--scale 14`; lr 2e-4: `--lr 2e-4`.
- Pairs: `{r['commands']['en']}`; `{r['commands']['fr']}`. Parallel sentences:
  `{r['commands']['parallel']}` (stsb-multi-mt train rows outside the held-out panel).
- Training time: {timing}; {'this run (the rest reused)' if reused else 'whole benchmark'} {r['wall_seconds']:.0f} s.{reused}
- Command: `{r['commands']['bench']}`.
- Data: ESCO sha256 `{r['data']['esco_sha256']}` (en), `{r['data']['esco_fr_sha256']}` (fr);
  parallel file `{r['data']['parallel_csv_sha256']}`.
- Machine: {m['cpu_model']}, {m['cores']} cores, SIMD flags {' '.join(m['simd_flags'])}; Python
  {m['python']}; {m['date']}; commit {m['commit']}.
"""


def verdict(r):
    """The issue's targets, on test concepts, for the two chosen models."""
    models, base = r["models"], r["models"]["base"]
    t = lambda m, p: m["retrieval"]["test"][p]["top1"]  # noqa: E731
    lines = ["Targets (test concepts):", ""]
    fr_name, en_name = r["chosen"]["french_labels"], r["chosen"]["english_labels"]
    if fr_name:
        fr = models[fr_name]
        for p in ("fr->en", "fr->fr"):
            gain = t(fr, p) - t(base, p)
            lines.append(f"- with French labels, {p} top-1 >= base + {TARGETS['fr_gain']:g}: "
                         f"{gain:+.4f} ({'met' if gain >= TARGETS['fr_gain'] else 'not met'})")
        lines.append(f"- with French labels, English top-1 >= {TARGETS['en_top1']}: {t(fr, 'en->en'):.4f} "
                     f"({'met' if t(fr, 'en->en') >= TARGETS['en_top1'] else 'not met'})")
    if en_name:
        en = models[en_name]
        en_gain, fr_gain = t(en, "en->en") - t(base, "en->en"), t(en, "fr->en") - t(base, "fr->en")
        lines.append(f"- with English labels only, fr->en gain >= half the English gain: {fr_gain:+.4f} "
                     f"against {en_gain:+.4f} ({'met' if fr_gain >= en_gain / 2 else 'not met'})")
    for name in (en_name, fr_name):
        if name:
            c = r["checks"][name]
            lines.append(f"- {label(name)}, languages on the held-out panel: mono {c['mono_mean']:+.4f}, "
                         f"cross {c['cross_mean']:+.4f}, worst {c['worst']} {c['worst_change']:+.4f} "
                         f"({'kept' if c['kept'] else 'not kept'})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
