"""RPN anchors, decoding and the penalties of SiamRPN tracking (pysot semantics), numpy only."""
from __future__ import annotations

import math

import numpy as np

from mlkd_tracker.config import TrackerConfig


def base_anchors(stride: int, ratios, scales) -> np.ndarray:
    """(A, 4) anchor sizes as (0, 0, w, h): for ratio r, w = int(sqrt(stride^2 / r)), h = int(w * r), times scale."""
    out = []
    for r in ratios:
        w = int(math.sqrt(stride * stride / r))
        h = int(w * r)
        for s in scales:
            out.append((0.0, 0.0, w * s, h * s))
    return np.asarray(out, dtype=np.float32)


def anchor_grid(score_size: int, stride: int, ratios, scales) -> np.ndarray:
    """(4, A*S*S) anchors (cx, cy, w, h) relative to the search-crop centre, in (a, y, x) order."""
    base = base_anchors(stride, ratios, scales)
    offsets = (np.arange(score_size) - score_size // 2) * stride
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    a = len(base)
    cx = np.tile(xx.ravel(), a)
    cy = np.tile(yy.ravel(), a)
    w = np.repeat(base[:, 2], score_size * score_size)
    h = np.repeat(base[:, 3], score_size * score_size)
    return np.stack([cx, cy, w, h]).astype(np.float32)


def tracking_anchors(config: TrackerConfig) -> np.ndarray:
    return anchor_grid(config.score_size, config.stride, config.anchor_ratios, config.anchor_scales)


def cosine_window(score_size: int, anchor_num: int) -> np.ndarray:
    """Hanning window over the score map, repeated for every anchor shape: (A*S*S,)."""
    hanning = np.hanning(score_size)
    return np.tile(np.outer(hanning, hanning).ravel(), anchor_num).astype(np.float32)


def foreground_scores(cls: np.ndarray, anchor_num: int) -> np.ndarray:
    """Softmax foreground probability per anchor from a (1, 2A, S, S) cls map: (A*S*S,).

    Channel layout as pysot: channels [0, A) are background, [A, 2A) foreground logits.
    """
    logits = cls.reshape(2, -1)
    # softmax over 2 classes == sigmoid of the logit difference; the clip keeps exp finite in float32
    return 1.0 / (1.0 + np.exp(np.clip(logits[0] - logits[1], -80.0, 80.0)))


def decode_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(4, N) boxes (cx, cy, w, h) in search-crop pixels relative to its centre, from (1, 4A, S, S) deltas."""
    delta = loc.reshape(4, -1)
    boxes = np.empty(delta.shape, np.float32)
    np.multiply(delta[:2], anchors[2:], out=boxes[:2])
    boxes[:2] += anchors[:2]
    # exp of a wild delta must stay finite: clip to a box 1e4 times the anchor
    np.exp(np.clip(delta[2:], -10.0, 10.0), out=boxes[2:])
    boxes[2:] *= anchors[2:]
    return boxes


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _padded_size(w, h):
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def size_penalty(boxes: np.ndarray, target_w: float, target_h: float, penalty_k: float) -> np.ndarray:
    """exp(-(r_c * s_c - 1) * k): penalises scale (s_c) and aspect-ratio (r_c) change vs the target.

    ``target_w/h`` are the current target size in search-crop pixels.
    """
    w, h = boxes[2], boxes[3]
    s_c = _change(_padded_size(w, h) * np.float32(1.0 / _padded_size(target_w, target_h)))
    r_c = _change(h * np.float32(target_w / target_h) / w)
    return np.exp((r_c * s_c - 1.0) * np.float32(-penalty_k))
