"""Frame sources for ``mlkd track``: a video file, a folder of images, or a camera index."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mlkd_tracker.errors import SourceError
from mlkd_tracker.frames import as_bgr_frame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def natural_key(name: str) -> list:
    """Sort key treating digit runs as numbers: img2 < img10."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


class FrameSource:
    """Iterable of HxWx3 uint8 BGR frames, read lazily; ``length`` and ``fps`` are None when unknown."""

    name: str = ""
    length: int | None = None
    fps: float | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying device or file."""


class ImageFolderSource(FrameSource):
    def __init__(self, folder: Path):
        self.name = str(folder)
        self.paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: natural_key(p.name))
        if not self.paths:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {folder}")
        self.length = len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise SourceError(f"cannot read image {path} (corrupt or not an image)")
            yield frame


class VideoSource(FrameSource):
    """A video file or a camera (``cv2.VideoCapture``)."""

    def __init__(self, target: str | int):
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            raise SourceError(f"cannot open {self.name}" + ("" if isinstance(target, int) else
                                                             " (not a video, or a codec OpenCV lacks)"))
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = count if count > 0 and not isinstance(target, int) else None
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None

    def __iter__(self) -> Iterator[np.ndarray]:
        index = 0
        while True:
            ok, frame = self.capture.read()
            if not ok:
                if index == 0:
                    raise SourceError(f"{self.name} gave no frames (unreadable or empty)")
                return
            index += 1
            yield frame

    def close(self) -> None:
        self.capture.release()


def split_first(source: FrameSource) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """The first frame of ``source`` (HxWx3 BGR) and an iterator over the rest; empty sources are an error."""
    frames = iter(source)
    try:
        return as_bgr_frame(next(frames)), frames
    except StopIteration:
        raise SourceError(f"{source.name} has no frames") from None


def open_source(spec: str | os.PathLike) -> FrameSource:
    """Open a video file, an image folder (natural sort) or a camera index such as ``0``."""
    text = str(spec)
    if text.isdigit() and not Path(text).exists():
        return VideoSource(int(text))
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path)
    if not path.exists():
        raise SourceError(f"input not found: {path} (expected a video file, an image folder or a camera index)")
    return VideoSource(str(path))
