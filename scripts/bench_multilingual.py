"""Tune in English, keep every language: the ESCO recipe with and without alignment preservation.

Builds the ESCO pairs (``domain-tune pairs esco``, 20% of occupations held
out) and a parallel file from the stsb-multi-mt *train* split (``domain-tune
parallel-sentences``: every English sentence with its translation in the 10
other languages), trains the documented ESCO recipe (in-batch-symmetric,
lazy-adam, lr 1e-4, batch 64, 3 epochs, validation 0.05) once per variant

* ``none``: no alignment preservation (the plain recipe);
* ``base:W:N``: multilingual distillation, the frozen base model as teacher,
  weight ``W``, ``N`` parallel sentences per step;
* ``self:W:N``: the same with the tuned model's own embedding of the source
  (gradient stopped) as teacher;

and measures the base model, every tuned model and its interpolation with the
base (``--alpha``, WiSE-FT) on

* held-out ESCO retrieval (English): top-1, MRR;
* STS-B dev (English) Pearson;
* the multilingual panel on the stsb-multi-mt *dev* split
  (:func:`domain_tune.evaluation.multilingual.evaluate_panel`): monolingual STS
  in each language, cross-lingual STS (sentence 1 English, sentence 2 in
  language X), translation retrieval in both directions.

Writes ``results/multilingual.md`` and ``results/multilingual.json``.  With
``--keep DIR`` the pairs, the parallel file, the runs and the measurements
stay in DIR and a finished run (same options) is reused, not trained again.

    python scripts/bench_multilingual.py --keep /tmp/bench-ml
    python scripts/bench_multilingual.py --variants none,base:1:16 --max-pairs 5000 --epochs 1
"""

import argparse
import dataclasses
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

from domain_tune.datasets.pairs import sha256  # noqa: E402

# The documented ESCO recipe (README "Domain adaptation on ESCO"; scripts/bench_quality.py).
RECIPE = {"epochs": 3, "batch_size": 64, "learning_rate": 1e-4, "optimizer": "lazy-adam",
          "loss": "in-batch-symmetric", "validation_split": 0.05, "holdout": 0.2, "seed": 0}
DEFAULT_VARIANTS = "none,base:10:8,base:50:32:similarity,base:5:32:contrastive"
TARGETS = {"cross": 0.775, "pair_drop": 0.005, "mono": 0.791, "top1": 0.65}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--out-dir", default=str(ROOT / "results"))
    p.add_argument("--keep", help="Keep pairs, parallel file, runs and measurements here (and reuse them).")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="Comma-separated: none, or TEACHER:WEIGHT:PARALLEL_BATCH (teacher base or self).")
    p.add_argument("--recommend", help="The variant whose numbers the targets are checked on "
                   "(chosen on dev) [default: the last].")
    p.add_argument("--alpha", type=float, default=0.8, help="Interpolation weight of the tuned model (1: skip).")
    p.add_argument("--wise", help="Comma-separated variants to interpolate [default: every one].")
    p.add_argument("--languages", help="Panel languages [default: all of the data].")
    p.add_argument("--parallel-languages", help="Languages of the parallel file [default: all 10].")
    p.add_argument("--max-pairs", type=int, help="Train on a random subset of the pairs.")
    p.add_argument("--panel-limit", type=int, help="Only the first N dev pairs of each panel language.")
    for key, value in RECIPE.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    return p.parse_args()


def parse_variant(spec):
    """``none`` -> None; ``base:1:16`` -> dict(teacher, weight, batch_size)."""
    if spec == "none":
        return None
    parts = spec.split(":")
    teacher = parts[0]
    if teacher not in ("base", "self") or len(parts) > 4:
        raise SystemExit(f"bad variant {spec!r}: use none or TEACHER:WEIGHT:BATCH[:OBJECTIVE]")
    weight = float(parts[1]) if len(parts) > 1 else 1.0
    batch = int(parts[2]) if len(parts) > 2 else 16
    loss = parts[3] if len(parts) > 3 else "embedding"
    return {"teacher": teacher, "weight": weight, "batch_size": batch, "loss": loss}


def variant_name(align):
    """``none``, ``base-w10-b8`` (the embedding objective) or ``base-w50-b32-similarity``."""
    if align is None:
        return "none"
    name = f"{align['teacher']}-w{align['weight']:g}-b{align['batch_size']}"
    return name if align["loss"] == "embedding" else f"{name}-{align['loss']}"


def run(command):
    print("$ " + " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def train(args, name, align, train_csv, parallel_csv, work):
    """Train one variant into ``work/runs/NAME`` (reused when its options match)."""
    from domain_tune.training.distillation import AlignOptions
    from domain_tune.training.fit import FitOptions
    from domain_tune.training.run import TrainJob, train_run

    out = os.path.join(work, "runs", name)
    job = TrainJob(
        pairs_path=train_csv, out=out, sts=False, overwrite=True,
        validation_split=args.validation_split,
        fit=FitOptions(epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, optimizer=args.optimizer,
                       loss=args.loss, seed=args.seed, patience=args.epochs),
        align=AlignOptions(parallel=parallel_csv, **align) if align else None,
        verbose=2,
    )
    done = os.path.join(out, "metrics.json")
    if os.path.isfile(done):
        with open(done) as f:
            metrics = json.load(f)
        same = ("pairs_path", "model", "validation_split", "fit", "embeddings", "align")
        wanted = json.loads(json.dumps(job.options()))
        defaults = {"fit": FitOptions(), "align": AlignOptions(),
                    "embeddings": job.embeddings.__class__()}
        defaults = {k: json.loads(json.dumps(dataclasses.asdict(v))) for k, v in defaults.items()}
        if all(_same(metrics["options"].get(k), wanted.get(k), defaults.get(k)) for k in same):
            print(f"reusing {out}", file=sys.stderr)
            return metrics
    os.makedirs(os.path.dirname(out), exist_ok=True)
    print(f"training {name}", file=sys.stderr)
    return train_run(job, echo=lambda line: print(line, file=sys.stderr))


def _same(old, new, default=None):
    """Stored run options ``old`` equal ``new``; an option added since the run was stored
    counts as equal when ``new`` gives it its default (``default``: the option group's)."""
    if isinstance(old, dict) and isinstance(new, dict):
        default = default or {}
        return set(old) <= set(new) and all(
            old[k] == v if k in old else v == default.get(k) for k, v in new.items())
    return old == new


def measure(args, name, model_fn, data, sts, stsb_dir, work, run_dir=None):
    """Retrieval, STS-B and the multilingual panel of one model (cached in work/measure)."""
    from domain_tune.evaluation.multilingual import evaluate_panel
    from domain_tune.evaluation.retrieval import evaluate_retrieval
    from domain_tune.evaluation.sts import evaluate_sts

    path = os.path.join(work, "measure", f"{name}.json")
    trained = os.path.join(run_dir, "metrics.json") if run_dir else None
    stale = trained and os.path.isfile(path) and os.path.getmtime(trained) > os.path.getmtime(path)
    if os.path.isfile(path) and not stale:
        with open(path) as f:
            return json.load(f)
    print(f"measuring {name}", file=sys.stderr)
    model = model_fn()
    r = evaluate_retrieval(model, data.queries, data.query_ids, data.corpus_labels, data.corpus_ids)
    s = evaluate_sts(model, sts.sentences1, sts.sentences2, sts.scores)
    languages = args.languages.split(",") if args.languages else None
    panel = evaluate_panel(model, stsb_dir, split="dev", languages=languages, limit=args.panel_limit)
    result = {"top1": r["top1"], "mrr": r["mrr"], "n_queries": r["n"], "corpus": r["corpus"],
              "sts_pearson": s["pearson"], "sts_spearman": s["spearman"], "panel": panel}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"model": platform.processor() or platform.machine(), "flags": ""}
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {"model": info.get("Model name", "").strip(), "flags": info.get("Flags", "").strip()}


def main():
    args = parse_args()
    started = time.perf_counter()
    esco = os.path.join(args.shared, "esco", "occupations_en.csv")
    sts_dir = os.path.join(args.shared, "stsbenchmark")
    stsb_dir = os.path.join(args.shared, "stsb-multi-mt")
    work = args.keep or tempfile.mkdtemp(prefix="bench-multilingual-")
    os.makedirs(work, exist_ok=True)
    cli = [sys.executable, "-m", "domain_tune.cli"]
    pairs_dir = os.path.join(work, "pairs")
    pairs_cmd = ["pairs", "esco", esco, "--out", pairs_dir, "--holdout", str(args.holdout),
                 "--seed", str(args.seed), "--overwrite"]
    if args.max_pairs:
        pairs_cmd += ["--max-pairs", str(args.max_pairs)]
    parallel_csv = os.path.join(work, "parallel.csv")
    parallel_cmd = ["parallel-sentences", stsb_dir, "--out", parallel_csv, "--split", "train",
                    "--overwrite"]
    if args.parallel_languages:
        parallel_cmd += ["--languages", args.parallel_languages]
    if not os.path.isfile(os.path.join(pairs_dir, "train.csv")):
        run(cli + pairs_cmd)
    if not os.path.isfile(parallel_csv):
        run(cli + parallel_cmd)
    train_csv = os.path.join(pairs_dir, "train.csv")

    from domain_tune.datasets.sts import load_split
    from domain_tune.datasets.retrieval_set import read_retrieval_set
    from domain_tune.models.interpolation import interpolate
    from domain_tune.models.loading import load_model

    data = read_retrieval_set(os.path.join(pairs_dir, "heldout_queries.csv"),
                              os.path.join(pairs_dir, "corpus.csv"))
    sts = load_split("dev", sts_dir)
    specs = [v.strip() for v in args.variants.split(",") if v.strip()]
    variants = {}
    models = {"base": measure(args, "base", lambda: load_model("use-m3"), data, sts, stsb_dir, work)}
    for spec in specs:
        align = parse_variant(spec)
        name = variant_name(align)
        metrics = train(args, name, align, train_csv, parallel_csv, work)
        variants[name] = {"spec": spec, "align": align, "train_seconds": metrics["seconds"],
                          "train_pairs": metrics["train_pairs"], "epochs_run": metrics["epochs_run"],
                          "alignment": metrics.get("alignment")}
        out = os.path.join(work, "runs", name)
        models[name] = measure(args, name, lambda: load_model(out), data, sts, stsb_dir, work, out)
        if args.alpha < 1.0 and (not args.wise or spec in args.wise.split(",")):
            def mixed(out=out):
                return interpolate(load_model("use-m3"), load_model(out), args.alpha)[0]
            models[f"{name}+wise{args.alpha:g}"] = measure(
                args, f"{name}+wise{args.alpha:g}", mixed, data, sts, stsb_dir, work, out)
    recommend = args.recommend or list(models)[-1]
    result = {
        "models": models, "variants": variants, "recommended": recommend,
        "recipe": RECIPE | {k: getattr(args, k) for k in RECIPE} | {"max_pairs": args.max_pairs},
        "alpha": args.alpha, "targets": TARGETS,
        "commands": {"pairs": "domain-tune " + " ".join(pairs_cmd).replace(args.shared, "../shared/data").replace(work, "WORK"),
                     "parallel": "domain-tune " + " ".join(parallel_cmd).replace(args.shared, "../shared/data").replace(work, "WORK"),
                     "bench": " ".join(["python", "scripts/bench_multilingual.py", *sys.argv[1:]])},
        "data": {"esco_sha256": sha256(esco), "train_csv_sha256": sha256(train_csv),
                 "parallel_csv_sha256": sha256(parallel_csv),
                 "sts_dev_sha256": sha256(os.path.join(sts_dir, "sts-dev.csv")),
                 "stsb_multi_mt_sha256": {f: sha256(os.path.join(stsb_dir, f))
                                          for f in sorted(os.listdir(stsb_dir)) if f.endswith(".csv")}},
        "machine": {"cpu": lscpu(), "arch": platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "multilingual.json"), "w") as f:
        json.dump(result, f, indent=2)
    report = render(result)
    pathlib.Path(args.out_dir, "multilingual.md").write_text(report, encoding="utf-8")
    print(report)


# --- the report -------------------------------------------------------------------------


def _label(name, variants):
    base, _, wise = name.partition("+wise")
    if name == "base":
        return "base (use-m3)"
    v = variants[base]["align"]
    if v is None:
        label = "tuned"
    elif v.get("loss") == "contrastive":
        label = f"contrastive, w {v['weight']:g}, {v['batch_size']}/step"
    else:
        label = (f"{v['teacher']} teacher{', similarities' if v.get('loss') == 'similarity' else ''}"
                 f", w {v['weight']:g}, {v['batch_size']}/step")
    return label + (f" + interpolate {wise}" if wise else "")


def _translation_mean(panel, pair):
    return sum(panel["translation"][pair].values()) / len(panel["translation"][pair])


def check(m, base):
    """The issue's targets for model ``m`` against ``base``: ``{target: (value, met)}``."""
    p, b = m["panel"], base["panel"]
    drops = {pair: p["cross"][pair]["pearson"] - b["cross"][pair]["pearson"] for pair in p["cross"]}
    worst = min(drops, key=drops.get)
    trans = {pair: _translation_mean(p, pair) - _translation_mean(b, pair) for pair in p["translation"]}
    worst_t = min(trans, key=trans.get)
    return {
        "cross-lingual STS mean >= base": (p["mean"]["cross"], p["mean"]["cross"] >= b["mean"]["cross"]),
        f"no cross-lingual pair > {TARGETS['pair_drop']} below base (worst change: {worst})": (
            drops[worst], drops[worst] >= -TARGETS["pair_drop"]),
        f"mono non-English mean >= {TARGETS['mono']}": (p["mean"]["mono"], p["mean"]["mono"] >= TARGETS["mono"]),
        f"English held-out top-1 >= {TARGETS['top1']}": (m["top1"], m["top1"] >= TARGETS["top1"]),
        f"translation retrieval not below base (worst change: {worst_t})": (
            trans[worst_t], trans[worst_t] >= 0),
    }


def render(r):
    models, variants = r["models"], r["variants"]
    names = list(models)
    base = models["base"]
    head = "| | " + " | ".join(_label(n, variants) for n in names) + " |"
    rule = "| --- |" + " --- |" * len(names)

    def row(label, fn, change=True):
        cells = []
        for n in names:
            v = fn(models[n])
            d = v - fn(base)
            cells.append(f"{v:.4f}" + (f" ({d:+.4f})" if change and n != "base" else ""))
        return f"| {label} | " + " | ".join(cells) + " |"

    panel = base["panel"]
    langs = [l for l in panel["languages"] if l != "en"]
    summary = [
        row("English held-out ESCO top-1", lambda m: m["top1"]),
        row("English held-out ESCO MRR", lambda m: m["mrr"]),
        row("STS-B dev Pearson, English", lambda m: m["sts_pearson"]),
        row("mono STS dev, mean of other languages", lambda m: m["panel"]["mean"]["mono"]),
        row("cross-lingual STS dev (en-X), mean", lambda m: m["panel"]["mean"]["cross"]),
        row("translation retrieval, mean accuracy", lambda m: m["panel"]["mean"]["translation"]),
    ]
    mono = [row(f"mono {l}", lambda m, l=l: m["panel"]["mono"][l]["pearson"]) for l in panel["mono"]]
    cross = [row(f"cross {p}", lambda m, p=p: m["panel"]["cross"][p]["pearson"]) for p in panel["cross"]]
    trans = [row(f"translation {p} (both directions)", lambda m, p=p: _translation_mean(m["panel"], p))
             for p in panel["translation"]]
    rec = r["recommended"]
    lines = []
    for target, (value, met) in check(models[rec], base).items():
        lines.append(f"- {target}: {value:.4f} ({'met' if met else 'not met'})")
    verdict = "\n".join(lines)
    timing = "; ".join(
        f"{_label(n, variants)}: {v['train_seconds']:.0f} s" for n, v in variants.items())
    align = [f"{_label(n, variants)}: distillation loss per epoch "
             + ", ".join(f"{x:.4f}" for x in v["alignment"]["loss_per_epoch"])
             for n, v in variants.items() if v["alignment"]]
    rc = r["recipe"]
    recipe = (f"`--loss {rc['loss']} --optimizer {rc['optimizer']} --lr {rc['learning_rate']:g} "
              f"-b {rc['batch_size']} --epochs {rc['epochs']} --validation-split {rc['validation_split']:g} "
              f"--seed {rc['seed']}`" + (f", {rc['max_pairs']} pairs" if rc.get("max_pairs") else ""))
    cpu = r["machine"]["cpu"]
    return f"""# Tune in English, keep every language: ESCO with alignment preservation

Each column is a model: the base, the documented ESCO recipe (`tuned`), the recipe with
alignment on parallel sentences (`train --parallel`: the objective -- `embedding` distillation
with teacher base or self, `similarities` distilled from the base, or `contrastive` translation
ranking --, its weight and parallel sentences per step), some also interpolated with the base
(`interpolate --alpha {r['alpha']:g}`).
Changes against the base in brackets. Multilingual numbers are on the stsb-multi-mt **dev**
split ({panel['n']} pairs per language), Pearson of cosine similarity; translation retrieval is
the accuracy of finding each English dev sentence's translation among all dev sentences of language X,
and the reverse (the two directions averaged).

{head}
{rule}
{chr(10).join(summary)}

Recommended (chosen on these dev numbers): **{_label(rec, variants)}**. Targets:

{verdict}

## Per language

{head}
{rule}
{chr(10).join(mono + cross + trans)}

## How it was measured

- Recipe: {recipe}, on `pairs esco --holdout {rc['holdout']:g} --seed {rc['seed']}`
  ({next(iter(variants.values()))['train_pairs']} training pairs); held-out queries: {base['n_queries']} alternative
  labels of unseen occupations ranked against all {base['corpus']} preferred labels.
- Parallel sentences: the stsb-multi-mt **train** split, each English sentence with its translation
  in 10 languages (`{r['commands']['parallel']}`); never the dev sentences measured here.
- {'; '.join(align) if align else 'no alignment runs'}.
- Training time: {timing}; whole benchmark {r['wall_seconds']:.0f} s.
- Commands: `{r['commands']['bench']}` runs all of it. Each model by hand:
  `{r['commands']['pairs']}`, then
  `domain-tune train WORK/pairs/train.csv --out RUN {recipe.strip('`')} --patience {rc['epochs']} --no-sts`
  plus, for the alignment columns, `--parallel WORK/parallel.csv --align-loss L --align-teacher T
  --align-weight W --parallel-batch-size N`; `domain-tune interpolate --model RUN --alpha {r['alpha']:g} --out RUN-wise`;
  measured with `domain-tune eval-retrieval`, `domain-tune eval-sts` and `domain-tune eval-sts --panel
  --multilingual-dir ../shared/data/stsb-multi-mt`.
- Data: ESCO occupations sha256 `{r['data']['esco_sha256']}`; training pairs `{r['data']['train_csv_sha256']}`;
  parallel file `{r['data']['parallel_csv_sha256']}`; STS-B dev `{r['data']['sts_dev_sha256']}`;
  stsb-multi-mt files in `results/multilingual.json`.
- Machine: {cpu['model']} ({r['machine']['cores']} cores, {r['machine']['arch']}), Python {r['machine']['python']};
  {r['date']}. CPU flags: {cpu['flags']}.
"""


if __name__ == "__main__":
    main()
