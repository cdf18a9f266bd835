"""Classical OpenCV trackers (opencv-contrib) behind the same ``init`` / ``update`` shape as ``SiameseTracker``.

OpenCV 5 keeps CSRT and KCF in the main ``cv2`` namespace and MOSSE (with MIL, MedianFlow, TLD,
Boosting) in ``cv2.legacy``; both families are used as they are, so no OpenCV 4 pin is needed.

Two OpenCV behaviours matter for a fair comparison:

- KCF's first ``update`` after ``init`` only trains, on whatever frame it is given, and returns
  the init box; fed the next frame (the OPE protocol) it learns the target displaced and then
  lags one frame behind for the whole sequence. The wrapper therefore runs that training update
  on the init frame itself. OpenCV's KCF also stops for good once its response peak falls under
  ``detect_thresh`` (0.5), which small UAV targets do from the first frame; the wrapper sets it
  to 0 so KCF follows its response peak every frame, as the published KCF does.
- MOSSE rejects every update whose peak-to-sidelobe ratio is under 5.7 and then stays where it
  was (often for targets under ~48 px); the wrapper keeps its last box and reports ``lost``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from mlkd_tracker.errors import InputError
from mlkd_tracker.frames import as_bgr_frame, validate_box
from mlkd_tracker.tracker import Status, TrackResult


def _factories() -> dict[str, tuple[Callable[[], Any], bool]]:
    """name -> (constructor, takes integer boxes); only trackers this OpenCV build has."""
    import cv2

    out: dict[str, tuple[Callable[[], Any], bool]] = {}
    for name, attr in (("csrt", "TrackerCSRT"), ("kcf", "TrackerKCF"), ("mil", "TrackerMIL")):
        if hasattr(cv2, attr):
            out[name] = (getattr(cv2, attr).create, True)
    if "kcf" in out:
        out["kcf"] = (_kcf_always_follows, True)
    legacy = getattr(cv2, "legacy", None)
    for name, attr in (("mosse", "TrackerMOSSE"), ("medianflow", "TrackerMedianFlow")):
        if legacy is not None and hasattr(legacy, attr):
            out[name] = (getattr(legacy, attr).create, False)
    return out


def _kcf_always_follows():
    """OpenCV KCF with ``detect_thresh = 0`` (see the module docstring)."""
    import cv2

    params = cv2.TrackerKCF_Params()
    params.detect_thresh = 0.0
    return cv2.TrackerKCF.create(params)


PEER_NAMES = ("csrt", "kcf", "mosse", "mil", "medianflow")


def available_peers() -> list[str]:
    """Peer tracker names the installed OpenCV provides."""
    return sorted(_factories())


class OpenCVTracker:
    """An OpenCV tracker that returns a box every frame: its own, or the last one when it reports failure."""

    def __init__(self, name: str):
        factories = _factories()
        key = name.lower()
        if key not in factories:
            raise InputError(f"OpenCV tracker {name!r} is not available here; choose one of "
                             f"{', '.join(sorted(factories))} (needs opencv-contrib-python)")
        self.name = key
        self._create, self._integer_boxes = factories[key]
        self._tracker: Any = None
        self._box = (0.0, 0.0, 0.0, 0.0)
        self._frame_shape: tuple[int, int] | None = None

    @property
    def initialized(self) -> bool:
        return self._tracker is not None

    def init(self, frame: np.ndarray, box_xywh) -> None:
        """Start tracking ``box_xywh`` (x, y, w, h in pixels) in ``frame``."""
        frame = as_bgr_frame(frame)
        x, y, w, h = validate_box(box_xywh, frame.shape)
        height, width = frame.shape[:2]
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(width), x + w), min(float(height), y + h)
        self._box = (x1, y1, x2 - x1, y2 - y1)
        self._tracker = self._create()
        self._tracker.init(frame, self._native_box(self._box))
        if self.name == "kcf":
            self._tracker.update(frame)  # KCF learns the target on its first update (module docstring)
        self._frame_shape = frame.shape[:2]

    def _native_box(self, box: tuple[float, float, float, float]):
        if not self._integer_boxes:
            return tuple(float(v) for v in box)
        x, y = int(math.floor(box[0])), int(math.floor(box[1]))
        return (x, y, max(1, int(math.ceil(box[0] + box[2])) - x), max(1, int(math.ceil(box[1] + box[3])) - y))

    def update(self, frame: np.ndarray) -> TrackResult:
        """Track into ``frame``; on failure the previous box is kept and the status is ``lost``."""
        if self._tracker is None:
            raise InputError("tracker is not initialised: call init(frame, box) first")
        frame = as_bgr_frame(frame)
        if frame.shape[:2] != self._frame_shape:
            raise InputError(f"frame size changed from {self._frame_shape[1]}x{self._frame_shape[0]} to "
                             f"{frame.shape[1]}x{frame.shape[0]}; re-initialise the tracker")
        ok, box = self._tracker.update(frame)
        if ok and box[2] > 0 and box[3] > 0:
            height, width = self._frame_shape
            x1, y1 = min(max(float(box[0]), 0.0), width - 1.0), min(max(float(box[1]), 0.0), height - 1.0)
            x2 = min(max(float(box[0] + box[2]), x1 + 1.0), float(width))
            y2 = min(max(float(box[1] + box[3]), y1 + 1.0), float(height))
            self._box = (x1, y1, x2 - x1, y2 - y1)
        return TrackResult(self._box, 1.0 if ok else 0.0, Status.TRACKING if ok else Status.LOST)
