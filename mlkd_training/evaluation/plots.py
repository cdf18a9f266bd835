"""Success, precision and normalised-precision plots (PNG, matplotlib).

``success.png``, ``precision.png`` and ``norm_precision.png`` cover all sequences;
``attributes_success.png`` and ``attributes_precision.png`` hold one panel per attribute. Trackers
are ranked by the score in the legend (AUC, precision at 20 px, normalised precision at 0.2).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from mlkd_tracker.report import atomic_output
from mlkd_training.evaluation.metrics import (NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS,
                                              Scores, TrackerEvaluation)

_KINDS = {  # kind -> (x values, x label, y label, legend score, title)
    "success": (SUCCESS_THRESHOLDS, "overlap threshold", "success rate", "AUC", "Success plot of OPE"),
    "precision": (PRECISION_THRESHOLDS, "location error threshold (px)", "precision", "P@20",
                  "Precision plot of OPE"),
    "norm_precision": (NORM_PRECISION_THRESHOLDS, "normalised location error threshold", "normalised precision",
                       "NP@0.2", "Normalised precision plot of OPE"),
}


def _curve(scores: Scores, kind: str):
    if kind == "success":
        return scores.success, scores.auc
    if kind == "precision":
        return scores.precision, scores.precision_20
    return scores.norm_precision, scores.norm_precision_20


def save_figure(fig, path: Path) -> Path:
    """``fig.savefig`` through :func:`atomic_output` (never a half-written image)."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    return path


def _draw_panel(ax, evaluations: Sequence[TrackerEvaluation], kind: str, title: str,
                attribute: str | None = None, legend_size: float = 8) -> None:
    xs, xlabel, ylabel, score_name, _ = _KINDS[kind]
    rows = []
    for ev in evaluations:
        scores = ev.overall if attribute is None else ev.attributes.get(attribute)
        if scores is not None and scores.sequences:
            rows.append((ev.name, *_curve(scores, kind)))
    for name, curve, score in sorted(rows, key=lambda r: -r[2]):
        ax.plot(xs, curve, linewidth=1.8, label=f"[{score:.3f}] {name}")
    ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(xs[0], xs[-1]), ylim=(0, 1.0), title=title)
    ax.grid(True, alpha=0.3)
    if rows:
        ax.legend(loc="lower left" if kind == "success" else "lower right", fontsize=legend_size,
                  title=score_name, title_fontsize=legend_size)


def _figure(rows: int, cols: int, panel: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(panel[0] * cols, panel[1] * rows), squeeze=False)
    return plt, fig, axes


def plot_overall(evaluations: Sequence[TrackerEvaluation], kind: str, path: Path, dataset: str) -> Path:
    """One plot of ``kind`` (success / precision / norm_precision) over all sequences."""
    plt, fig, axes = _figure(1, 1, (6.4, 4.8))
    try:
        n_seq = max((ev.overall.sequences for ev in evaluations), default=0)
        _draw_panel(axes[0, 0], evaluations, kind, f"{_KINDS[kind][4]} on {dataset} ({n_seq} sequences)")
        fig.subplots_adjust(left=0.11, right=0.97, bottom=0.11, top=0.92)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_attributes(evaluations: Sequence[TrackerEvaluation], kind: str, path: Path,
                    attributes: dict[str, list[str]]) -> Path:
    """One panel per attribute (sequences that have it), in a grid."""
    names = sorted(attributes)
    cols = min(4, len(names))
    plt, fig, axes = _figure(math.ceil(len(names) / cols), cols, (4.2, 3.4))
    try:
        for ax, attr in zip(axes.flat, names):
            _draw_panel(ax, evaluations, kind, f"{attr} ({len(attributes[attr])} seq.)", attr, legend_size=6)
        for ax in list(axes.flat)[len(names):]:
            ax.set_visible(False)
        fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.94, hspace=0.45, wspace=0.3)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_all(evaluations: Sequence[TrackerEvaluation], out_dir: Path, dataset: str,
             attributes: dict[str, list[str]] | None = None) -> list[Path]:
    """The three overall plots, and the attribute grids when the dataset has attributes."""
    paths = [plot_overall(evaluations, kind, out_dir / f"{kind}.png", dataset) for kind in _KINDS]
    if attributes:
        paths += [plot_attributes(evaluations, kind, out_dir / f"attributes_{kind}.png", attributes)
                  for kind in ("success", "precision")]
    return paths


def plot_per_sequence(values: dict[str, Sequence[float]], sequences: Sequence[str], path: Path, ylabel: str,
                      title: str) -> Path:
    """Grouped bars: one group per sequence, one bar per tracker (``values``: tracker -> one value per sequence)."""
    plt, fig, axes = _figure(1, 1, (max(8.0, 0.45 * len(sequences) * max(1, len(values))), 4.5))
    ax = axes[0][0]
    width = 0.8 / max(1, len(values))
    for i, (name, ys) in enumerate(values.items()):
        ax.bar([j + (i - (len(values) - 1) / 2) * width for j in range(len(sequences))], ys, width,
               label=f"{name} (mean {sum(ys) / max(1, len(ys)):.3f})")
    ax.set_xticks(range(len(sequences)), sequences, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, ylim=(0, 1.0), title=title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
