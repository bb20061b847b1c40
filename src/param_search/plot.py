"""Plotting metrics against parameters."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import ColumnError, MetricsError


def plot(metrics: pd.DataFrame, x: Sequence[str] | str, y: Sequence[str] | str,
         hue: str | None = None, ci: float = 0.95, height: float = 3.0, width: float = 4.0):
    """Draw a grid with one panel per (y, x) pair and return the matplotlib Figure.

    Each panel plots y against x with one line per value of the hue: by default the
    other parameters named in ``x``. Repeated rows (e.g. replicates, epochs) are averaged
    and the band shows the ``ci`` confidence interval of the mean. Works headless.
    """
    from matplotlib import pyplot as plt

    xs, ys = _as_list(x), _as_list(y)
    _check_columns(metrics, [*xs, *ys] + ([hue] if hue else []))
    if not len(metrics):
        raise MetricsError("the metrics table is empty: nothing to plot (did ps.metrics read any file?)")
    for y_name in ys:
        if pd.to_numeric(metrics[y_name], errors="coerce").isna().all():
            raise ColumnError(f"column {y_name!r} holds no numbers, so it cannot be plotted on a y "
                              f"axis (values like {metrics[y_name].iloc[0]!r}); pick a numeric column")
    fig, axes = plt.subplots(len(ys), len(xs), figsize=(width * len(xs), height * len(ys)),
                             squeeze=False, constrained_layout=True)
    for row, y_name in enumerate(ys):
        for col, x_name in enumerate(xs):
            hue_names = [hue] if hue else [n for n in xs if n != x_name]
            _panel(axes[row][col], metrics, x_name, y_name, hue_names, ci)
    return fig


def _as_list(names: Sequence[str] | str) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _check_columns(metrics: pd.DataFrame, names: list[str]) -> None:
    missing = [n for n in names if n not in metrics.columns]
    if missing:
        raise ColumnError(f"column {missing[0]!r} is not in the metrics table; "
                       f"columns: {', '.join(map(str, metrics.columns))}")


def _panel(ax, metrics: pd.DataFrame, x_name: str, y_name: str, hue_names: list[str], ci: float) -> None:
    data = metrics[[x_name, y_name, *hue_names]].copy()
    data[y_name] = pd.to_numeric(data[y_name], errors="coerce")
    for name in hue_names:
        data[name] = _group_keys(data[name])
    groups = data.groupby(hue_names, dropna=False, sort=True) if hue_names else [((), data)]
    for key, group in groups:
        stats = _mean_ci(group, x_name, y_name, ci)
        label = _label(hue_names, key)
        line, = ax.plot(stats.index, stats["mean"], marker="o", label=label)
        ax.fill_between(stats.index, stats["low"], stats["high"], color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    if hue_names:
        ax.legend(title=", ".join(hue_names), fontsize="small")


def _group_keys(column: pd.Series) -> pd.Series:
    """A hue column as keys that keep its points apart: groupby merges what ``==`` equates
    (1, 1.0 and True; NaN and None) and cannot group lists, so mixed values go by ``repr``."""
    if column.dtype != object or all(type(v) is str for v in column):
        return column
    return column.map(repr)


def _mean_ci(group: pd.DataFrame, x_name: str, y_name: str, ci: float) -> pd.DataFrame:
    from scipy import stats as st

    agg = group.groupby(x_name, sort=True)[y_name].agg(["mean", "sem", "count"])
    t = st.t.ppf(0.5 + ci / 2, np.maximum(agg["count"] - 1, 1))
    half = np.where(agg["count"] > 1, agg["sem"].fillna(0) * t, 0.0)
    agg["low"], agg["high"] = agg["mean"] - half, agg["mean"] + half
    return agg


def _label(hue_names: list[str], key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{n}={v}" for n, v in zip(hue_names, key))
