"""Similarity heatmaps: what a model thinks of a set of texts, side by side."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np

from domain_tune.errors import DomainTuneWarning
from domain_tune.outputs import atomic_file

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
    from domain_tune.embedding import encode  # TensorFlow: not for the drawing alone
    from domain_tune.evaluation.sts import angular

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
    with atomic_file(out_path, ".png") as tmp:
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
    return out_path


def plot_heatmaps(matrices, titles, texts, out_path, metric="angular", difference=None):
    """:func:`similarity_figure` saved as a PNG at ``out_path``."""
    return save_figure(similarity_figure(matrices, titles, texts, metric, difference), out_path)


class BackgroundPlot:
    """:func:`plot_heatmaps` drawn by a child Python process while the caller goes on.

    Drawing the run's heatmaps is 0.6-1.3 s of pure Python (matplotlib lays
    out and renders a few hundred texts).  On a thread it holds the
    interpreter that the caller needs (``train`` writes its ``.keras`` file and
    SavedModel meanwhile), and TensorFlow's SavedModel export cannot run
    beside it at all: both enter ``warnings.catch_warnings``, which is not
    thread-safe.  A child process draws on another core instead; it imports
    NumPy and matplotlib only (0.4-0.5 s), not TensorFlow.

    :meth:`wait` returns the PNG's path once it is written, and re-issues the
    child's warnings (a :class:`PlotWarning` for missing glyphs, say) in this
    process.  If the child cannot be started or fails, :meth:`wait` draws the
    figure here instead, so errors surface as from :func:`plot_heatmaps`.
    :meth:`cancel` stops the child and removes what it left.  Styles set in
    this process (``matplotlib.rcParams``) do not reach the child: it draws
    with matplotlib's defaults and ``matplotlibrc``, as the command line does.
    """

    def __init__(self, matrices, titles, texts, out_path, metric="angular", difference=None):
        self.out_path = os.fspath(out_path)
        self._args = ([np.asarray(m, float) for m in matrices], list(titles), list(texts),
                      self.out_path, metric, difference)
        self._request = f"{self.out_path}.request-{os.getpid()}.json"
        self._process = None
        try:
            with open(self._request, "w", encoding="utf-8") as f:
                json.dump({"matrices": [m.tolist() for m in self._args[0]],
                           "titles": self._args[1], "texts": [str(t) for t in self._args[2]],
                           "out_path": self.out_path, "metric": metric,
                           "difference": difference}, f)
            # the child imports the same domain_tune as this process, wherever it came from
            path = os.pathsep.join(p for p in sys.path if p and os.path.isabs(p))
            self._process = subprocess.Popen(
                [sys.executable, "-m", "domain_tune.plotting", self._request],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path})
        except (OSError, ValueError, TypeError):  # no usable interpreter; drawn in wait()
            self._remove(self._request)

    def wait(self):
        """The PNG's path, once written (drawn here if the child could not draw it)."""
        process, self._process = self._process, None
        try:
            if process is not None:
                out, _ = process.communicate()
                caught = _child_warnings(out) if process.returncode == 0 else None
                if caught is not None and os.path.isfile(self.out_path):
                    for category, message in caught:
                        warnings.warn(message, _WARNING_CLASSES.get(category, UserWarning),
                                      stacklevel=2)
                    return self.out_path
                self._remove(f"{self.out_path}.tmp-{process.pid}.png")
        finally:
            self._remove(self._request)
        return plot_heatmaps(*self._args)

    def cancel(self):
        """Stop the child, if any, and remove its files; nothing is written afterwards."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.communicate()
            self._remove(f"{self.out_path}.tmp-{process.pid}.png")
        self._remove(self._request)

    @staticmethod
    def _remove(path):
        try:
            os.remove(path)
        except OSError:
            pass


def _child_warnings(out):
    """The warnings a drawing child reported on the last line of its output, or None if that
    line is not its report (something else printed, or the child was not domain-tune's)."""
    try:
        report = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
        return [(str(category), str(message)) for category, message in report["warnings"]]
    except (ValueError, IndexError, KeyError, TypeError):
        return None


_WARNING_CLASSES = {c.__name__: c for c in (PlotWarning, UserWarning, RuntimeWarning,
                                            DeprecationWarning, FutureWarning)}


def _draw_request(path):
    """The child's side of :class:`BackgroundPlot`: draw the request at ``path``.

    Prints ``{"warnings": [[category, message], ...]}``: what drawing warned,
    for the parent to re-issue.
    """
    with open(path, encoding="utf-8") as f:
        request = json.load(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_heatmaps([np.array(m, float) for m in request["matrices"]], request["titles"],
                      request["texts"], request["out_path"], request["metric"],
                      request["difference"])
    print(json.dumps({"warnings": [[w.category.__name__, str(w.message)] for w in caught]}))


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


if __name__ == "__main__":
    _draw_request(sys.argv[1])
