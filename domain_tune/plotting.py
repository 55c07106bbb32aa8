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


def plot_heatmaps(matrices, titles, texts, out_path, metric="angular"):
    """One annotated heatmap per matrix, on a shared colour scale, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"font.family": _font_family()}):  # fallbacks for other scripts
        labels = [shorten(t, LABEL_CHARS) for t in texts]
        titles = [shorten(t, TITLE_CHARS, keep="end") for t in titles]
        k, n = len(matrices), len(texts)
        vmin = min(float(m.min()) for m in matrices)
        vmax = max(float(m.max()) for m in matrices)
        side = max(4.5, 0.55 * n + 2.2)
        fig, axes = plt.subplots(1, k, figsize=(side * k + 1.2, side + 0.6), squeeze=False,
                                 layout="constrained")
        image = None
        for ax, mat, title in zip(axes[0], matrices, titles):
            image = ax.imshow(mat, cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_xticks(range(n), labels, rotation=90, fontsize=9)
            ax.set_yticks(range(n), labels, fontsize=9)
            ax.set_title(title, fontsize=11)
            if n <= 25:
                threshold = vmin + 0.6 * (vmax - vmin)
                for i in range(n):
                    for j in range(n):
                        ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="black" if mat[i, j] > threshold else "white")
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"{metric} similarity")
        tmp = f"{out_path}.tmp-{os.getpid()}.png"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fig.savefig(tmp, dpi=130)
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
            plt.close(fig)
            if os.path.exists(tmp):
                os.remove(tmp)
    return out_path


def plot_similarity(models, texts=None, out_path="similarity.png", metric="angular"):
    """``models``: list of ``(title, model)``; writes the side-by-side PNG.

    Returns ``{"texts": [...], "matrices": [one per model, in order]}``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    texts = list(texts or DEFAULT_TEXTS)
    matrices = [similarity_matrix(model, texts, metric) for _, model in models]
    plot_heatmaps(matrices, [title for title, _ in models], texts, out_path, metric)
    return {"texts": texts, "matrices": matrices}


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
