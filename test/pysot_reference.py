"""A literal re-implementation of pysot's SiamRPN tracking (``get_subwindow``, ``SiamRPNTracker``), for tests.

Written step by step from reading pysot (``pysot/tracker/base_tracker.py``,
``pysot/tracker/siamrpn_tracker.py``, ``pysot/utils/anchor.py``), not from the modules under
test: the frame padded with the mean where the window leaves it, the window cut and
``cv2.resize``d; anchors from pysot's ``Anchors``; the loop around them (softmax scores,
penalties, cosine window, smoothing, clipping) is the one NanoTrack's authors kept from pysot
(``nanotrack_reference.AuthorsNanoTracker``).
"""
import math

import cv2
import numpy as np

from nanotrack_reference import AuthorsNanoTracker


def pysot_subwindow(im, pos, model_sz, original_sz, avg_chans):
    """pysot's get_subwindow: pad the whole frame with the mean where the window leaves it (top and bottom
    strips, then full-height left and right strips), cut, cv2.resize unless the sizes match."""
    sz = original_sz
    c = (original_sz + 1) / 2
    xmin = np.floor(pos[0] - c + 0.5)
    ymin = np.floor(pos[1] - c + 0.5)
    xmax, ymax = xmin + sz - 1, ymin + sz - 1
    left, top = int(max(0.0, -xmin)), int(max(0.0, -ymin))
    right, bottom = int(max(0.0, xmax - im.shape[1] + 1)), int(max(0.0, ymax - im.shape[0] + 1))
    xmin, xmax, ymin, ymax = xmin + left, xmax + left, ymin + top, ymax + top
    rows, cols, channels = im.shape
    if any([top, bottom, left, right]):
        padded = np.zeros((rows + top + bottom, cols + left + right, channels), np.uint8)
        padded[top:top + rows, left:left + cols] = im
        if top:
            padded[:top, left:left + cols] = avg_chans
        if bottom:
            padded[rows + top:, left:left + cols] = avg_chans
        if left:
            padded[:, :left] = avg_chans
        if right:
            padded[:, cols + left:] = avg_chans
        patch = padded[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1)]
    else:
        patch = im[int(ymin):int(ymax + 1), int(xmin):int(xmax + 1)]
    if model_sz != original_sz:
        patch = cv2.resize(patch, (model_sz, model_sz))
    return patch


def pysot_anchors(score_size, stride, ratios, scales):
    """(A*S*S, 4) anchors (cx, cy, w, h) around the crop centre, in pysot's order and float32 rounding."""
    base = []
    for r in ratios:
        ws = int(math.sqrt(stride * stride * 1.0 / r))
        hs = int(ws * r)
        for s in scales:
            base.append([-ws * s * 0.5, -hs * s * 0.5, ws * s * 0.5, hs * s * 0.5])
    base = np.array(base, np.float32)
    anchor = np.stack([(base[:, 0] + base[:, 2]) * 0.5, (base[:, 1] + base[:, 3]) * 0.5,
                       base[:, 2] - base[:, 0], base[:, 3] - base[:, 1]], 1)
    anchor = np.tile(anchor, score_size * score_size).reshape((-1, 4))
    origin = -(score_size // 2) * stride
    xx, yy = np.meshgrid([origin + stride * d for d in range(score_size)],
                         [origin + stride * d for d in range(score_size)])
    anchor[:, 0] = np.tile(xx.flatten(), (len(base), 1)).flatten().astype(np.float32)
    anchor[:, 1] = np.tile(yy.flatten(), (len(base), 1)).flatten().astype(np.float32)
    return anchor


class PysotTracker(AuthorsNanoTracker):
    """pysot's SiamRPNTracker around any backend (``template(crop)``, ``search(crop, kernels)``).

    NanoTrack's authors kept pysot's tracking loop (crops, softmax, penalties, cosine window,
    smoothing, clipping) and changed only how boxes are decoded: this is that loop with pysot's
    anchors and its ``get_subwindow``. ``track`` returns the chosen anchor; the state is
    ``center_pos`` and ``size``, as in pysot.
    """

    def __init__(self, backend, config):
        super().__init__(backend, config, crop=pysot_subwindow)
        self.window = np.tile(self.window, config.anchor_num)
        self.anchors = pysot_anchors(config.score_size, config.stride, config.anchor_ratios, config.anchor_scales)

    def decode(self, loc):
        delta = loc.transpose(1, 2, 3, 0).reshape(4, -1).copy()
        delta[0] = delta[0] * self.anchors[:, 2] + self.anchors[:, 0]
        delta[1] = delta[1] * self.anchors[:, 3] + self.anchors[:, 1]
        delta[2] = np.exp(delta[2]) * self.anchors[:, 2]
        delta[3] = np.exp(delta[3]) * self.anchors[:, 3]
        return delta
