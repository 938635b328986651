"""Small matplotlib helpers shared by the plots of training runs, experiments and evaluation."""

from __future__ import annotations

from typing import Any


def legend(ax: Any, *twins: Any, **kwargs: Any) -> bool:
    """One legend for ``ax`` and its twin axes, placed where it covers the fewest points (``loc="best"``
    unless given); none when nothing carries a label, instead of matplotlib's "No artists with labels
    found to put in legend" warning (a short run may have drawn no line yet). Says whether one was drawn."""
    handles: list[Any] = []
    labels: list[str] = []
    for a in (ax, *twins):
        h, lab = a.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        ax.legend(handles, labels, **{"loc": "best", **kwargs})
    return bool(handles)
