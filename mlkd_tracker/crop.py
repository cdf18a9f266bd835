"""Search/template crops with pysot's ``get_subwindow`` semantics, two ways (``TrackerConfig.crop``).

pysot pads the frame with the per-channel mean (truncated to uint8), cuts the ``sz`` x ``sz``
window ``[floor(c - (sz+1)/2 + 0.5), ... + sz - 1]`` around the centre and resizes it with
``cv2.resize`` (bilinear, half-pixel centres, the window's own edge pixels repeated beyond it) to
``out_size``.

- ``pysot``: exactly that, pixel for pixel: the same window (padded only where it leaves the
  frame, never the whole frame) and the same ``cv2.resize``. For reproducing published numbers.
- ``fast`` (default): the same pixel mapping as one ``cv2.warpAffine``: dst (u, v) samples src
  ((u + 0.5) * sz / out - 0.5 + x0, ...). Shrinking crops sample the frame directly with the
  mean colour as constant border, so no window is copied; enlarging crops (window smaller than
  the output, at most out x out pixels) warp the window with its edges repeated, as pysot does.
  The warp's 1/32-pixel coordinates and 15-bit weights differ from ``cv2.resize``'s 11-bit
  fixed point by at most 1 grey level; ``cv2.resize`` also averages 2x2 blocks for an exact
  2x reduction, which again differs by rounding only.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

CROP_MODES = ("fast", "pysot")


def crop_origin(center: float, size: int) -> float:
    """Top-left coordinate of pysot's context window of ``size`` pixels around ``center``."""
    return math.floor(center - (size + 1) / 2 + 0.5)


def _border(pad_color) -> tuple[float, ...]:
    return tuple(float(int(c)) for c in pad_color)  # pysot writes the mean into a uint8 array


def context_window(frame: np.ndarray, center_xy, size: int, pad_color) -> np.ndarray:
    """pysot's ``size`` x ``size`` window around ``center_xy``: a view of the frame when it lies inside,
    else a copy with the parts outside the frame in ``pad_color``."""
    sz = max(int(size), 1)
    x0, y0 = crop_origin(center_xy[0], sz), crop_origin(center_xy[1], sz)
    h, w = frame.shape[:2]
    xa, xb, ya, yb = max(x0, 0), min(x0 + sz, w), max(y0, 0), min(y0 + sz, h)  # the part inside the frame
    if xa >= xb or ya >= yb:
        return np.full((sz, sz, frame.shape[2]), _border(pad_color), np.uint8)
    inside = frame[ya:yb, xa:xb]
    if (xb - xa, yb - ya) == (sz, sz):
        return inside
    return cv2.copyMakeBorder(inside, ya - y0, y0 + sz - yb, xa - x0, x0 + sz - xb, cv2.BORDER_CONSTANT,
                              value=_border(pad_color))


def crop_subwindow(frame: np.ndarray, center_xy, out_size: int, original_size: int,
                   pad_color, mode: str = "fast") -> np.ndarray:
    """(out_size, out_size, 3) uint8 crop of the ``original_size`` square around ``center_xy``.

    Outside the frame the crop shows ``pad_color`` (the frame mean computed at init). ``mode``:
    one of :data:`CROP_MODES` (see the module docstring).
    """
    sz = max(int(original_size), 1)
    if mode == "pysot":
        window = context_window(frame, center_xy, sz, pad_color)
        return cv2.resize(window, (out_size, out_size)) if sz != out_size else np.ascontiguousarray(window)
    if mode != "fast":
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    scale = sz / out_size
    if sz < out_size:  # enlarging: the window is small; its edges repeat beyond it, as in cv2.resize
        source, x0, y0, border = context_window(frame, center_xy, sz, pad_color), 0, 0, cv2.BORDER_REPLICATE
    else:  # every sample lies inside the window: read the frame itself, the mean colour outside it
        source, border = frame, cv2.BORDER_CONSTANT
        x0, y0 = crop_origin(center_xy[0], sz), crop_origin(center_xy[1], sz)
    # inverse map: output pixel -> source pixel, with cv2.resize's half-pixel convention
    m = np.array([[scale, 0.0, x0 + 0.5 * scale - 0.5],
                  [0.0, scale, y0 + 0.5 * scale - 0.5]], dtype=np.float64)
    return cv2.warpAffine(source, m, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=_border(pad_color))
