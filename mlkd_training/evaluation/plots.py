"""Success, precision and normalised-precision plots (PNG, matplotlib), one set per attribute."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

from mlkd_training.evaluation.metrics import (NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS,
                                              Scores, TrackerEvaluation)

_KINDS = {  # kind -> (x values, x label, y label, legend score, title)
    "success": (SUCCESS_THRESHOLDS, "overlap threshold", "success rate", "AUC", "Success plots of OPE"),
    "precision": (PRECISION_THRESHOLDS, "location error threshold (px)", "precision", "P@20",
                  "Precision plots of OPE"),
    "norm_precision": (NORM_PRECISION_THRESHOLDS, "normalised location error threshold", "normalised precision",
                       "NP@0.2", "Normalised precision plots of OPE"),
}


def _curve(scores: Scores, kind: str):
    if kind == "success":
        return scores.success, scores.auc
    if kind == "precision":
        return scores.precision, scores.precision_20
    return scores.norm_precision, scores.norm_precision_20


def save_figure(fig, path: Path) -> Path:
    """``fig.savefig`` through a temp file and a rename (never a half-written PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial.png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def plot_curves(evaluations: Sequence[TrackerEvaluation], kind: str, path: Path, dataset: str,
                attribute: str | None = None) -> Path:
    """One plot of ``kind`` (success / precision / norm_precision), trackers ranked by their score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, xlabel, ylabel, score_name, title = _KINDS[kind]
    rows = []
    for ev in evaluations:
        scores = ev.overall if attribute is None else ev.attributes.get(attribute)
        if scores is not None and scores.sequences:
            rows.append((ev.name, *_curve(scores, kind), scores.sequences))
    rows.sort(key=lambda r: -r[2])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    try:
        for name, curve, score, _ in rows:
            ax.plot(xs, curve, linewidth=2, label=f"[{score:.3f}] {name}")
        n_seq = rows[0][3] if rows else 0
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(xs[0], xs[-1]), ylim=(0, 1.0),
               title=f"{title} on {dataset}" + (f" ({attribute}, {n_seq} seq.)" if attribute else ""))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower left" if kind == "success" else "lower right", fontsize=8,
                  title=score_name, title_fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_all(evaluations: Sequence[TrackerEvaluation], out_dir: Path, dataset: str) -> list[Path]:
    """Every kind of plot for all sequences and for each attribute: ``<kind>_<ATTR>.png``."""
    attributes = sorted({a for ev in evaluations for a in ev.attributes})
    paths = []
    for attribute in [None, *attributes]:
        label = "ALL" if attribute is None else re.sub(r"[^A-Za-z0-9_.-]+", "_", attribute)
        for kind in _KINDS:
            paths.append(plot_curves(evaluations, kind, out_dir / f"{kind}_{label}.png", dataset, attribute))
    return paths
