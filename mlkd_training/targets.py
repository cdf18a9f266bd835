"""Training targets for one search crop, numpy only: anchors (SiamRPN) or points (NanoTrack).

``make_targets(config)`` picks by ``TargetConfig.decoder``, the same switch as the tracker's
decoder. Both return the same :class:`Labels` shape (``A = 1`` for points).

Anchors (pysot ``AnchorTarget`` semantics):
Anchors come from :func:`mlkd_tracker.anchors.anchor_grid` (the tracker's own formula), placed on
the training score map (17x17 for a 255 crop) around the crop centre ``search_size // 2``.
Labels: IoU > ``thr_high`` positive (at most ``pos_num`` kept), IoU < ``thr_low`` negative (at
most ``total_num - pos_num`` kept), the rest ignored (-1). A negative pair (search crop from another video) labels only the 7x7 cells around the
box it holds as negatives, ``neg_num`` of them. Regression targets are the normalised deltas
``((tx - ax) / aw, (ty - ay) / ah, log(tw / aw), log(th / ah))`` weighted ``1 / num_pos`` on
positives.

Points (NanoTrack's ``PointTarget``): one point per score-map position, on the ``stride`` grid
centred on the crop centre. Positives are the points inside the ellipse of semi-axes ``w/4,
h/4`` around the target centre (at most ``pos_num``), negatives the points outside the ellipse
``w/2, h/2`` (at most ``total_num - pos_num``); a negative pair labels the points of the inner
ellipse as negatives (``neg_num``). Regression targets are the distances from each point to the
box's left, top, right and bottom sides (crop pixels), weighted 1 on positives (the IoU loss
averages over them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlkd_tracker.anchors import anchor_grid


DECODERS = ("anchors", "points")


@dataclass(frozen=True)
class TargetConfig:
    """pysot ``cfg.TRAIN`` target values, ``cfg.ANCHOR`` (anchors) or ``cfg.POINT`` (points)."""

    decoder: str = "anchors"
    search_size: int = 255
    output_size: int = 17
    stride: int = 8
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)
    thr_high: float = 0.6
    thr_low: float = 0.3
    pos_num: int = 16
    total_num: int = 64
    neg_num: int = 16

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)


@dataclass
class Labels:
    """Targets of one search crop: ``cls`` (A,S,S) int64 in {-1, 0, 1}, ``delta`` (4,A,S,S), ``weight`` (A,S,S)."""

    cls: np.ndarray
    delta: np.ndarray
    weight: np.ndarray


def box_iou(anchors_xyxy: np.ndarray, box_xyxy) -> np.ndarray:
    """IoU of corner boxes ``(4, ...)`` with one corner box (pysot's convention: no +1 on sizes)."""
    x1, y1, x2, y2 = anchors_xyxy
    tx1, ty1, tx2, ty2 = (float(v) for v in box_xyxy)
    inter = np.maximum(0.0, np.minimum(x2, tx2) - np.maximum(x1, tx1)) * \
        np.maximum(0.0, np.minimum(y2, ty2) - np.maximum(y1, ty1))
    union = (x2 - x1) * (y2 - y1) + (tx2 - tx1) * (ty2 - ty1) - inter
    return inter / union


def _keep_random(index: tuple[np.ndarray, ...], keep: int, rng: np.random.Generator):
    n = len(index[0])
    if n <= keep:
        return index, n
    chosen = rng.permutation(n)[:keep]
    return tuple(i[chosen] for i in index), keep


class AnchorTargets:
    """Callable turning the target box of a search crop into anchor :class:`Labels`."""

    def __init__(self, config: TargetConfig | None = None):
        self.config = c = config or TargetConfig()
        s, a = c.output_size, c.anchor_num
        grid = anchor_grid(s, c.stride, c.ratios, c.scales).reshape(4, a, s, s).astype(np.float32)
        grid[0] += c.search_size // 2
        grid[1] += c.search_size // 2
        self.centers = grid  # (cx, cy, w, h) per anchor, crop pixels
        self.corners = np.stack([grid[0] - grid[2] / 2, grid[1] - grid[3] / 2,
                                 grid[0] + grid[2] / 2, grid[1] + grid[3] / 2])

    def __call__(self, box_xyxy, negative: bool, rng: np.random.Generator) -> Labels:
        """Labels for a target at ``box_xyxy`` (search-crop pixels); ``negative`` for a negative pair."""
        c = self.config
        a, s = c.anchor_num, c.output_size
        cls = np.full((a, s, s), -1, np.int64)
        delta = np.zeros((4, a, s, s), np.float32)
        weight = np.zeros((a, s, s), np.float32)
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        tcx, tcy, tw, th = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        if negative:
            # the 7x7 cells around the (unrelated) object in the crop are negatives
            cx = s // 2 + int(np.ceil((tcx - c.search_size // 2) / c.stride + 0.5))
            cy = s // 2 + int(np.ceil((tcy - c.search_size // 2) / c.stride + 0.5))
            zone = np.zeros((a, s, s), bool)
            zone[:, max(0, cy - 3):min(s, cy + 4), max(0, cx - 3):min(s, cx + 4)] = True
            neg, _ = _keep_random(np.nonzero(zone), c.neg_num, rng)
            cls[neg] = 0
            return Labels(cls, delta, weight)
        acx, acy, aw, ah = self.centers
        delta[0] = (tcx - acx) / aw
        delta[1] = (tcy - acy) / ah
        delta[2] = np.log(max(tw, 1e-6) / aw)
        delta[3] = np.log(max(th, 1e-6) / ah)
        overlap = box_iou(self.corners, (x1, y1, x2, y2))
        pos, pos_num = _keep_random(np.nonzero(overlap > c.thr_high), c.pos_num, rng)
        neg, _ = _keep_random(np.nonzero(overlap < c.thr_low), c.total_num - c.pos_num, rng)
        cls[pos] = 1
        weight[pos] = 1.0 / (pos_num + 1e-6)
        cls[neg] = 0
        return Labels(cls, delta, weight)


class PointTargets:
    """Callable turning the target box of a search crop into point :class:`Labels` (NanoTrack)."""

    def __init__(self, config: TargetConfig):
        self.config = c = config
        offsets = (np.arange(c.output_size) - c.output_size // 2) * c.stride + c.search_size // 2
        self.py, self.px = (g.astype(np.float32) for g in np.meshgrid(offsets, offsets, indexing="ij"))

    def _inside(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((self.px - cx) / max(rx, 1e-6)) ** 2 + ((self.py - cy) / max(ry, 1e-6)) ** 2 < 1

    def __call__(self, box_xyxy, negative: bool, rng: np.random.Generator) -> Labels:
        c = self.config
        s = c.output_size
        cls = np.full((1, s, s), -1, np.int64)
        delta = np.zeros((4, 1, s, s), np.float32)
        weight = np.zeros((1, s, s), np.float32)
        x1, y1, x2, y2 = (float(v) for v in box_xyxy)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        core = self._inside(cx, cy, w / 4, h / 4)[None]
        if negative:
            neg, _ = _keep_random(np.nonzero(core), c.neg_num, rng)
            cls[neg] = 0
            return Labels(cls, delta, weight)
        delta[:, 0] = (self.px - x1, self.py - y1, x2 - self.px, y2 - self.py)
        pos, _ = _keep_random(np.nonzero(core), c.pos_num, rng)
        neg, _ = _keep_random(np.nonzero(~self._inside(cx, cy, w / 2, h / 2)[None]), c.total_num - c.pos_num, rng)
        cls[pos] = 1
        weight[pos] = 1.0
        cls[neg] = 0
        return Labels(cls, delta, weight)


def make_targets(config: TargetConfig) -> AnchorTargets | PointTargets:
    """The target maker of the config's decoder (the tracker decodes the same way)."""
    if config.decoder not in DECODERS:
        raise ValueError(f"targets.decoder must be one of {DECODERS}, got {config.decoder!r}")
    return PointTargets(config) if config.decoder == "points" else AnchorTargets(config)
