"""The Siamese tracking loop (pysot ``SiamRPNTracker``, NanoTrack's ``NanoTracker``): numpy + OpenCV, no torch.

``init(frame, box)`` crops the template and asks the backend for its correlation kernels once;
``update(frame)`` crops the search region, runs the backend's search branch, decodes the maps
into candidate boxes (anchors for SiamRPN, points for NanoTrack: ``decoders.py``) and picks the
new box with pysot's penalties, window and smoothing, which both trackers share.
"""
from __future__ import annotations

import enum
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mlkd_tracker.anchors import size_penalty
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.crop import crop_subwindow
from mlkd_tracker.decoders import make_decoder
from mlkd_tracker.errors import InputError
from mlkd_tracker.frames import as_bgr_frame, validate_box


class Backend(Protocol):
    """Inference seam: every backend (torch, ONNX Runtime, TensorRT) implements these two calls.

    Crops are HxWx3 uint8 BGR arrays (raw pixels; the backend converts to its own layout).
    """

    name: str

    def template(self, crop: np.ndarray) -> Any:
        """Correlation kernels of the cls and loc branches for a template crop (opaque to the tracker)."""

    def search(self, crop: np.ndarray, kernels: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(cls, loc)`` maps, shapes (1, 2A, S, S) and (1, 4A, S, S) (A = 1 for points), for a search crop."""


class Status(str, enum.Enum):
    IDLE = "idle"          # not initialised
    TRACKING = "tracking"
    LOST = "lost"          # best score under the threshold for N frames; tracking goes on


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per stage of one ``update``."""

    crop_ms: float = 0.0
    network_ms: float = 0.0
    post_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.crop_ms + self.network_ms + self.post_ms


@dataclass(frozen=True)
class TrackResult:
    box_xywh: tuple[float, float, float, float]  # inside the frame, pixels, top-left origin
    score: float                                  # foreground probability of the chosen candidate
    status: Status
    times: StageTimes = StageTimes()


def _finite(a: np.ndarray) -> np.ndarray:
    return a if np.isfinite(a).all() else np.nan_to_num(a, nan=0.0, posinf=1e4, neginf=-1e4)


class SiameseTracker:
    """Single-object tracker for either head kind; deterministic for a deterministic backend."""

    def __init__(self, backend: Backend, config: TrackerConfig | None = None):
        self.backend = backend
        self.config = config or TrackerConfig()
        c = self.config
        self._decoder = make_decoder(c)
        self._kernels: Any = None
        self._initialized = False
        self._frame_shape: tuple[int, int] | None = None
        self._center = (0.0, 0.0)
        self._size = (0.0, 0.0)
        self._pad_color = (0.0, 0.0, 0.0)
        self._weak_frames = 0

    @property
    def initialized(self) -> bool:
        return self._initialized

    def reset(self) -> None:
        """Forget the target; ``update`` needs a new ``init``."""
        self._kernels = None
        self._initialized = False
        self._frame_shape = None
        self._weak_frames = 0

    def _context_size(self) -> float:
        w, h = self._size
        ctx = self.config.context_amount * (w + h)
        return math.sqrt((w + ctx) * (h + ctx))

    def init(self, frame: np.ndarray, box_xywh) -> None:
        """Start tracking the object in ``box_xywh`` (x, y, w, h in pixels) of ``frame``."""
        frame = as_bgr_frame(frame)
        x, y, w, h = validate_box(box_xywh, frame.shape)
        self._center = (x + (w - 1) / 2.0, y + (h - 1) / 2.0)
        self._size = (w, h)
        self._pad_color = tuple(float(v) for v in frame.mean(axis=(0, 1)))
        crop = crop_subwindow(frame, self._center, self.config.exemplar_size,
                              round(self._context_size()), self._pad_color, self.config.crop)
        self._kernels = self.backend.template(crop)
        self._frame_shape = frame.shape[:2]
        self._weak_frames = 0
        self._initialized = True

    def update(self, frame: np.ndarray) -> TrackResult:
        """Track into ``frame``; returns the box (clipped to the frame), its score and status."""
        if not self._initialized:
            raise InputError("tracker is not initialised: call init(frame, box) first")
        frame = as_bgr_frame(frame)
        if frame.shape[:2] != self._frame_shape:
            raise InputError(f"frame size changed from {self._frame_shape[1]}x{self._frame_shape[0]} to "
                             f"{frame.shape[1]}x{frame.shape[0]}; re-initialise the tracker")
        c = self.config
        t0 = time.perf_counter()
        s_z = self._context_size()
        scale_z = c.exemplar_size / s_z
        s_x = s_z * c.instance_size / c.exemplar_size
        crop = crop_subwindow(frame, self._center, c.instance_size, round(s_x), self._pad_color, c.crop)
        t1 = time.perf_counter()
        cls, loc = self.backend.search(crop, self._kernels)
        t2 = time.perf_counter()

        score, boxes = self._decoder.decode(_finite(cls), _finite(loc))
        w, h = self._size
        penalty = size_penalty(boxes, w * scale_z, h * scale_z, c.penalty_k)
        pscore = penalty * score * (1.0 - c.window_influence) + self._decoder.window * c.window_influence
        best = int(np.argmax(pscore))
        lr = float(penalty[best] * score[best]) * c.lr
        cx = self._center[0] + float(boxes[0, best]) / scale_z
        cy = self._center[1] + float(boxes[1, best]) / scale_z
        new_w = w * (1.0 - lr) + float(boxes[2, best]) / scale_z * lr
        new_h = h * (1.0 - lr) + float(boxes[3, best]) / scale_z * lr
        frame_h, frame_w = self._frame_shape
        cx = min(max(cx, 0.0), frame_w)
        cy = min(max(cy, 0.0), frame_h)
        new_w = max(c.min_size, min(new_w, frame_w))
        new_h = max(c.min_size, min(new_h, frame_h))
        self._center, self._size = (cx, cy), (new_w, new_h)

        best_score = float(score[best])
        self._weak_frames = self._weak_frames + 1 if best_score < c.lost_threshold else 0
        status = Status.LOST if self._weak_frames >= c.lost_frames else Status.TRACKING
        x1 = max(cx - new_w / 2.0, 0.0)
        y1 = max(cy - new_h / 2.0, 0.0)
        x2 = min(cx + new_w / 2.0, float(frame_w))
        y2 = min(cy + new_h / 2.0, float(frame_h))
        t3 = time.perf_counter()
        times = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return TrackResult((x1, y1, x2 - x1, y2 - y1), best_score, status, times)
