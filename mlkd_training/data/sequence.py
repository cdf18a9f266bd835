"""The one in-memory shape every dataset reader produces and every consumer (evaluation,
training pairs, ``mlkd test``) reads: a sequence of frames plus ``x,y,w,h`` ground truth.

A sequence's frames live in a *frame store*: image files (:class:`FrameFiles`) or one video
(:class:`VideoFrames`), read when used. Image files are cheap to read in any order. A video is
decoded: reading it in order costs one decode per frame; any other order decodes forward from
the current position or, when a keyframe lies closer, seeks to it first, so one random read
costs at most a group of pictures (the frames from one keyframe to the next).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence as SequenceABC

import cv2
import numpy as np

from mlkd_tracker.errors import SourceError
from mlkd_tracker.sources import read_image

# containers whose frame count OpenCV reads from an index (sample tables, AVI index); in the
# others (Matroska, WebM, MPEG streams) it is estimated from the duration, so packets are counted
INDEXED_CONTAINERS = {".mp4", ".m4v", ".mov", ".avi"}
# OpenCV's seek to frame i restarts decoding at the keyframe before frame i - 16
_SEEK_LOOKBACK = 16


class FrameStore:
    """Where a sequence's frames come from; ``read`` returns HxWx3 uint8 BGR."""

    cheap_random_access = True  # False: reading out of order costs decoding (a video)
    fps: float | None = None  # frame rate, where the store records one

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def head(self, count: int) -> "FrameStore":
        """The first ``count`` frames."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what reading holds open (a decoder); the next read opens it again."""


class FrameFiles(FrameStore):
    """One image file per frame."""

    def __init__(self, paths: SequenceABC[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        return read_image(self.paths[index], "frame")

    def head(self, count: int) -> "FrameFiles":
        return FrameFiles(self.paths[:count])


def scan_packets(path: Path) -> tuple[int, list[int]]:
    """``(frames, keyframe indices)`` of a video from its packets, read without decoding."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise SourceError(f"cannot open video {path} (unreadable, corrupt, or a codec OpenCV lacks)")
    capture.set(cv2.CAP_PROP_FORMAT, -1)  # raw packets
    count, keyframes = 0, []
    while capture.grab():
        if capture.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
            keyframes.append(count)
        count += 1
    capture.release()
    return count, keyframes


class VideoFrames(FrameStore):
    """The first ``length`` frames of a video file, decoded when read.

    ``boxes`` names the box file the frames go with, for the error raised when the video ends
    before frame ``length``. One decoder stays open between reads (:meth:`close` releases it);
    its threads follow ``cv2.setNumThreads``. Pickling drops the decoder (worker processes open
    their own).
    """

    cheap_random_access = False

    def __init__(self, path: str | Path, length: int, fps: float | None = None, boxes: str | None = None):
        self.path, self.length, self.fps, self.boxes = Path(path), int(length), fps, boxes
        self._capture: cv2.VideoCapture | None = None
        self._next = 0  # index of the frame the open decoder returns next
        self._keyframes: list[int] | None = None  # scanned at the first read out of order

    @classmethod
    def probe(cls, path: str | Path, boxes: str | None = None) -> "VideoFrames":
        """All frames of ``path``, counted from the container's index where it has one, else from its packets."""
        path = Path(path)
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise SourceError(f"cannot open video {path} (unreadable, corrupt, or a codec OpenCV lacks)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if path.suffix.lower() in INDEXED_CONTAINERS else 0
        capture.release()
        if count <= 0:
            count = scan_packets(path)[0]
        if count <= 0:
            raise SourceError(f"video {path} has no frames")
        return cls(path, count, fps if fps > 0 else None, boxes)

    def __len__(self) -> int:
        return self.length

    def head(self, count: int) -> "VideoFrames":
        return VideoFrames(self.path, min(count, self.length), self.fps, self.boxes)

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(f"frame {index} of {self.length} in {self.path}")
        if self._capture is None or index != self._next:
            self._position(index)
        capture = self._capture
        while self._next < index:  # decode forward: cheaper than a seek that starts further back
            if not capture.grab():
                raise self._ended(self._next)
            self._next += 1
        ok, frame = capture.read()
        if not ok:
            raise self._ended(index)
        self._next = index + 1
        return frame

    def _position(self, index: int) -> None:
        """Leave the decoder where reading ``index`` costs least: where it is, or a seek to near it."""
        if self._capture is not None:
            if self._keyframes is None:
                self._keyframes = scan_packets(self.path)[1] or [0]
            seek_from = self._keyframes[max(bisect.bisect_right(self._keyframes, index - _SEEK_LOOKBACK) - 1, 0)]
            if self._next <= index and seek_from <= self._next:
                return  # decoding forward from here costs no more than a seek
        if self._capture is None or index == 0:
            self.close()
            self._capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG,
                                             [cv2.CAP_PROP_N_THREADS, max(1, cv2.getNumThreads())])
            if not self._capture.isOpened():
                self._capture = None
                raise SourceError(f"cannot open video {self.path} (unreadable, corrupt, or a codec OpenCV lacks)")
        if index != self._next:
            if not self._capture.set(cv2.CAP_PROP_POS_FRAMES, index):
                raise SourceError(f"cannot seek to frame {index + 1} of video {self.path}")
            self._next = index

    def _ended(self, index: int) -> SourceError:
        self.close()  # the decoder's position is unknown now
        if index == 0:
            return SourceError(f"cannot decode any frame of video {self.path} (corrupt, or a codec OpenCV lacks)")
        expected = f"its box file {self.boxes} has {self.length} boxes" if self.boxes else \
            f"{self.length} frames were expected"
        return SourceError(f"video {self.path} has no frame {index + 1} (it ends early or is damaged), but {expected}")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture, self._next = None, 0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_capture": None, "_next": 0}


@dataclass
class Sequence:
    """One video: a frame store read on demand and an ``(N, 4)`` ground-truth array.

    ``gt`` rows are ``x, y, w, h`` in pixels (top-left origin, 0-based); a row of NaN means no
    ground truth for that frame. ``absent`` marks frames where the target is out of view or
    fully occluded (GOT-10k ``absence.label``, synthetic sequences). ``attrs`` holds attribute
    flags: a bool per sequence (UAVDark135 style) or an ``(N,)`` bool array per frame.
    """

    name: str
    store: FrameStore
    gt: np.ndarray
    attrs: dict[str, bool | np.ndarray] = field(default_factory=dict)
    absent: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        if len(self.gt) != len(self.store):
            raise SourceError(f"sequence {self.name}: {len(self.store)} frames but "
                              f"{len(self.gt)} ground-truth rows")
        if self.absent is not None:
            self.absent = np.asarray(self.absent, dtype=bool).reshape(-1)
            if len(self.absent) != len(self.store):
                raise SourceError(f"sequence {self.name}: absence flags for {len(self.absent)} of "
                                  f"{len(self.store)} frames")

    def __len__(self) -> int:
        return len(self.store)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 BGR, read now (in order, a video decodes each frame once)."""
        return self.store.read(index)

    def frames(self) -> Iterator[np.ndarray]:
        """Every frame in order; the store's decoder is released at the end."""
        try:
            for i in range(len(self)):
                yield self.store.read(i)
        finally:
            self.store.close()

    @property
    def valid(self) -> np.ndarray:
        """``(N,)`` bool: frames with usable ground truth (finite, positive size, target present)."""
        ok = np.isfinite(self.gt).all(axis=1) & (self.gt[:, 2] > 0) & (self.gt[:, 3] > 0)
        return ok if self.absent is None else ok & ~self.absent

    @property
    def init_box(self) -> tuple[float, float, float, float]:
        """The box a one-pass evaluation starts from: the first frame's ground truth."""
        if not self.valid[:1].all():
            raise SourceError(f"sequence {self.name}: the first frame has no valid ground-truth box")
        return tuple(float(v) for v in self.gt[0])  # type: ignore[return-value]


@dataclass
class Dataset:
    """A named list of sequences (a benchmark, a synthetic set, a training source)."""

    name: str
    sequences: list[Sequence]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self.sequences)

    def __getitem__(self, key: int | str) -> Sequence:
        if isinstance(key, int):
            return self.sequences[key]
        for seq in self.sequences:
            if seq.name == key:
                return seq
        raise KeyError(f"dataset {self.name} has no sequence {key!r}")

    @property
    def attribute_names(self) -> list[str]:
        return sorted({a for s in self.sequences for a in s.attrs})
