"""One-pass evaluation (OPE) with the pysot-toolkit / OTB definitions, vectorised with numpy.

Definitions (pysot-toolkit ``toolkit/utils/statistics.py`` and ``evaluation/ope_benchmark.py``,
which follow the OTB MATLAB toolkit):

- Boxes are ``x, y, w, h`` in pixels; a box spans ``[x, x + w) x [y, y + h)`` (no +1).
- IoU: intersection ``max(0, min(x1 + w1, x2 + w2) - max(x1, x2))`` times the same in y, over
  ``w1*h1 + w2*h2 - intersection``, clipped to [0, 1].
- Centre: ``(x + (w - 1) / 2, y + (h - 1) / 2)``; centre error: Euclidean distance.
- Success curve: fraction of frames with IoU **strictly greater** than each threshold in
  ``numpy.arange(0, 1.05, 0.05)`` (21 values); AUC = mean of the curve.
- Precision curve: fraction of frames with centre error ``<=`` each of ``0, 1, ..., 50`` px;
  the precision score is the value at 20 px.
- Normalised precision: both centres divided by the ground-truth ``(w, h)`` (+1e-16), thresholds
  ``0, 0.01, ..., 0.5``; the score is the value at 0.2.
- A tracker's scores average the per-sequence curves over sequences (every sequence weighs the
  same), then take the AUC / the value at the threshold.

Frames without ground truth, ``protocol="pysot"`` (the default, so numbers compare with the
published UAVDark135 / NAT2021 / UAV123 tables): frames marked absent (LaSOT-style flags) are
dropped, but the denominator stays the sequence length; frames whose ground truth has no
positive width and height (NaN rows included) never count as a success, while for precision the
toolkit only measures frames whose ground-truth centre has both coordinates > 0 and counts the
others as within every threshold. ``protocol="skip"`` instead removes every frame without valid
ground truth (non-finite, non-positive size, or absent) from numerator and denominator alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from mlkd_tracker.errors import InputError

SUCCESS_THRESHOLDS = np.arange(0, 1.05, 0.05)
PRECISION_THRESHOLDS = np.arange(0, 51, 1)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, 1) / 100
PRECISION_INDEX = 20  # 20 px
NORM_PRECISION_INDEX = 20  # 0.2 of the target size
PROTOCOLS = ("pysot", "skip")


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``(N, 4)`` ``x, y, w, h`` arrays, clipped to [0, 1] (NaN stays NaN)."""
    a, b = np.asarray(boxes_a, np.float64), np.asarray(boxes_b, np.float64)
    left = np.maximum(a[:, 0], b[:, 0])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    top = np.maximum(a[:, 1], b[:, 1])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(0, right - left) * np.maximum(0, bottom - top)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(np.minimum(1, inter / union), 0)


def centers(boxes: np.ndarray) -> np.ndarray:
    """``(N, 2)`` box centres with the OTB convention ``x + (w - 1) / 2``."""
    boxes = np.asarray(boxes, np.float64)
    return boxes[:, :2] + (boxes[:, 2:4] - 1) / 2


def _fraction_over(values: np.ndarray, thresholds: np.ndarray, n: int, strict: bool) -> np.ndarray:
    if n == 0:
        return np.full(len(thresholds), np.nan)
    hits = values[:, None] > thresholds[None, :] if strict else values[:, None] <= thresholds[None, :]
    return hits.sum(axis=0) / float(n)


@dataclass(frozen=True)
class SequenceCurves:
    """Success, precision and normalised precision curves of one tracker on one sequence."""

    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray


def sequence_curves(gt: np.ndarray, pred: np.ndarray, absent: np.ndarray | None = None,
                    protocol: str = "pysot") -> SequenceCurves:
    """The three OPE curves for one sequence (definitions and protocols in the module docstring)."""
    gt, pred = np.asarray(gt, np.float64).reshape(-1, 4), np.asarray(pred, np.float64).reshape(-1, 4)
    if len(gt) != len(pred):
        raise InputError(f"{len(pred)} result boxes for {len(gt)} ground-truth frames")
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown evaluation protocol {protocol!r}; expected one of {PROTOCOLS}")
    n = len(gt)
    if absent is not None:
        present = ~np.asarray(absent, bool)
        gt, pred = gt[present], pred[present]
    with np.errstate(invalid="ignore", divide="ignore"):
        sized = (gt[:, 2] > 0) & (gt[:, 3] > 0)
        gt_c, pred_c = centers(gt), centers(pred)
        size = gt[:, 2:4] + 1e-16
        gt_n, pred_n = gt_c / size, pred_c / size
        if protocol == "skip":
            keep = sized & np.isfinite(gt).all(axis=1)
            m = int(keep.sum())
            overlaps = iou(gt[keep], pred[keep])
            errors = np.linalg.norm(gt_c[keep] - pred_c[keep], axis=1)
            norm_errors = np.linalg.norm(gt_n[keep] - pred_n[keep], axis=1)
            return SequenceCurves(_fraction_over(overlaps, SUCCESS_THRESHOLDS, m, True),
                                  _fraction_over(errors, PRECISION_THRESHOLDS, m, False),
                                  _fraction_over(norm_errors, NORM_PRECISION_THRESHOLDS, m, False))
        overlaps = np.full(len(gt), -1.0)
        overlaps[sized] = iou(gt[sized], pred[sized])
        errors = np.full(len(gt), -1.0)
        measured = (gt_c > 0).all(axis=1)
        errors[measured] = np.linalg.norm(gt_c[measured] - pred_c[measured], axis=1)
        norm_errors = np.full(len(gt), -1.0)
        measured_n = (gt_n > 0).all(axis=1)
        norm_errors[measured_n] = np.linalg.norm(gt_n[measured_n] - pred_n[measured_n], axis=1)
        return SequenceCurves(_fraction_over(overlaps, SUCCESS_THRESHOLDS, n, True),
                              _fraction_over(errors, PRECISION_THRESHOLDS, n, False),
                              _fraction_over(norm_errors, NORM_PRECISION_THRESHOLDS, n, False))


@dataclass
class Scores:
    """Mean curves over a set of sequences and the three headline numbers."""

    sequences: int
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray

    @property
    def auc(self) -> float:
        return float(np.mean(self.success))

    @property
    def precision_20(self) -> float:
        return float(self.precision[PRECISION_INDEX])

    @property
    def norm_precision_20(self) -> float:
        return float(self.norm_precision[NORM_PRECISION_INDEX])

    def to_dict(self, curves: bool = True) -> dict:
        """JSON-ready scores (``None`` instead of NaN when no sequence could be evaluated)."""
        if not self.sequences:
            return {"sequences": 0, "success_auc": None, "precision_20": None, "norm_precision_20": None}
        out = {"sequences": self.sequences, "success_auc": self.auc, "precision_20": self.precision_20,
               "norm_precision_20": self.norm_precision_20}
        if curves:
            out.update(success_curve=self.success.tolist(), precision_curve=self.precision.tolist(),
                       norm_precision_curve=self.norm_precision.tolist())
        return out


def mean_scores(curves: Iterable[SequenceCurves]) -> Scores:
    """Average per-sequence curves (sequences without any evaluable frame are left out)."""
    kept = [c for c in curves if not np.isnan(c.success).any()]
    if not kept:
        nan = np.full(len(SUCCESS_THRESHOLDS), np.nan)
        return Scores(0, nan, np.full(len(PRECISION_THRESHOLDS), np.nan),
                      np.full(len(NORM_PRECISION_THRESHOLDS), np.nan))
    return Scores(len(kept), np.mean([c.success for c in kept], axis=0),
                  np.mean([c.precision for c in kept], axis=0),
                  np.mean([c.norm_precision for c in kept], axis=0))


@dataclass
class TrackerEvaluation:
    """One tracker on one dataset: overall and per-attribute scores, per-sequence AUC and FPS."""

    name: str
    overall: Scores
    per_sequence: dict[str, SequenceCurves]
    attributes: dict[str, Scores] = field(default_factory=dict)
    fps: float | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, **self.overall.to_dict(), "fps": self.fps,
                "attributes": {k: v.to_dict() for k, v in self.attributes.items()},
                "per_sequence": {k: {"success_auc": float(np.mean(c.success)),
                                     "precision_20": float(c.precision[PRECISION_INDEX]),
                                     "norm_precision_20": float(c.norm_precision[NORM_PRECISION_INDEX])}
                                 for k, c in self.per_sequence.items()}}


def evaluate_tracker(name: str, gts: Mapping[str, np.ndarray], preds: Mapping[str, np.ndarray],
                     absents: Mapping[str, np.ndarray | None] | None = None,
                     attributes: Mapping[str, list[str]] | None = None, protocol: str = "pysot",
                     fps: float | None = None) -> TrackerEvaluation:
    """Evaluate one tracker's boxes (``preds[seq]``) against ``gts[seq]``; ``attributes`` maps name -> sequences."""
    absents = absents or {}
    per_seq = {}
    for seq, gt in gts.items():
        try:
            per_seq[seq] = sequence_curves(gt, preds[seq], absents.get(seq), protocol)
        except InputError as exc:
            raise InputError(f"tracker {name}, sequence {seq}: {exc}") from None
    overall = mean_scores(per_seq.values())
    by_attr = {attr: mean_scores(per_seq[s] for s in seqs if s in per_seq)
               for attr, seqs in (attributes or {}).items()}
    return TrackerEvaluation(name, overall, per_seq, by_attr, fps)
