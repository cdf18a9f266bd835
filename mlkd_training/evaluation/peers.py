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

``cv2.TrackerNano`` runs NanoTrack v2 from its authors' two ONNX networks (backbone, neck+head)
through OpenCV's DNN module on the CPU; its spec names them: ``nano:BACKBONE.onnx,HEAD.onnx``,
or ``nano:FOLDER`` holding one ``*backbone*.onnx`` and one ``*head*.onnx``. The networks are
loaded once per tracker object (``init`` resets the tracking state). Like every OpenCV peer it
runs on OpenCV's thread pool: ``cv2.setNumThreads`` sets its size (``mlkd test --threads``).
OpenCV takes integer boxes: CSRT, KCF and MIL get the smallest integer box holding the float one;
TrackerNano gets the corners rounded to the nearest pixel, because it sizes its crops from the
box (on a 5.5 px wide target, rounding outward would make it 27 % wider).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.frames import as_bgr_frame, validate_box
from mlkd_tracker.tracker import Status, TrackResult

PEER_NAMES = ("csrt", "kcf", "mosse", "mil", "medianflow", "nano")
NANO_SPEC = "nano:BACKBONE.onnx,HEAD.onnx (or nano:FOLDER)"
NANO_RESULT_NAME = "opencv-nano"  # beside this project's own NanoTrack models, which are named by their file

# how each peer's box reaches OpenCV: as floats, as the smallest integer box holding it, or with
# its corners rounded to the nearest pixel
FLOAT, OUTWARD, NEAREST = "float", "outward", "nearest"


def _factories() -> dict[str, tuple[Callable[[], Any], str]]:
    """name -> (constructor, box rounding); only trackers this OpenCV build has (``nano`` is built from its spec)."""
    import cv2

    out: dict[str, tuple[Callable[[], Any], str]] = {}
    for name, attr in (("csrt", "TrackerCSRT"), ("kcf", "TrackerKCF"), ("mil", "TrackerMIL")):
        if hasattr(cv2, attr):
            out[name] = (getattr(cv2, attr).create, OUTWARD)
    if "kcf" in out:
        out["kcf"] = (_kcf_always_follows, OUTWARD)
    legacy = getattr(cv2, "legacy", None)
    for name, attr in (("mosse", "TrackerMOSSE"), ("medianflow", "TrackerMedianFlow")):
        if legacy is not None and hasattr(legacy, attr):
            out[name] = (getattr(legacy, attr).create, FLOAT)
    return out


def _kcf_always_follows():
    """OpenCV KCF with ``detect_thresh = 0`` (see the module docstring)."""
    import cv2

    params = cv2.TrackerKCF_Params()
    params.detect_thresh = 0.0
    return cv2.TrackerKCF.create(params)


def split_peer_spec(spec: str) -> tuple[str, str]:
    """``("nano", "b.onnx,h.onnx")`` for ``nano:b.onnx,h.onnx``; ``("csrt", "")`` for ``csrt``."""
    name, _, argument = spec.partition(":")
    return name.lower(), argument


def is_peer_spec(spec: str) -> bool:
    """Whether ``spec`` names an OpenCV peer rather than a model file (a file of that name wins)."""
    return split_peer_spec(spec)[0] in PEER_NAMES and not Path(spec).exists()


def peer_result_name(spec: str) -> str:
    """The result folder of a peer: its name (``csrt``), or ``opencv-nano`` for TrackerNano."""
    name = split_peer_spec(spec)[0]
    return NANO_RESULT_NAME if name == "nano" else name


def nano_networks(argument: str) -> tuple[Path, Path]:
    """The backbone and neck+head ONNX files of a ``nano:`` spec."""
    if not argument:
        raise InputError(f"OpenCV's NanoTrack needs its authors' two ONNX networks: {NANO_SPEC}")
    parts = [Path(p.strip()) for p in argument.split(",")]
    if len(parts) == 1 and parts[0].is_dir():
        found = [sorted(parts[0].glob(f"*{role}*.onnx")) for role in ("backbone", "head")]
        if any(len(f) != 1 for f in found):
            raise InputError(f"{parts[0]} must hold one *backbone*.onnx and one *head*.onnx, found "
                             f"{[p.name for f in found for p in f] or 'none'}; name both files: {NANO_SPEC}")
        parts = [found[0][0], found[1][0]]
    if len(parts) != 2:
        raise InputError(f"expected {NANO_SPEC}, got nano:{argument}")
    for path in parts:
        if not path.is_file():
            raise ModelFileError(f"ONNX network not found: {path} (expected {NANO_SPEC})")
    return parts[0], parts[1]


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV's log at errors only: OpenCV 5's DNN warns that it ignores the CPU target TrackerNano sets."""
    import cv2

    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _nano_factory(argument: str) -> Callable[[], Any]:
    """A constructor returning one ``cv2.TrackerNano`` (networks loaded now, once)."""
    import cv2

    if not hasattr(cv2, "TrackerNano"):
        raise InputError(f"cv2.TrackerNano needs OpenCV >= 4.7; this is {cv2.__version__}")
    backbone, head = nano_networks(argument)
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = str(backbone), str(head)
    params.backend, params.target = cv2.dnn.DNN_BACKEND_OPENCV, cv2.dnn.DNN_TARGET_CPU
    try:
        with _quiet_opencv():
            tracker = cv2.TrackerNano.create(params)
    except cv2.error as exc:
        reason = next((line for line in str(exc).splitlines() if "error:" in line), str(exc)).strip()
        raise ModelFileError(f"cv2.TrackerNano cannot load {backbone} + {head}: {reason}") from None
    return lambda: tracker


def available_peers() -> list[str]:
    """Peer tracker names the installed OpenCV provides (``nano`` needs its ONNX networks in the spec)."""
    import cv2

    return sorted([*_factories(), *(["nano"] if hasattr(cv2, "TrackerNano") else [])])


class OpenCVTracker:
    """An OpenCV tracker that returns a box every frame: its own, or the last one when it reports failure.

    ``spec`` is a peer name (``csrt``) or, for TrackerNano, ``nano:BACKBONE.onnx,HEAD.onnx``.
    """

    def __init__(self, spec: str):
        key, argument = split_peer_spec(spec)
        factories = _factories()
        if key == "nano":
            self._create, self._rounding = _nano_factory(argument), NEAREST
        elif key in factories and not argument:
            self._create, self._rounding = factories[key]
        else:
            raise InputError(f"OpenCV tracker {spec!r} is not available here; choose one of "
                             f"{', '.join(sorted(factories))} (needs opencv-contrib-python) or {NANO_SPEC}")
        self.name = key
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
        if self._rounding == FLOAT:
            return tuple(float(v) for v in box)
        x1, y1, x2, y2 = box[0], box[1], box[0] + box[2], box[1] + box[3]
        if self._rounding == OUTWARD:
            x1, y1, x2, y2 = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
        else:
            x1, y1, x2, y2 = round(x1), round(y1), round(x2), round(y2)
        return int(x1), int(y1), max(1, int(x2 - x1)), max(1, int(y2 - y1))

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
        # TrackerNano reports its classification score; the others only success
        score = float(self._tracker.getTrackingScore()) if self.name == "nano" else float(ok)
        return TrackResult(self._box, score, Status.TRACKING if ok else Status.LOST)
