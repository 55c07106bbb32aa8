"""Similarity heatmaps: what a model thinks of a set of texts, side by side."""

import os
import warnings

import numpy as np

from domain_tune.embedding import encode
from domain_tune.errors import DomainTuneWarning
from domain_tune.evaluation.sts import angular

DEFAULT_TEXTS = [
    "Data Scientist", "Data Analyst", "Data Engineer",
    "Nurse Practitioner", "Registered Nurse", "Medical Assistant",
    "Social Media Manager", "Marketing Strategist", "Product Marketing Manager",
]
METRICS = ("angular", "cosine")
LABEL_CHARS = 30  # longer texts are shortened with an ellipsis on the axes
CELL_INCHES = 0.55  # a cell's side, while the texts fit in MAX_LABELS
MAX_LABELS = 60  # texts labelled on an axis; beyond, the figure stops growing and labels thin out
TITLE_CHARS = 60
# fonts with CJK and other scripts DejaVu Sans lacks, used for missing glyphs when installed
FALLBACK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans", "WenQuanYi Zen Hei",
                  "Arial Unicode MS", "Droid Sans Fallback")


class PlotWarning(DomainTuneWarning):
    """Something in a plot will not look as it should."""


def shorten(text, limit, keep="start"):
    """``text`` on one line, at most ``limit`` characters; an ellipsis marks the cut."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026" if keep == "start" else "\u2026" + text[-(limit - 1):]


def _font_family():
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(f for f in FALLBACK_FONTS if f in installed)]


def similarity_matrix(model, texts, metric="angular"):
    emb = encode(model, texts)
    cos = np.clip(emb @ emb.T, -1.0, 1.0)
    return angular(cos) if metric == "angular" else cos


def _annotate(ax, mat, threshold, fmt, diverging=False):
    """Values in the cells: white text on dark cells (low values, or far from 0 when diverging)."""
    n = len(mat)
    if n > 25:
        return
    for i in range(n):
        for j in range(n):
            if diverging and i == j:
                continue  # a text's similarity to itself never changes
            light = abs(mat[i, j]) > threshold if diverging else mat[i, j] <= threshold
            ax.text(j, i, cell_label(mat[i, j], fmt), ha="center", va="center", fontsize=7,
                    color="white" if light else "black")


def cell_label(value, fmt):
    """``format(value, fmt)``, with values that round to zero shown as ``0.00`` (not ``-0.00``)."""
    text = format(value, fmt)
    if float(text) == 0.0:
        return format(0.0, fmt.lstrip("+"))
    return text


def similarity_figure(matrices, titles, texts, metric="angular", difference=None):
    """A matplotlib Figure: one annotated heatmap per matrix on a shared colour scale.

    With two matrices and ``difference`` (default: on), a third panel shows the
    second minus the first (tuned minus base) with a diverging colour map
    centred on 0 and a colour bar of its own.  Made without pyplot, so it
    works under any backend and shows inline in a notebook.
    """
    from matplotlib.figure import Figure

    difference = len(matrices) == 2 if difference is None else bool(difference)
    if difference and len(matrices) != 2:
        raise ValueError("the difference panel needs exactly two matrices")
    labels = [shorten(t, LABEL_CHARS) for t in texts]
    titles = [shorten(t, TITLE_CHARS, keep="end") for t in titles]
    k, n = len(matrices), len(texts)
    panels = k + (1 if difference else 0)
    vmin = min(float(m.min()) for m in matrices)
    vmax = max(float(m.max()) for m in matrices)
    side = max(4.5, CELL_INCHES * min(n, MAX_LABELS) + 2.2)
    step = label_step(n)
    with _fonts():
        fig = Figure(figsize=(side * panels + 1.2 * (2 if difference else 1), side + 0.6),
                     layout="constrained")
        axes = fig.subplots(1, panels, squeeze=False)[0]
        image = None
        for ax, mat, title in zip(axes, matrices, titles):
            image = ax.imshow(mat, cmap="viridis", vmin=vmin, vmax=vmax)
            _ticks(ax, labels, step)
            ax.set_title(title, fontsize=11)
            _annotate(ax, mat, vmin + 0.6 * (vmax - vmin), ".2f")
        fig.colorbar(image, ax=axes[:k].tolist(), shrink=0.8, label=f"{metric} similarity")
        if difference:
            delta = matrices[1] - matrices[0]
            off = ~np.eye(n, dtype=bool)
            bound = float(np.abs(delta[off]).max()) if n > 1 else 0.0
            bound = bound if bound > 0 else 1e-3
            ax = axes[-1]
            diff_image = ax.imshow(delta, cmap="RdBu_r", vmin=-bound, vmax=bound)
            _ticks(ax, labels, step)
            ax.set_title(f"change ({shorten(titles[1], 24, keep='end')} \u2212 "
                         f"{shorten(titles[0], 24, keep='end')})", fontsize=11)
            _annotate(ax, delta, 0.6 * bound, "+.2f", diverging=True)
            fig.colorbar(diff_image, ax=ax, shrink=0.8, label=f"change in {metric} similarity")
    return fig


def label_step(n):
    """Every how many texts an axis is labelled: 1 up to :data:`MAX_LABELS` texts, then more,
    with a :class:`PlotWarning`.  (The figure grows with the texts up to that many; drawn to
    scale, 300 texts made a 21,000-pixel-square PNG that image viewers refuse to open.)"""
    step = -(-n // MAX_LABELS)
    if step > 1:
        warnings.warn(
            f"{n} texts are more than a heatmap can label readably ({MAX_LABELS}): every "
            f"{_ordinal(step)} text is labelled, and the cells are drawn smaller", PlotWarning,
            stacklevel=3,
        )
    return step


def _ordinal(k):
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _ticks(ax, labels, step=1):
    shown = range(0, len(labels), step)
    ax.set_xticks(shown, [labels[i] for i in shown], rotation=90, fontsize=9)
    ax.set_yticks(shown, [labels[i] for i in shown], fontsize=9)


def _fonts():
    import matplotlib

    return matplotlib.rc_context({"font.family": _font_family()})  # fallbacks for other scripts


def save_figure(fig, out_path, dpi=130):
    """Write ``fig`` as a PNG at ``out_path``, complete or not at all.

    Characters without a glyph in the installed fonts are reported in one
    :class:`PlotWarning`.
    """
    out_path = os.fspath(out_path)
    tmp = f"{out_path}.tmp-{os.getpid()}.png"
    try:
        with _fonts(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(tmp, dpi=dpi)
        missing = sorted({str(w.message) for w in caught if "missing from font" in str(w.message)})
        for w in caught:  # the others as they were
            if "missing from font" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if missing:
            warnings.warn(
                f"{len(missing)} characters have no glyph in the installed fonts and show as "
                f"boxes in {out_path} ({missing[0]}); install a font that has them, such as "
                "Noto Sans CJK", PlotWarning, stacklevel=2,
            )
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_path


def plot_heatmaps(matrices, titles, texts, out_path, metric="angular", difference=None):
    """:func:`similarity_figure` saved as a PNG at ``out_path``."""
    return save_figure(similarity_figure(matrices, titles, texts, metric, difference), out_path)


def plot_similarity(models, texts=None, out_path="similarity.png", metric="angular", difference=None):
    """``models``: list of ``(title, model)``; draws their heatmaps side by side.

    Two models get a third panel, the second minus the first (see
    :func:`similarity_figure`).  Writes the PNG at ``out_path`` unless it is
    ``None``.  Returns ``{"texts": [...], "matrices": [one per model, in
    order], "figure": the matplotlib Figure}``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    texts = list(texts or DEFAULT_TEXTS)
    matrices = [similarity_matrix(model, texts, metric) for _, model in models]
    fig = similarity_figure(matrices, [title for title, _ in models], texts, metric, difference)
    if out_path is not None:
        save_figure(fig, out_path)
    return {"texts": texts, "matrices": matrices, "figure": fig}


def plot_history(histories, out_path, title="Loss per epoch"):
    """Train (solid) and validation (dashed) loss per epoch, one colour per run.

    ``histories``: ``{label: [{"epoch", "loss", "val_loss"?}, ...]}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^vP*X"
    for i, (label, rows) in enumerate(histories.items()):
        epochs = [r["epoch"] for r in rows]
        style = dict(color=colors[i % len(colors)], marker=markers[i % len(markers)],
                     markersize=7 - i, alpha=0.85)  # shrinking markers keep overlapping runs visible
        ax.plot(epochs, [r["loss"] for r in rows], label=f"{label} train", **style)
        if rows and "val_loss" in rows[0]:
            ax.plot(epochs, [r["val_loss"] for r in rows], linestyle="--",
                    label=f"{label} validation", **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(out_path, dpi=130)
    plt.close(fig)
    return out_path
