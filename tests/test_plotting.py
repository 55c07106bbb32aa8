"""Heatmap labels stay readable: long texts are shortened, missing glyphs are reported."""

import numpy as np
import pytest
from PIL import Image

from domain_tune import plotting
from domain_tune.plotting import PlotWarning, plot_heatmaps, shorten


def test_shorten():
    assert shorten("  data\nscientist ", 40) == "data scientist"
    assert shorten("a" * 50, 10) == "a" * 9 + "\u2026"
    assert shorten("/very/long/path/to/runs/esco", 10, keep="end") == "\u2026runs/esco"
    assert len(shorten("x" * 1000, plotting.LABEL_CHARS)) == plotting.LABEL_CHARS


def test_a_very_long_text_does_not_blow_up_the_figure(tmp_path):
    texts = ["nurse", "chef", "a" * 5000]
    mat = np.eye(3)
    short, long = tmp_path / "s.png", tmp_path / "l.png"
    plot_heatmaps([mat], ["m"], ["nurse", "chef", "baker"], short)
    plot_heatmaps([mat], ["m"], texts, long)
    w_short, h_short = Image.open(short).size
    w_long, h_long = Image.open(long).size
    assert w_long < 2 * w_short and h_long < 2 * h_short


def test_characters_without_a_glyph_are_reported_once(tmp_path, monkeypatch):
    monkeypatch.setattr(plotting, "FALLBACK_FONTS", ())  # DejaVu Sans only: no CJK glyphs
    with pytest.warns(PlotWarning, match="5 characters have no glyph") as caught:
        plot_heatmaps([np.eye(2)], ["m"], ["数据科学家", "nurse"], tmp_path / "c.png")
    assert len(caught) == 1
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cell_labels_never_show_a_signed_zero():
    from domain_tune.plotting import cell_label

    assert cell_label(-0.004, ".2f") == "0.00"
    assert cell_label(-0.004, "+.2f") == "0.00"
    assert cell_label(0.004, "+.2f") == "0.00"
    assert cell_label(-0.006, "+.2f") == "-0.01"
    assert cell_label(0.12, "+.2f") == "+0.12"
    assert cell_label(0.8512, ".2f") == "0.85"


def test_hundreds_of_texts_make_a_png_of_bounded_size_with_thinned_labels(tmp_path):
    """Drawn to scale, 300 texts made a 21,000-pixel-square PNG (477 million pixels) that
    Pillow refuses to open as a decompression bomb: the figure stops growing at
    MAX_LABELS texts and every k-th text is labelled, with a warning."""
    n = 300
    mat = np.random.default_rng(0).uniform(0.4, 1.0, (n, n))
    texts = [f"job title {i}" for i in range(n)]
    with pytest.warns(PlotWarning, match="300 texts .* every 5th text is labelled"):
        fig = plotting.similarity_figure([mat, mat], ["base", "tuned"], texts)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == texts[::5]
    plot_heatmaps([mat], ["m"], texts, tmp_path / "big.png")  # (warns again)
    with Image.open(tmp_path / "big.png") as image:
        width, height = image.size
    with Image.open(_plot_of(tmp_path, plotting.MAX_LABELS)) as image:
        assert image.size == (width, height)  # no bigger than the largest labelled one
    assert width * height < 25_000_000


def _plot_of(tmp_path, n):
    path = tmp_path / f"n{n}.png"
    plot_heatmaps([np.eye(n)], ["m"], [f"t{i}" for i in range(n)], path)
    return path


def test_up_to_max_labels_texts_every_text_is_labelled_without_a_warning(tmp_path):
    import warnings

    n = plotting.MAX_LABELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlotWarning)
        fig = plotting.similarity_figure([np.eye(n)], ["m"], [f"t{i}" for i in range(n)])
    assert len(fig.axes[0].get_xticklabels()) == n


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"))


def _request(n=4, seed=0):
    rng = np.random.default_rng(seed)
    base, tuned = rng.uniform(0.3, 1.0, (n, n)), rng.uniform(0.3, 1.0, (n, n))
    return [base, tuned], ["base: use-m3", "tuned: run"], [f"job title {i}" for i in range(n)]


def test_a_background_plot_draws_the_same_picture_in_another_process(tmp_path, monkeypatch):
    """The child draws exactly what plot_heatmaps draws here, and the parent learns its pid
    was another process's (it wrote the PNG through a temporary name of its own pid)."""
    import os

    matrices, titles, texts = _request()
    here = plot_heatmaps(matrices, titles, texts, tmp_path / "here.png")
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(a), real_replace(a, b)))
    plot = plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "there.png")
    assert plot.wait() == str(tmp_path / "there.png")
    assert replaced == []  # nothing was drawn in this process
    np.testing.assert_array_equal(_pixels(tmp_path / "there.png"), _pixels(here))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.png", "there.png"]


def test_a_background_plot_passes_its_warnings_on(tmp_path, monkeypatch):
    """A text the fonts cannot draw: the child's PlotWarning is issued in the parent."""
    monkeypatch.setattr(plotting, "plot_heatmaps", None)  # never drawn here
    matrices, titles, _ = _request(2)
    texts = ["\U0001d4e7\U0001d4ea\U0001d4fb\U0001d4fc\U0001d4ee", "nurse"]  # no glyph anywhere
    plot = plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "w.png")
    with pytest.warns(PlotWarning, match="characters have no glyph") as caught:
        plot.wait()
    assert len(caught) == 1
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_a_background_plot_falls_back_to_drawing_here(tmp_path, monkeypatch):
    """No interpreter to start, or a child that fails: wait() draws in this process, so the
    picture is written all the same and its errors are this process's."""
    import sys

    matrices, titles, texts = _request()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "a.png").wait()
    monkeypatch.setattr(sys, "executable", "false")  # starts, and exits with 1
    plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "b.png").wait()
    np.testing.assert_array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "b.png"))
    impostor = tmp_path / "impostor"  # exits with 0 having drawn nothing, printing something else
    impostor.write_text("#!/bin/sh\necho hello\n")
    impostor.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(impostor))
    plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "c.png").wait()
    np.testing.assert_array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "c.png"))
    impostor.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]
    with pytest.raises(FileNotFoundError):  # a folder that does not exist: the usual error
        plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "no" / "d.png").wait()


def test_a_cancelled_background_plot_leaves_nothing(tmp_path):
    matrices, titles, texts = _request()
    plot = plotting.BackgroundPlot(matrices, titles, texts, tmp_path / "c.png")
    plot.cancel()
    plot.cancel()  # twice is harmless
    assert list(tmp_path.iterdir()) == []


def test_drawing_alone_does_not_import_tensorflow():
    """The child of a background plot imports the plotting module only: no TensorFlow."""
    import subprocess
    import sys

    code = "import sys, domain_tune.plotting; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
