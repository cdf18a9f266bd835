"""Drawing a tracking result on a frame (annotated videos, ROS debug images)."""
from __future__ import annotations

import cv2
import numpy as np

from mlkd_tracker.tracker import Status, TrackResult

_COLORS = {Status.TRACKING: (60, 220, 60), Status.LOST: (40, 40, 240), Status.IDLE: (200, 200, 200)}


def draw_result(frame: np.ndarray, result: TrackResult, fps: float | None = None) -> np.ndarray:
    """Draw the box, score, status and (optionally) FPS onto ``frame`` in place; returns it."""
    x, y, w, h = (int(round(v)) for v in result.box_xywh)
    color = _COLORS[result.status]
    cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
    label = f"{result.status.value} {result.score:.2f}" + (f"  {fps:.1f} FPS" if fps else "")
    cv2.putText(frame, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(frame, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, color, 1, cv2.LINE_AA)
    return frame
