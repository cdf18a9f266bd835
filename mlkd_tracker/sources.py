"""Frame sources for ``mlkd track``: a video file, a folder of images, a camera index, or a rosbag2."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from mlkd_tracker.errors import InputError, SourceError
from mlkd_tracker.frames import as_bgr_frame

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
BAG_SUFFIXES = {".mcap", ".db3"}
IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INIT_MSGTYPES = ("geometry_msgs/msg/PolygonStamped", "sensor_msgs/msg/RegionOfInterest")
DETECTIONS_MSGTYPE = "vision_msgs/msg/Detection2DArray"  # what the tracker node publishes


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """An image file as HxWx3 uint8 BGR; :class:`SourceError` naming it (as ``what``) when it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"cannot read {what} {path} (missing, corrupt or not an image)")
    return image


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
            yield read_image(path)


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


class BagSource(FrameSource):
    """Images of one topic of a rosbag2 (mcap or sqlite3), read with ``rosbags``: no ROS install needed.

    ``stamps`` collects the header stamp (ns) of every frame yielded. :meth:`start_at_recorded_init`
    replays a target selection recorded in the bag the way the node applies it. The node's own output
    (``Detection2DArray``) is read back too: as the starting target, and as the boxes it published
    (:meth:`recorded_boxes`). Message types come from the definitions the bag stores.
    """

    def __init__(self, path: str | os.PathLike, topic: str | None = None):
        try:
            from rosbags.highlevel import AnyReader
        except ImportError:
            raise SourceError("reading rosbag2 files needs the rosbags package: pip install 'mlkd_tracker[ros]'") from None
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"bag not found: {self.path} (expected a .mcap / .db3 file or a rosbag2 folder)")
        self.reader = AnyReader([self.path])
        try:
            self.reader.open()
        except Exception as exc:  # noqa: BLE001 - rosbags raises its own error types for every kind of bad bag
            raise SourceError(f"cannot read bag {self.path}: {exc}") from exc
        images = [c for c in self.reader.connections if c.msgtype in IMAGE_MSGTYPES]
        image_topics = sorted({c.topic for c in images})
        if topic is None:
            if len(image_topics) != 1:
                found = f"image topics {image_topics}" if image_topics else "no sensor_msgs/Image or CompressedImage topic"
                self.close()
                raise SourceError(f"bag {self.path} has {found}; choose one with --topic")
            topic = image_topics[0]
        self.connections = [c for c in images if c.topic == topic]
        if not self.connections:
            all_topics = {c.topic: c.msgtype for c in self.reader.connections}
            self.close()
            what = f"has type {all_topics[topic]}" if topic in all_topics else "is not in the bag"
            raise SourceError(f"topic {topic} {what}; image topics in {self.path}: {image_topics}")
        self.topic = topic
        self.name = f"{self.path}:{topic}"
        self.length = sum(c.msgcount for c in self.connections)
        duration_s = (self.reader.end_time - self.reader.start_time) / 1e9
        self.fps = (self.length - 1) / duration_s if self.length > 1 and duration_s > 0 else None
        self.stamps: list[int] = []
        self._start: tuple[str, int] | None = None

    def _topic_of(self, msgtypes: tuple[str, ...], topic: str | None, what: str, option: str) -> list[Any]:
        """The connections of the one topic of ``msgtypes`` (or of ``topic``); a clear error otherwise."""
        conns = [c for c in self.reader.connections if c.msgtype in msgtypes and (topic is None or c.topic == topic)]
        topics = sorted({c.topic for c in conns})
        if len(topics) != 1:
            hint = f"{what} topics {topics}: choose one with {option}" if topics else \
                f"no {what} topic" + (f" named {topic}" if topic else "")
            raise InputError(f"bag {self.path} has {hint}")
        return conns

    def recorded_init(self, init_topic: str | None = None) -> tuple[tuple[float, float, float, float], str, int]:
        """The first target recorded in the bag: ``(box, "stamp" | "arrival", time ns)``.

        A target selection (``PolygonStamped`` / ``RegionOfInterest``) when the bag has one, else the
        first box the node published (``Detection2DArray``: on the frame its header names).
        """
        from mlkd_tracker.ros.convert import detection_box, points_to_box, roi_to_box, stamp_to_ns

        types = INIT_MSGTYPES + (DETECTIONS_MSGTYPE,)
        if init_topic is None and any(c.msgtype in INIT_MSGTYPES for c in self.reader.connections):
            types = INIT_MSGTYPES
        try:
            conns = self._topic_of(types, init_topic, "PolygonStamped / RegionOfInterest / Detection2DArray",
                                   "--init-topic")
        except InputError as exc:
            raise InputError(f"{exc}; or give the box with --init x,y,w,h") from None
        for conn, log_time, raw in self.reader.messages(connections=conns):
            msg = self.reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == DETECTIONS_MSGTYPE:
                if msg.detections:
                    return detection_box(msg.detections[0]), "stamp", stamp_to_ns(msg.header.stamp)
            elif conn.msgtype.endswith("PolygonStamped"):
                stamp = stamp_to_ns(msg.header.stamp)
                box = points_to_box(msg.polygon.points)
                return (box, "stamp", stamp) if stamp else (box, "arrival", log_time)
            else:
                return roi_to_box(msg), "arrival", log_time
        raise InputError(f"topic {conns[0].topic} in bag {self.path} has no target; give the box with --init x,y,w,h")

    def recorded_boxes(self, topic: str | None = None) -> dict[int, tuple[float, float, float, float] | None]:
        """The node's recorded output: image stamp (ns) -> its box, or None where it published no target."""
        from mlkd_tracker.ros.convert import detection_box, stamp_to_ns

        conns = self._topic_of((DETECTIONS_MSGTYPE,), topic, "Detection2DArray", "--detections-topic")
        boxes = {}
        for conn, _, raw in self.reader.messages(connections=conns):
            msg = self.reader.deserialize(raw, conn.msgtype)
            boxes[stamp_to_ns(msg.header.stamp)] = detection_box(msg.detections[0]) if msg.detections else None
        return boxes

    def start_at_recorded_init(self, kind: str, time_ns: int) -> None:
        """Start at the frame a recorded selection refers to: its header stamp, else the newest frame at its arrival."""
        self._start = (kind, time_ns)

    def _messages(self) -> Iterator[tuple[Any, int, int]]:
        from mlkd_tracker.ros.convert import stamp_to_ns

        for conn, log_time, raw in self.reader.messages(connections=self.connections):
            msg = self.reader.deserialize(raw, conn.msgtype)
            yield msg, log_time, stamp_to_ns(msg.header.stamp)

    def _from_start(self) -> Iterator[Any]:
        messages = self._messages()
        if self._start is None:
            yield from (m for m, _, _ in messages)
            return
        kind, time_ns = self._start
        previous = None
        for msg, log_time, stamp in messages:
            if kind == "stamp" and stamp >= time_ns:
                yield msg
                break
            if kind == "arrival" and log_time > time_ns:
                if previous is None:
                    raise InputError(f"the recorded target selection came before the first frame of {self.topic}")
                yield previous
                yield msg
                break
            previous = msg
        else:
            if kind == "arrival" and previous is not None:
                yield previous
                return
            raise InputError(f"no frame of {self.topic} at or after the recorded selection ({time_ns / 1e9:.3f} s)")
        yield from (m for m, _, _ in messages)

    def __iter__(self) -> Iterator[np.ndarray]:
        from mlkd_tracker.ros.convert import compressed_to_bgr, image_to_bgr, stamp_to_ns

        for index, msg in enumerate(self._from_start()):
            try:
                frame = compressed_to_bgr(msg) if hasattr(msg, "format") else image_to_bgr(msg)
            except InputError as exc:
                raise SourceError(f"{self.name}: message {index} is not a usable image: {exc}") from exc
            self.stamps.append(stamp_to_ns(msg.header.stamp))
            yield frame

    def close(self) -> None:
        self.reader.close()


def is_bag(path: Path) -> bool:
    """A rosbag2: a .mcap / .db3 file, or a folder with a ``metadata.yaml``."""
    return path.suffix.lower() in BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file())


def split_first(source: FrameSource) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """The first frame of ``source`` (HxWx3 BGR) and an iterator over the rest; empty sources are an error."""
    frames = iter(source)
    try:
        return as_bgr_frame(next(frames)), frames
    except StopIteration:
        raise SourceError(f"{source.name} has no frames") from None


def open_source(spec: str | os.PathLike) -> FrameSource:
    """Open a video file, an image folder (natural sort), a rosbag2 (its only image topic) or a camera index."""
    text = str(spec)
    if text.isdigit() and not Path(text).exists():
        return VideoSource(int(text))
    path = Path(text)
    if is_bag(path):
        return BagSource(path)
    if path.is_dir():
        return ImageFolderSource(path)
    if not path.exists():
        raise SourceError(f"input not found: {path} (expected a video file, an image folder or a camera index)")
    return VideoSource(str(path))
