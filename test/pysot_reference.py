"""A literal re-implementation of pysot's SiamRPN tracking (``get_subwindow``, ``SiamRPNTracker``), for tests.

Written step by step from reading pysot (``pysot/tracker/base_tracker.py``,
``pysot/tracker/siamrpn_tracker.py``, ``pysot/utils/anchor.py``), not from the modules under
test: the frame padded with the mean where the window leaves it, the window cut and
``cv2.resize``d; anchors from pysot's ``Anchors``; softmax scores, decoded boxes, penalties,
cosine window, smoothing and clipping as pysot computes them.
"""
import math

import cv2
import numpy as np


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


class PysotTracker:
    """pysot's SiamRPNTracker around any backend (``template(crop)``, ``search(crop, kernels)``)."""

    def __init__(self, backend, config):
        self.backend, self.c = backend, config
        self.score_size = (config.instance_size - config.exemplar_size) // config.stride + 1
        hanning = np.hanning(self.score_size)
        self.window = np.tile(np.outer(hanning, hanning).flatten(), config.anchor_num)
        self.anchors = pysot_anchors(self.score_size, config.stride, config.anchor_ratios, config.anchor_scales)

    def init(self, img, bbox):
        self.center_pos = np.array([bbox[0] + (bbox[2] - 1) / 2, bbox[1] + (bbox[3] - 1) / 2])
        self.size = np.array([bbox[2], bbox[3]])
        w_z = self.size[0] + self.c.context_amount * np.sum(self.size)
        h_z = self.size[1] + self.c.context_amount * np.sum(self.size)
        self.channel_average = np.mean(img, axis=(0, 1))
        crop = pysot_subwindow(img, self.center_pos, self.c.exemplar_size, round(np.sqrt(w_z * h_z)),
                               self.channel_average)
        self.kernels = self.backend.template(crop)

    def track(self, img):
        c = self.c
        w_z = self.size[0] + c.context_amount * np.sum(self.size)
        h_z = self.size[1] + c.context_amount * np.sum(self.size)
        s_z = np.sqrt(w_z * h_z)
        scale_z = c.exemplar_size / s_z
        s_x = s_z * (c.instance_size / c.exemplar_size)
        crop = pysot_subwindow(img, self.center_pos, c.instance_size, round(s_x), self.channel_average)
        cls, loc = self.backend.search(crop, self.kernels)
        logits = cls.transpose(1, 2, 3, 0).reshape(2, -1).T.astype(np.float64)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        score = (exp / exp.sum(axis=1, keepdims=True))[:, 1]
        delta = loc.transpose(1, 2, 3, 0).reshape(4, -1).copy()
        delta[0] = delta[0] * self.anchors[:, 2] + self.anchors[:, 0]
        delta[1] = delta[1] * self.anchors[:, 3] + self.anchors[:, 1]
        delta[2] = np.exp(delta[2]) * self.anchors[:, 2]
        delta[3] = np.exp(delta[3]) * self.anchors[:, 3]

        def change(r):
            return np.maximum(r, 1.0 / r)

        def sz(w, h):
            pad = (w + h) * 0.5
            return np.sqrt((w + pad) * (h + pad))

        s_c = change(sz(delta[2], delta[3]) / sz(self.size[0] * scale_z, self.size[1] * scale_z))
        r_c = change((self.size[0] / self.size[1]) / (delta[2] / delta[3]))
        penalty = np.exp(-(r_c * s_c - 1) * c.penalty_k)
        pscore = penalty * score * (1 - c.window_influence) + self.window * c.window_influence
        best = np.argmax(pscore)
        bbox = delta[:, best] / scale_z
        lr = penalty[best] * score[best] * c.lr
        cx, cy = bbox[0] + self.center_pos[0], bbox[1] + self.center_pos[1]
        width = self.size[0] * (1 - lr) + bbox[2] * lr
        height = self.size[1] * (1 - lr) + bbox[3] * lr
        cx, cy = max(0, min(cx, img.shape[1])), max(0, min(cy, img.shape[0]))
        width, height = max(10, min(width, img.shape[1])), max(10, min(height, img.shape[0]))
        self.center_pos, self.size = np.array([cx, cy]), np.array([width, height])
        return [cx - width / 2, cy - height / 2, width, height]
