"""From a network's score maps to candidate boxes: the one place where head kinds differ.

A decoder turns the search branch's ``(cls, loc)`` maps into per-candidate foreground scores and
boxes ``(cx, cy, w, h)`` in search-crop pixels relative to the crop centre, and holds the cosine
window over the same candidates. Everything after that (penalties, window blend, smoothing) is
the shared tracker. ``TrackerConfig.decoder`` picks one:

- ``anchors`` (SiamRPN): A anchor shapes per position, cls channels ``[0, A)`` background and
  ``[A, 2A)`` foreground, loc deltas ``(dx, dy, dw, dh)`` relative to the anchor.
- ``points`` (NanoTrack's BAN head): one candidate per position, cls channels (background,
  foreground), loc the distances from the point to the box's left, top, right and bottom sides.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from mlkd_tracker.anchors import cosine_window, decode_boxes, foreground_scores, tracking_anchors
from mlkd_tracker.config import TrackerConfig


class Decoder(Protocol):
    window: np.ndarray  # (N,) cosine window over the candidates

    def decode(self, cls: np.ndarray, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (N,), boxes (4, N))`` from the search branch's maps."""


def point_grid(score_size: int, stride: int) -> np.ndarray:
    """(2, S*S) score-map points (x, y) relative to the search-crop centre, row-major."""
    offsets = (np.arange(score_size) - score_size // 2) * stride
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()]).astype(np.float32)


def decode_points(loc: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(4, N) boxes (cx, cy, w, h) from (1, 4, S, S) left/top/right/bottom distances at each point."""
    left, top, right, bottom = loc.reshape(4, -1)
    boxes = np.empty((4, left.shape[0]), np.float32)
    boxes[0] = points[0] + (right - left) * 0.5
    boxes[1] = points[1] + (bottom - top) * 0.5
    boxes[2] = left + right
    boxes[3] = top + bottom
    return boxes


class AnchorDecoder:
    """SiamRPN: anchors of every shape at every position (pysot ``SiamRPNTracker``)."""

    def __init__(self, config: TrackerConfig):
        self.anchor_num = config.anchor_num
        self.anchors = tracking_anchors(config)
        self.window = cosine_window(config.score_size, self.anchor_num)

    def decode(self, cls: np.ndarray, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return foreground_scores(cls, self.anchor_num), decode_boxes(loc, self.anchors)


class PointDecoder:
    """NanoTrack: one box per score-map point from its side distances (the authors' ``NanoTracker``)."""

    def __init__(self, config: TrackerConfig):
        self.points = point_grid(config.score_size, config.stride)
        self.window = cosine_window(config.score_size, 1)

    def decode(self, cls: np.ndarray, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return foreground_scores(cls, 1), decode_points(loc, self.points)


def make_decoder(config: TrackerConfig) -> Decoder:
    return PointDecoder(config) if config.decoder == "points" else AnchorDecoder(config)
