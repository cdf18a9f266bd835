"""Search/template crops with pysot's ``get_subwindow`` semantics in one ``cv2.warpAffine``.

pysot pads the frame with the per-channel mean (truncated to uint8), cuts the square
``[floor(c - (sz+1)/2 + 0.5), ... + sz - 1]`` around the centre and resizes it bilinearly to
``out_size``. The same pixel mapping as one affine warp with a constant border avoids the
padded copy of the whole frame: dst (u, v) samples src ((u + 0.5) * sz / out - 0.5 + x0, ...).
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def crop_origin(center: float, size: int) -> float:
    """Top-left coordinate of pysot's context window of ``size`` pixels around ``center``."""
    return math.floor(center - (size + 1) / 2 + 0.5)


def crop_subwindow(frame: np.ndarray, center_xy, out_size: int, original_size: int,
                   pad_color) -> np.ndarray:
    """(out_size, out_size, 3) uint8 crop of the ``original_size`` square around ``center_xy``.

    Outside the frame the crop shows ``pad_color`` (the frame mean computed at init).
    """
    sz = max(int(original_size), 1)
    x0 = crop_origin(center_xy[0], sz)
    y0 = crop_origin(center_xy[1], sz)
    scale = sz / out_size
    # inverse map: output pixel -> source pixel, with cv2.resize's half-pixel convention
    m = np.array([[scale, 0.0, x0 + 0.5 * scale - 0.5],
                  [0.0, scale, y0 + 0.5 * scale - 0.5]], dtype=np.float64)
    border = tuple(float(int(c)) for c in pad_color)  # pysot writes the mean into a uint8 array
    return cv2.warpAffine(frame, m, (out_size, out_size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)
