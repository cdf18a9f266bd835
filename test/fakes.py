"""Deterministic test backends: they stand in for a network so tracking logic can be checked exactly."""
from __future__ import annotations

import numpy as np

from mlkd_tracker.anchors import tracking_anchors
from mlkd_tracker.config import TrackerConfig


class PlantedPeakBackend:
    """Plants the score peak where a target at ``target_fn()`` (crop pixels from the crop centre) would be.

    ``offset_fn(crop)`` returns the (dx, dy) offset of the target from the search-crop centre in
    crop pixels; the backend puts a high foreground logit on the anchor nearest to it (square
    anchor, ratio 1) with regression deltas that land exactly on it and keep the anchor size.
    """

    name = "planted-peak"

    def __init__(self, offset_fn, config: TrackerConfig | None = None, peak_logit: float = 6.0,
                 low_logit: float = -6.0):
        self.config = config or TrackerConfig()
        self.offset_fn = offset_fn
        self.peak_logit = peak_logit
        self.low_logit = low_logit
        self.anchors = tracking_anchors(self.config)
        self.template_calls = 0
        self.search_calls = 0

    def template(self, crop: np.ndarray):
        self.template_calls += 1
        return ("kernels", crop.shape)

    def search(self, crop: np.ndarray, kernels):
        self.search_calls += 1
        c = self.config
        a, s = c.anchor_num, c.score_size
        dx, dy = self.offset_fn(crop)
        cls = np.zeros((1, 2 * a, s, s), np.float32)
        cls[0, a:] = self.low_logit  # foreground logit low everywhere ...
        loc = np.zeros((1, 4 * a, s, s), np.float32)
        square = int(np.argmin([abs(r - 1.0) for r in c.anchor_ratios]) * len(c.anchor_scales))
        ix = int(np.clip(round(dx / c.stride) + s // 2, 0, s - 1))
        iy = int(np.clip(round(dy / c.stride) + s // 2, 0, s - 1))
        cls[0, a + square, iy, ix] = self.peak_logit  # ... but high at the target
        anchor = self.anchors[:, square * s * s + iy * s + ix]
        loc[0, square, iy, ix] = (dx - anchor[0]) / anchor[2]
        loc[0, a + square, iy, ix] = (dy - anchor[1]) / anchor[3]
        return cls, loc


def brightest_blob_offset(crop: np.ndarray) -> tuple[float, float]:
    """Offset from the crop centre of the centroid of its brightest pixels (a lit target on a dark scene)."""
    grey = crop.astype(np.float32).mean(axis=2)
    mask = grey >= grey.max() - 1.0
    ys, xs = np.nonzero(mask)
    h, w = grey.shape
    return float(xs.mean() - (w - 1) / 2.0), float(ys.mean() - (h - 1) / 2.0)


def moving_square_frames(n: int, size=(360, 640), start=(100.0, 120.0), step=(6.0, 3.0), side: int = 24):
    """``n`` dark BGR frames with a bright square moving by ``step`` px per frame; returns frames and true boxes."""
    frames, boxes = [], []
    for i in range(n):
        frame = np.full((*size, 3), 20, np.uint8)
        x, y = start[0] + step[0] * i, start[1] + step[1] * i
        frame[int(y):int(y) + side, int(x):int(x) + side] = 230
        frames.append(frame)
        boxes.append((int(x), int(y), side, side))
    return frames, boxes
