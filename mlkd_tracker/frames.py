"""Frame and box validation shared by every entry point (CLI, ROS node, evaluation)."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from mlkd_tracker.errors import InputError


def as_bgr_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as HxWx3 uint8 BGR; grayscale (HxW or HxWx1) is converted, anything else rejected."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 (0..255), got dtype {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame must be HxWx3 BGR (or HxW grayscale), got shape {frame.shape}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError(f"frame is empty: shape {frame.shape}")
    return frame


def validate_box(box_xywh: Sequence[float], frame_shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Check an ``x, y, w, h`` box (pixels, top-left origin) against a frame; return it as floats."""
    try:
        x, y, w, h = (float(v) for v in box_xywh)
    except (TypeError, ValueError):
        raise InputError(f"box must be 4 numbers x,y,w,h, got {box_xywh!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InputError(f"box has a non-finite value: {(x, y, w, h)}")
    if w <= 0 or h <= 0:
        raise InputError(f"box width and height must be positive, got w={w:g}, h={h:g}")
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"box {x:g},{y:g},{w:g},{h:g} lies entirely outside the {width}x{height} frame")
    return x, y, w, h


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse ``"x,y,w,h"`` (commas, spaces or tabs) from the command line."""
    parts = text.replace(",", " ").split()
    if len(parts) != 4:
        raise InputError(f"expected a box as x,y,w,h, got {text!r}")
    try:
        return tuple(float(p) for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise InputError(f"box values must be numbers, got {text!r}") from None
