"""The report's figures, as PNG data URIs so that the page needs no other file.

Figures are aggregated (means per parameter value, a heat-map of means), so their size does
not grow with the number of jobs.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd

from .plot import plot

#: More panels than this say less than the table does; the first ones are kept.
MAX_FIGURES = 24
DPI = 80
#: A parameter's values are grouped (means per value, heat-map cells) when there are at most
#: this many, or when each repeats (a grid) and there are at most MAX_GRID_LEVELS; values drawn
#: from a distribution, all different, are shown as a scatter of points instead.
MAX_LEVELS = 30
MAX_GRID_LEVELS = 200


def data_uri(fig: Any) -> str:
    """The figure as a PNG data URI (the figure is closed: it is not shown twice in Jupyter)."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_names(metrics: pd.DataFrame, params: list[str]) -> list[str]:
    """The metrics' numeric columns (not the params, not job_name)."""
    names = [c for c in metrics.columns if c not in params and c != "job_name"]
    return [c for c in names if pd.to_numeric(metrics[c], errors="coerce").notna().any()]


def metric_figures(metrics: pd.DataFrame, params: list[str]) -> list[dict[str, str]]:
    """Each metric against each varied parameter (means over the others), then a heat-map of
    each metric over the first two varied parameters (a coloured scatter when they take too
    many values for cells)."""
    varied = [p for p in params if p in metrics and metrics[p].astype(str).nunique() > 1]
    figures = []
    for y in metric_names(metrics, params):
        for x in varied:
            if len(figures) < MAX_FIGURES:
                fig = plot(metrics, x=x, y=y) if _levels(metrics[x]) else scatter(metrics, x, y)
                figures.append({"title": f"{y} against {x}", "uri": data_uri(fig)})
        if len(varied) >= 2 and len(figures) < MAX_FIGURES:
            a, b = varied[:2]
            cells = _levels(metrics[a]) and _levels(metrics[b])
            fig = heat_map(metrics, a, b, y) if cells else scatter(metrics, a, b, colour=y)
            figures.append({"title": f"{'mean ' if cells else ''}{y} over {a} and {b}", "uri": data_uri(fig)})
    return figures


def _levels(values: pd.Series) -> bool:
    """Values to group by: few, or repeated as in a grid."""
    distinct = values.astype(str).nunique()
    return distinct <= MAX_LEVELS or (distinct <= MAX_GRID_LEVELS and 4 * distinct <= len(values))


def scatter(metrics: pd.DataFrame, x: str, y: str, colour: str | None = None):
    """One point per metrics row: y against x, coloured by ``colour`` if given."""
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5), constrained_layout=True)
    ys = metrics[y] if colour else pd.to_numeric(metrics[y], errors="coerce")   # a param, or a metric
    values = pd.to_numeric(metrics[colour], errors="coerce") if colour else None
    points = ax.scatter(metrics[x], ys, c=values, s=8, alpha=0.6, cmap="viridis" if colour else None)
    if colour:
        fig.colorbar(points, ax=ax, label=colour)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    return fig


def heat_map(metrics: pd.DataFrame, x: str, y: str, value: str):
    """Mean of ``value`` for each (x, y) pair of parameter values, as coloured cells."""
    from matplotlib import pyplot as plt

    data = metrics[[x, y]].assign(_v=pd.to_numeric(metrics[value], errors="coerce"))
    grid = data.pivot_table(index=y, columns=x, values="_v", aggfunc="mean", dropna=False)
    fig, ax = plt.subplots(figsize=(4.5, 3.5), constrained_layout=True)
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), _ticks(grid.columns), rotation=45, ha="right")
    ax.set_yticks(range(len(grid.index)), _ticks(grid.index))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(image, ax=ax, label=f"mean {value}")
    return fig


def _ticks(values: pd.Index, most: int = 20) -> list[str]:
    """Tick labels, thinned out (blank) when there are too many to read."""
    step = max(1, int(np.ceil(len(values) / most)))
    labels = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in values]
    return [label if i % step == 0 else "" for i, label in enumerate(labels)]


def history_figure(trials: pd.DataFrame) -> dict[str, str]:
    """The ps.optimize history: each trial's value and the best so far."""
    from .trials import plot_history

    return {"title": "search history", "uri": data_uri(plot_history(trials))}
