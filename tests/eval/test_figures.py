"""The report's figures are readable: examples at a legible size with wrapped text, counted bins."""

import numpy as np
from PIL import Image

from depictqa.eval.figures import EXAMPLE_PANEL_IN, _example_text, plot_examples, plot_reliability

from tests.eval.conftest import noisy, smooth_image


def test_examples_figure_shows_images_large_and_wraps_answers(tmp_path):
    ref = smooth_image(64)
    long = "Image A shows slight noise in flat regions while Image B suffers from heavy noise. " * 6
    ex = {"id": "c0", "images": [ref, noisy(ref, 0.05), noisy(ref, 0.2)], "query": "Which is better?",
          "brief": "Image A", "brief_confidence": 0.8, "detail": long, "detail_confidence": None,
          "truth": "Image A is better."}
    path = plot_examples([ex, ex], tmp_path / "examples.png", width=60, max_lines=5)
    w, h = Image.open(path).size
    assert w >= 3 * EXAMPLE_PANEL_IN * 100 * 0.9 and h >= 2 * 2.5 * 100 * 0.8  # ~200 px per 64 px image
    text = _example_text(ex, 60, 5).splitlines()
    assert max(len(line) for line in text) <= 62  # wrapped (2-space indent), not cut at the figure edge
    detail = text[text.index("model, detail (confidence n/a):") + 1:text.index("ground truth:")]
    assert len(detail) == 5 and detail[-1].endswith("[...]")  # long answers are shortened, visibly


def test_reliability_plot_draws_a_bar_over_its_whole_bin(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = {"n": 1, "ece": 0.0, "bins": [{"lo": 0.95, "hi": 1.0, "n": 1, "accuracy": 1.0, "mean_confidence": 1.0}]}
    captured = {}
    original = plt.Figure.savefig

    def grab(fig, *args, **kwargs):
        captured["bars"] = [(p.get_x(), p.get_width()) for p in fig.axes[0].patches]
        captured["texts"] = [t.get_text() for t in fig.axes[0].texts]
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = grab
    try:
        plot_reliability(conf, tmp_path / "rel.png")
    finally:
        plt.Figure.savefig = original
    (x, width), = captured["bars"]
    assert np.isclose(x, 0.95) and np.isclose(width, 0.05) and "n=1" in captured["texts"]
