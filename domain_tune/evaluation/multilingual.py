"""STS in every language, cross-lingual STS and translation retrieval: one panel.

The evaluators take plain lists or arrays and return dicts of metrics; reading
the files stays in :mod:`domain_tune.datasets.stsb_multi`.  On row-aligned
translations of one STS split (``data[lang]``, the pivot ``en`` among them):

* **mono** ``lang``: Pearson / Spearman of the cosine of sentence 1 and
  sentence 2 of ``lang`` against the gold scores;
* **cross** ``en-lang``: the same with sentence 1 from the pivot and
  sentence 2 from ``lang``;
* **translation** ``en-lang``: the rows' sentences (both columns) are parallel
  sentences; :func:`translation_accuracy` in both directions.

``mean`` averages mono over the non-pivot languages, cross over the pairs and
translation over both directions of every pair.  Every distinct sentence of
every language is embedded once.
"""

import time

import numpy as np

from domain_tune.embedding import DEFAULT_BATCH_SIZE, encode
from domain_tune.errors import BadInputError
from domain_tune.evaluation.retrieval import MAX_CELLS
from domain_tune.evaluation.sts import correlations, pair_similarity
from domain_tune.similarity import normalize_rows


def _nearest(queries, candidates, chunk=1024):
    """Index of each query's most cosine-similar candidate (the first of ties)."""
    q, c = normalize_rows(queries), normalize_rows(candidates)
    out = np.empty(len(q), dtype=np.int64)
    chunk = max(1, min(chunk, MAX_CELLS // max(1, len(c))))
    for s in range(0, len(q), chunk):
        out[s : s + chunk] = np.argmax(q[s : s + chunk] @ c.T, axis=1)
    return out


def _hits(nearest, texts):
    if texts is None:
        return nearest == np.arange(len(nearest))
    texts = np.asarray(texts, dtype=object)
    return texts[nearest] == texts


def translation_accuracy(src_emb, tgt_emb, src_texts=None, tgt_texts=None):
    """Parallel-sentence retrieval accuracy in both directions.

    Row *i* of ``src_emb`` and row *i* of ``tgt_emb`` embed a sentence and its
    translation.  Source sentence *i* is a hit when its most similar target
    (cosine, over all rows of ``tgt_emb``) is its own translation, and the same
    the other way round.  Returns ``{"src_to_tgt": acc, "tgt_to_src": acc}``.

    Duplicates: when ``tgt_texts`` is given, a retrieved row counts as a hit
    if its *text* equals the gold translation's text (a sentence that occurs
    on several rows is found whichever of its rows comes first), likewise with
    ``src_texts`` for the other direction; without texts a hit is the very
    row *i*.  (sentence-transformers' ``TranslationEvaluator`` counts only row
    *i*, which penalises identical sentences it cannot tell apart.)
    """
    src_emb, tgt_emb = np.asarray(src_emb), np.asarray(tgt_emb)
    if src_emb.shape[0] != tgt_emb.shape[0]:
        raise ValueError("src_emb and tgt_emb must have the same number of rows")
    if src_emb.shape[0] == 0:
        raise ValueError("need at least one parallel sentence")
    for texts in (src_texts, tgt_texts):
        if texts is not None and len(texts) != src_emb.shape[0]:
            raise ValueError("src_texts and tgt_texts must have one text per row")
    forward = _hits(_nearest(src_emb, tgt_emb), tgt_texts)
    backward = _hits(_nearest(tgt_emb, src_emb), src_texts)
    return {"src_to_tgt": float(forward.mean()), "tgt_to_src": float(backward.mean())}


def parallel_pairs(src_texts, tgt_texts):
    """The distinct (source, translation) pairs, first-seen order.

    STS splits repeat sentences on several rows; each distinct pair is
    retrieved once and is one candidate.
    """
    if len(src_texts) != len(tgt_texts):
        raise ValueError("src_texts and tgt_texts must have the same length")
    seen = dict.fromkeys(zip(src_texts, tgt_texts))
    return [s for s, _ in seen], [t for _, t in seen]


def evaluate_translation(model, src_texts, tgt_texts, names=("src", "tgt"),
                         batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """Translation retrieval of a model on parallel sentences.

    Returns ``{"n": distinct pairs, "<src>-><tgt>": acc, "<tgt>-><src>": acc}``.
    """
    src, tgt = parallel_pairs(list(src_texts), list(tgt_texts))
    if len(src) < 2:  # the only candidate would be the translation: accuracy 1.0, measuring nothing
        raise BadInputError(f"translation retrieval needs at least 2 distinct parallel pairs "
                            f"(got {len(src)}); with one, each sentence's only candidate is its "
                            "own translation")
    emb = encode(model, src + tgt, batch_size, progress, "Translation")
    acc = translation_accuracy(emb[: len(src)], emb[len(src):], src, tgt)
    a, b = names
    return {"n": len(src), f"{a}->{b}": acc["src_to_tgt"], f"{b}->{a}": acc["tgt_to_src"]}


def _sts(a, b, scores):
    return correlations(pair_similarity(a, b, "cosine"), scores)


def _translation_pair(data, embeddings, lang):
    """Translation retrieval pivot <-> ``lang`` on both columns of the rows, each distinct
    (source, translation) pair once."""
    pivot = data.pivot
    src_texts = data.data[pivot].sentences1 + data.data[pivot].sentences2
    tgt_texts = data.data[lang].sentences1 + data.data[lang].sentences2
    first = {}  # each distinct (source, translation) pair once, at its first row
    for i, key in enumerate(zip(src_texts, tgt_texts)):
        first.setdefault(key, i)
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    acc = translation_accuracy(np.concatenate(embeddings[pivot])[rows],
                               np.concatenate(embeddings[lang])[rows],
                               [k[0] for k in first], [k[1] for k in first])
    return {"n": len(first), f"{pivot}->{lang}": acc["src_to_tgt"],
            f"{lang}->{pivot}": acc["tgt_to_src"]}


def _embed_split(model, data, batch_size, progress):
    """``{lang: (emb_sentence1, emb_sentence2)}``, each distinct sentence embedded once."""
    order = [data.pivot, *data.languages]
    texts = []
    for lang in order:
        texts += data.data[lang].sentences1 + data.data[lang].sentences2
    emb = encode(model, texts, batch_size, progress, "Multilingual STS")
    n = len(data)
    embeddings = {lang: (emb[2 * k * n : (2 * k + 1) * n], emb[(2 * k + 1) * n : (2 * k + 2) * n])
                  for k, lang in enumerate(order)}
    return embeddings, len(set(texts))


def evaluate_translation_split(model, data, batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """Translation retrieval pivot <-> each language of a loaded split.

    Returns ``{"en-de": {"n": distinct pairs, "en->de": acc, "de->en": acc}, ...}``.
    """
    embeddings, _ = _embed_split(model, data, batch_size, progress)
    return {f"{data.pivot}-{lang}": _translation_pair(data, embeddings, lang)
            for lang in data.languages}


def panel_from_embeddings(data, embeddings):
    """The panel's metrics from ``embeddings[lang] = (emb_sentence1, emb_sentence2)``.

    ``data`` is a :class:`~domain_tune.datasets.stsb_multi.MultilingualSplit`.
    """
    pivot = data.pivot
    scores = np.asarray(data.data[pivot].scores, float)
    p1, p2 = embeddings[pivot]
    mono = {pivot: _sts(p1, p2, scores)}
    cross, translation, parallel = {}, {}, {}
    for lang in data.languages:
        e1, e2 = embeddings[lang]
        pair = f"{pivot}-{lang}"
        mono[lang] = _sts(e1, e2, scores)
        cross[pair] = _sts(p1, e2, scores)
        result = _translation_pair(data, embeddings, lang)
        parallel[pair] = result.pop("n")
        translation[pair] = result
    others = [mono[lang] for lang in data.languages]
    mean = {
        "mono": float(np.mean([m["pearson"] for m in others])),
        "mono_spearman": float(np.mean([m["spearman"] for m in others])),
        "cross": float(np.mean([c["pearson"] for c in cross.values()])),
        "cross_spearman": float(np.mean([c["spearman"] for c in cross.values()])),
        "translation": float(np.mean([a for t in translation.values() for a in t.values()])),
    }
    return {"split": data.split, "n": len(data), "pivot": pivot, "languages": list(data.languages),
            "mono": mono, "cross": cross, "translation": translation, "mean": mean,
            "parallel_pairs": parallel}


def evaluate_panel(model, data_dir=None, split="dev", languages=None, limit=None,
                   batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """Mono, cross-lingual and translation metrics of ``model`` in every language.

    ``data_dir`` is a folder of ``stsb-LANG-SPLIT.csv`` files (``None``: the
    environment variable or the cached download, see
    :func:`~domain_tune.datasets.stsb_multi.resolve_multilingual_dir`) or an
    already loaded :class:`~domain_tune.datasets.stsb_multi.MultilingualSplit`
    (then ``split``, ``languages`` and ``limit`` are ignored).  ``languages``:
    a list or a comma-separated string; default every language there.

    Returns a JSON-able dict::

        {"split", "n", "pivot", "languages",
         "mono": {lang: {"pearson", "spearman"}},          # the pivot too
         "cross": {"en-de": {"pearson", "spearman"}},      # sentence 1 en, sentence 2 de
         "translation": {"en-de": {"en->de": acc, "de->en": acc}},
         "mean": {"mono", "mono_spearman", "cross", "cross_spearman", "translation"},
         "parallel_pairs": {"en-de": distinct parallel pairs retrieved},
         "sentences": distinct sentences embedded, "seconds": wall time}
    """
    from domain_tune.datasets.stsb_multi import MultilingualSplit, load_multilingual

    start = time.perf_counter()
    data = data_dir if isinstance(data_dir, MultilingualSplit) else \
        load_multilingual(data_dir, split, languages, limit)
    embeddings, distinct = _embed_split(model, data, batch_size, progress)
    result = panel_from_embeddings(data, embeddings)
    result["sentences"] = distinct
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def worst_pair(before, after):
    """The cross-lingual pair whose Pearson changed most for the worse: ``(pair, before, after)``."""
    pairs = [p for p in after["cross"] if p in before["cross"]]
    if not pairs:
        return None
    pair = min(pairs, key=lambda p: after["cross"][p]["pearson"] - before["cross"][p]["pearson"])
    return pair, before["cross"][pair]["pearson"], after["cross"][pair]["pearson"]


def summary_lines(before, after=None):
    """Printed lines of a panel, or of a panel before and after training."""
    def means(p):
        m = p["mean"]
        return m["mono"], m["cross"], m["translation"]

    langs = ",".join(before["languages"])
    head = f"{before['split']}, {before['n']} pairs, {before['pivot']} + {langs}"
    if after is None:
        mono, cross, trans = means(before)
        return [f"Multilingual STS ({head}): mono mean Pearson {mono:.4f}  cross mean "
                f"{cross:.4f}  translation accuracy {trans:.4f}"]
    (m0, c0, t0), (m1, c1, t1) = means(before), means(after)
    lines = [
        f"Multilingual STS ({head}), before -> after:",
        f"  mono mean Pearson {m0:.4f} -> {m1:.4f} ({m1 - m0:+.4f})  cross mean {c0:.4f} -> "
        f"{c1:.4f} ({c1 - c0:+.4f})  translation accuracy {t0:.4f} -> {t1:.4f} ({t1 - t0:+.4f})",
    ]
    worst = worst_pair(before, after)
    if worst:
        pair, b, a = worst
        lines.append(f"  worst cross-lingual pair {pair}: {b:.4f} -> {a:.4f} ({a - b:+.4f})")
    return lines


# --- single evaluations and printing -------------------------------------------


def evaluate_language(model, language, data_dir=None, split="dev", limit=None,
                      similarity="cosine", batch_size=DEFAULT_BATCH_SIZE, progress=False):
    """STS in one language (``"de"``) or across two (``"en-de"``: sentence 1 from en, 2 from de).

    Returns :func:`~domain_tune.evaluation.sts.evaluate_sts`'s dict plus
    ``"language"`` and ``"split"``.
    """
    from domain_tune.datasets.stsb_multi import load_language
    from domain_tune.evaluation.sts import evaluate_sts

    data = load_language(language, data_dir, split, limit)
    result = evaluate_sts(model, data.sentences1, data.sentences2, data.scores, similarity,
                          batch_size=batch_size, progress=progress)
    return {"language": language, "split": split, **result}


def panel_lines(panel):
    """The panel as console lines: one row per language, then the means."""
    pivot = panel["pivot"]
    to, back = f"{pivot}->LANG", f"LANG->{pivot}"
    lines = [f"{'language':<9} {'mono P':>7} {'mono S':>7} {'cross P':>8} {'cross S':>8} "
             f"{to:>8} {back:>8}"]
    forward, backward = [], []
    for lang in [pivot, *panel["languages"]]:
        mono, pair = panel["mono"][lang], f"{pivot}-{lang}"
        row = f"{lang:<9} {mono['pearson']:>7.4f} {mono['spearman']:>7.4f}"
        if pair in panel["cross"]:
            cross, tr = panel["cross"][pair], panel["translation"][pair]
            forward.append(tr[f"{pivot}->{lang}"])
            backward.append(tr[f"{lang}->{pivot}"])
            row += (f" {cross['pearson']:>8.4f} {cross['spearman']:>8.4f} "
                    f"{forward[-1]:>8.4f} {backward[-1]:>8.4f}")
        lines.append(row)
    m = panel["mean"]
    lines.append(f"{'mean':<9} {m['mono']:>7.4f} {m['mono_spearman']:>7.4f} {m['cross']:>8.4f} "
                 f"{m['cross_spearman']:>8.4f} {np.mean(forward):>8.4f} {np.mean(backward):>8.4f}")
    lines.append(f"(mono mean over the languages other than {pivot}; translation accuracy mean "
                 f"{m['translation']:.4f})")
    return lines


def _translation_mean(panel, pair):
    return float(np.mean(list(panel["translation"][pair].values())))


def panel_markdown(before, after=None):
    """A short Markdown table: one row per language and one of means (before -> after when
    ``after`` is given).  Mono and cross are Pearson; translation is accuracy, both ways averaged."""
    pivot = before["pivot"]

    def cells(get):
        if after is None:
            return f"{get(before):.4f}"
        b, a = get(before), get(after)
        return f"{b:.4f} -> {a:.4f} ({a - b:+.4f})"

    pair = f"{pivot}-LANG"
    lines = [f"| language | mono | cross {pair} | translation {pair} |", "| --- | --- | --- | --- |",
             f"| {pivot} | {cells(lambda p: p['mono'][pivot]['pearson'])} | | |"]
    for lang in before["languages"]:
        pr = f"{pivot}-{lang}"
        lines.append(
            f"| {lang} | {cells(lambda p: p['mono'][lang]['pearson'])} | "
            f"{cells(lambda p: p['cross'][pr]['pearson'])} | {cells(lambda p: _translation_mean(p, pr))} |"
        )
    lines.append(f"| mean (without {pivot}) | {cells(lambda p: p['mean']['mono'])} | "
                 f"{cells(lambda p: p['mean']['cross'])} | {cells(lambda p: p['mean']['translation'])} |")
    return "\n".join(lines)


# --- the held-out panel: how far each language moved, and the option that keeps them --------

# the measured multilingual recipe (results/multilingual.md), printed to a user who tuned without it
KEEP_LANGUAGES = ("--parallel PARALLEL.csv --align-loss contrastive --align-weight 5 "
                  "--parallel-batch-size 32")
PARALLEL_HINT = ("domain-tune parallel-sentences DIR --out PARALLEL.csv (the stsb-multi-mt train "
                 "rows outside the held-out panel)")
# a change smaller than this is noise on a panel of about a thousand pairs
MOVE_TOLERANCE = 0.005


def language_moves(before, after):
    """Per language the change of mono Pearson and of cross-lingual Pearson (pivot-language):
    ``{lang: {"mono": d, "cross": d}}`` (the pivot has mono only)."""
    pivot = before["pivot"]
    moves = {pivot: {"mono": after["mono"][pivot]["pearson"] - before["mono"][pivot]["pearson"]}}
    for lang in before["languages"]:
        if lang not in after["mono"]:
            continue
        pair = f"{pivot}-{lang}"
        moves[lang] = {"mono": after["mono"][lang]["pearson"] - before["mono"][lang]["pearson"],
                       "cross": after["cross"][pair]["pearson"] - before["cross"][pair]["pearson"]}
    return moves


def heldout_lines(before, after, aligned):
    """Printed lines on the held-out panel: each language's change, and for a run without
    alignment (``aligned`` false) whose languages moved, the option that keeps them."""
    moves = language_moves(before, after)
    pivot = before["pivot"]
    parts = []
    for lang, m in moves.items():
        text = f"{lang} {m['mono']:+.4f}"
        if "cross" in m:
            text += f" (cross {pivot}-{lang} {m['cross']:+.4f})"
        parts.append(text)
    lines = [f"Languages on the held-out panel ({before['n']} pairs of stsb-multi-mt train never "
             "used as parallel sentences), change of Pearson: " + ", ".join(parts)]
    worst = min(min(m.values()) for m in moves.values())
    if not aligned and worst < -MOVE_TOLERANCE:
        lines.append(f"  the languages lost up to {-worst:.4f}; to keep them, train with "
                     f"{KEEP_LANGUAGES} ({PARALLEL_HINT})")
    return lines


def heldout_markdown(before, after, aligned):
    """The model card's account of the held-out panel: the per-language table and, for a run
    without alignment whose languages moved, the option that keeps them."""
    text = panel_markdown(before, after)
    moves = language_moves(before, after)
    worst = min(min(m.values()) for m in moves.values())
    if not aligned and worst < -MOVE_TOLERANCE:
        text += (f"\n\nTrained without alignment preservation: the languages lost up to "
                 f"{-worst:.4f} Pearson on sentences no training saw. To keep them, train with "
                 f"`{KEEP_LANGUAGES}` (`{PARALLEL_HINT.split(' (')[0]}`).")
    return text
