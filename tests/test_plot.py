"""Plotting: one panel per (y, x), hue, mean and interval over repeated rows, headless."""
import matplotlib
import numpy as np
import pandas as pd
import pytest

import param_search as ps

matplotlib.use("Agg")


def _metrics():
    rows = [{"lr": lr, "depth": d, "seed": s, "loss": lr * d + 0.1 * s, "acc": 1 - lr}
            for lr in (0.1, 0.2, 0.3) for d in (1, 2) for s in range(3)]
    return pd.DataFrame(rows)


def test_grid_of_panels_with_mean_and_interval(tmp_path):
    fig = ps.plot(_metrics(), x=["lr", "depth"], y=["loss", "acc"])
    axes = fig.get_axes()
    assert len(axes) == 4
    first = axes[0]
    assert first.get_xlabel() == "lr" and first.get_ylabel() == "loss"
    assert len(first.lines) == 2   # one line per depth (the other x param is the hue)
    x, y = first.lines[0].get_data()
    assert list(x) == [0.1, 0.2, 0.3]
    assert np.allclose(y, [0.1 * 1 + 0.1, 0.2 + 0.1, 0.3 + 0.1])   # mean over 3 seeds
    assert first.collections   # the interval bands
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_explicit_hue_and_single_names():
    fig = ps.plot(_metrics(), x="lr", y="loss", hue="seed")
    (ax,) = fig.get_axes()
    assert len(ax.lines) == 3 and ax.get_legend().get_title().get_text() == "seed"


def test_unknown_column_is_a_clear_error():
    with pytest.raises(KeyError, match="'loss2' is not in the metrics table"):
        ps.plot(_metrics(), x="lr", y="loss2")
