"""The figures' shared parts: matplotlib (Agg) imported on first use, so that client processes
never load it; bars side by side, labelled with their values; p50 in front of p99; the current
code beside a baseline commit's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 110


def pyplot() -> Any:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """`pyplot.subplots`, laid out tight when saved."""
    figure, axes = pyplot().subplots(*args, layout="tight", **kwargs)
    return figure, axes


def save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=DPI)
    pyplot().close(figure)


def slots(series: int, categories: int, span: float = 0.8) -> tuple[float, list[np.ndarray]]:
    """Bar width and, per series, the x of its bars: `series` bars side by side at each of
    `categories` ticks (0, 1, ...)."""
    width = span / series
    x = np.arange(categories)
    return width, [x + (index - (series - 1) / 2) * width for index in range(series)]


def label_above(
    axes: Any,
    x: float,
    y: float,
    text: str,
    *,
    fontsize: float = 8,
    offset: float = 2,
    **style: Any,
) -> None:
    axes.annotate(
        text,
        (x, y),
        ha="center",
        va="bottom",
        fontsize=fontsize,
        xytext=(0, offset),
        textcoords="offset points",
        **style,
    )


def p50_p99_bars(
    axes: Any,
    where: Sequence[float],
    p50: Sequence[float],
    p99: Sequence[float],
    width: float,
    colour: str,
    *,
    labels: tuple[str, str],
    high: str = "{:.1f}",
) -> None:
    """Latency bars: p99 light behind p50 solid, p99's value above its bar and p50's inside
    the top of its own. `labels`: the legend's (p50, p99)."""
    axes.bar(where, p99, width, color=colour, alpha=0.35, label=labels[1])
    axes.bar(where, p50, width, color=colour, label=labels[0])
    for x, low_ms, high_ms in zip(where, p50, p99, strict=True):
        axes.annotate(
            high.format(high_ms), (x, high_ms), ha="center", va="bottom", fontsize=7, color="#333"
        )
        axes.annotate(
            f"{low_ms:.1f}",
            (x, low_ms),
            ha="center",
            va="top",
            fontsize=7,
            color="white",
            xytext=(0, -2),
            textcoords="offset points",
        )


def beside_baseline(
    axes: Any,
    names: Sequence[str],
    by_code: Mapping[str, Sequence[float]],
    *,
    title: str,
    target_ms: float,
    name_labels: bool = True,
) -> None:
    """Milliseconds per name (top-down, in order) as horizontal bars on a log axis, one bar per
    code (the current one and each baseline), with a dashed target line."""
    width = 0.8 / len(by_code)
    for index, (code, values) in enumerate(by_code.items()):
        axes.barh([y + index * width for y in range(len(names))], values, width, label=code)
    axes.set_yticks([y + width * (len(by_code) - 1) / 2 for y in range(len(names))])
    axes.set_yticklabels(names if name_labels else [""] * len(names), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("ms (log)")
    axes.set_title(title)
    axes.invert_yaxis()
    axes.axvline(target_ms, color="grey", linestyle="--", linewidth=1)
    axes.text(target_ms, -0.6, f" {target_ms:g} ms", fontsize=7, color="grey")
    axes.legend(fontsize=8)
