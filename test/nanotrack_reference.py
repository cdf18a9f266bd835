"""Test helpers for NanoTrack: the authors' released files in ../shared, real crops, and the authors'
ONNX graphs run with ONNX Runtime (their backbone graph is fixed to 255 px; a copy with a free input
size runs the 127 px template)."""
from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlkd_tracker.crop import crop_subwindow

NANOTRACK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nanotrack"
UAV_REAL = NANOTRACK.parent / "uav_real"


def official(version: int) -> Path:
    path = NANOTRACK / f"v{version}" / f"nanotrackv{version}.pth"
    if not path.is_file():
        pytest.skip(f"official NanoTrack weights not found at {path} (../shared/data)")
    return path


def real_clip(name: str, frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The first ``frames`` frames and boxes of a uav_real sequence."""
    video, boxes = UAV_REAL / "data_seq" / f"{name}.mp4", UAV_REAL / "anno" / f"{name}.txt"
    if not video.is_file():
        pytest.skip(f"real UAV footage not found at {video} (../shared/data)")
    capture = cv2.VideoCapture(str(video))
    out = []
    while len(out) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        out.append(frame)
    capture.release()
    return out, np.loadtxt(boxes, delimiter=",")[:len(out)]


def real_crops(name: str = "car16_1", frames: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(template (1,3,127,127), searches (frames-1,3,255,255)) float32 BGR crops around the true boxes."""
    clip, boxes = real_clip(name, frames)
    mean = clip[0].mean(axis=(0, 1))

    def crop(frame, box, out, scale):
        x, y, w, h = box
        s_z = np.sqrt((w + 0.5 * (w + h)) * (h + 0.5 * (w + h)))
        return crop_subwindow(frame, (x + (w - 1) / 2, y + (h - 1) / 2), out, round(s_z * scale), mean)

    template = crop(clip[0], boxes[0], 127, 1.0).transpose(2, 0, 1)[None].astype(np.float32)
    # the search crops are shifted off the target centre so the score peaks are not all in the middle
    searches = np.stack([crop(f, b + (7.0 * i, -5.0 * i, 0, 0), 255, 255 / 127).transpose(2, 0, 1)
                         for i, (f, b) in enumerate(zip(clip[1:], boxes[1:]), 1)]).astype(np.float32)
    return template, searches


@functools.lru_cache(maxsize=None)
def authors_sessions(version: int):
    """ONNX Runtime sessions of the authors' backbone (any input size) and head graphs."""
    import onnx
    import onnxruntime as ort

    folder = NANOTRACK / f"v{version}"
    backbone = onnx.load(str(next(folder.glob("*backbone*.onnx"))))
    for dim in (*backbone.graph.input[0].type.tensor_type.shape.dim[2:], *backbone.graph.output[0].type.tensor_type.shape.dim[2:]):
        dim.dim_param = "size"
    del backbone.graph.value_info[:]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return (ort.InferenceSession(backbone.SerializeToString(), options, providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(next(folder.glob("*head*.onnx"))), options, providers=["CPUExecutionProvider"]))


class AuthorsNanoTracker:
    """A literal numpy restatement of the authors' ``NanoTracker.init/track`` (SiamTrackers, NanoTrack), on a
    network given as ``template(crop) -> kernels`` / ``search(crop, kernels) -> (cls, loc)`` and a crop function,
    to check that the project's tracker makes the same decisions frame by frame."""

    def __init__(self, backend, cfg, crop=crop_subwindow):
        self.backend, self.cfg, self.crop = backend, cfg, crop
        size = cfg.score_size
        hanning = np.hanning(size)
        self.window = np.outer(hanning, hanning).flatten()
        origin = -(size // 2) * cfg.stride
        grid = origin + cfg.stride * np.arange(size)
        x, y = np.meshgrid(grid, grid)
        self.points = np.stack([x.flatten(), y.flatten()], axis=1).astype(np.float32)

    def init(self, image, bbox):
        self.center_pos = np.array([bbox[0] + (bbox[2] - 1) / 2, bbox[1] + (bbox[3] - 1) / 2])
        self.size = np.array([bbox[2], bbox[3]], dtype=np.float64)
        w_z = self.size[0] + self.cfg.context_amount * np.sum(self.size)
        h_z = self.size[1] + self.cfg.context_amount * np.sum(self.size)
        self.channel_average = np.mean(image, axis=(0, 1))
        self.kernels = self.backend.template(self.crop(image, self.center_pos, self.cfg.exemplar_size,
                                                       round(np.sqrt(w_z * h_z)), self.channel_average))

    def decode(self, loc):
        """(cx, cy, w, h) boxes in crop pixels around the centre, one per score-map point."""
        delta = loc.reshape(4, -1).copy()
        x1, y1 = self.points[:, 0] - delta[0], self.points[:, 1] - delta[1]
        x2, y2 = self.points[:, 0] + delta[2], self.points[:, 1] + delta[3]
        return np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])

    def track(self, image):
        cfg = self.cfg
        w_z = self.size[0] + cfg.context_amount * np.sum(self.size)
        h_z = self.size[1] + cfg.context_amount * np.sum(self.size)
        s_z = np.sqrt(w_z * h_z)
        scale_z = cfg.exemplar_size / s_z
        s_x = s_z * (cfg.instance_size / cfg.exemplar_size)
        cls, loc = self.backend.search(self.crop(image, self.center_pos, cfg.instance_size, round(s_x),
                                                 self.channel_average), self.kernels)
        logits = cls.reshape(2, -1).T
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        score = (e / e.sum(axis=1, keepdims=True))[:, 1]
        pred = self.decode(loc)

        def change(r):
            return np.maximum(r, 1.0 / r)

        def sz(w, h):
            pad = (w + h) * 0.5
            return np.sqrt((w + pad) * (h + pad))

        s_c = change(sz(pred[2], pred[3]) / sz(self.size[0] * scale_z, self.size[1] * scale_z))
        r_c = change((self.size[0] / self.size[1]) / (pred[2] / pred[3]))
        penalty = np.exp(-(r_c * s_c - 1) * cfg.penalty_k)
        pscore = penalty * score * (1 - cfg.window_influence) + self.window * cfg.window_influence
        best = np.argmax(pscore)
        bbox = pred[:, best] / scale_z
        lr = penalty[best] * score[best] * cfg.lr
        cx, cy = bbox[0] + self.center_pos[0], bbox[1] + self.center_pos[1]
        width = self.size[0] * (1 - lr) + bbox[2] * lr
        height = self.size[1] * (1 - lr) + bbox[3] * lr
        cx, cy = max(0, min(cx, image.shape[1])), max(0, min(cy, image.shape[0]))
        width, height = max(10, min(width, image.shape[1])), max(10, min(height, image.shape[0]))
        self.center_pos, self.size = np.array([cx, cy]), np.array([width, height])
        return best
