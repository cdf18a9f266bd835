"""ROS message <-> numpy conversion, with every check a camera message can fail, and no rclpy.

Works on any object with the fields of ``sensor_msgs/Image`` / ``CompressedImage`` /
``RegionOfInterest`` / ``geometry_msgs/Polygon`` / ``vision_msgs/Detection2D``: rclpy messages in
the node, ``rosbags`` messages in bag replay. Raw images are checked in O(1) (encoding, size, step, data length)
and viewed without a copy; colour conversion to BGR is one OpenCV call. Encodings outside the
table go to ``cv_bridge`` when it is importable (a ROS install), else they are rejected.

The node subscribes to serialized (CDR) images and reads their fields here with
:func:`parse_serialized_image`: the pixels stay a view of the received bytes, so a frame that is
dropped costs no deserialisation and a tracked one no copy.
"""
from __future__ import annotations

import array
import functools
import math
import struct
from types import SimpleNamespace
from typing import Any, Iterable

import cv2
import numpy as np

from mlkd_tracker.errors import InputError

DEFAULT_MAX_PIXELS = 4096 * 4096

# encoding -> (bytes per pixel, cv2 conversion code to BGR or None when already BGR)
RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "bgr8": (3, None),
    "8UC3": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, cv2.COLOR_GRAY2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "yuv422": (2, cv2.COLOR_YUV2BGR_UYVY),        # ROS "yuv422" is UYVY byte order
    "uyvy": (2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2BGR_YUYV),   # YUYV, as USB cameras send it
    "yuyv": (2, cv2.COLOR_YUV2BGR_YUYV),
}


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{what} has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(f"{what} is too large: {width}x{height} = {width * height} pixels, "
                         f"limit {max_pixels} (parameter max_image_pixels)")


def image_view(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Check a raw ``sensor_msgs/Image`` and view its pixels as HxWxC uint8 without copying.

    Only the encodings of :data:`RAW_ENCODINGS`; rows may be padded (``step`` > width * bpp).
    """
    encoding = str(msg.encoding)
    if encoding not in RAW_ENCODINGS:
        raise InputError(f"unsupported image encoding {encoding!r}; expected one of {sorted(RAW_ENCODINGS)}")
    bpp = RAW_ENCODINGS[encoding][0]
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    _check_size(width, height, max_pixels, "image")
    if bpp == 2 and width % 2:
        raise InputError(f"{encoding} image needs an even width, got {width}")
    if step < width * bpp:
        raise InputError(f"image step {step} is smaller than width * {bpp} bytes = {width * bpp} ({encoding})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise InputError(f"image data has {data.size} bytes, expected step * height = {step} * {height} = "
                         f"{step * height}")
    return data.reshape(height, step)[:, :width * bpp].reshape(height, width, bpp)


def view_to_bgr(view: np.ndarray, encoding: str) -> np.ndarray:
    """HxWx3 uint8 BGR from a checked :func:`image_view` (the view itself for bgr8)."""
    code = RAW_ENCODINGS[encoding][1]
    if code is None:
        return view
    if view.shape[2] == 1:
        view = view[:, :, 0]
    return cv2.cvtColor(view, code)


@functools.lru_cache(maxsize=1)
def _cv_bridge():
    """A ``CvBridge`` when the ROS package is installed (looked up once), else None."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return None
    return CvBridge()


def check_image(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """O(1) checks of a raw image: a known encoding (or cv_bridge present), size, step, data length."""
    if str(msg.encoding) in RAW_ENCODINGS or _cv_bridge() is None:
        image_view(msg, max_pixels)
    else:
        _check_size(int(msg.width), int(msg.height), max_pixels, "image")


def image_to_bgr(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A raw ``sensor_msgs/Image`` as HxWx3 uint8 BGR; other encodings through cv_bridge when present."""
    encoding = str(msg.encoding)
    bridge = None if encoding in RAW_ENCODINGS else _cv_bridge()
    if bridge is None:
        return view_to_bgr(image_view(msg, max_pixels), encoding)
    _check_size(int(msg.width), int(msg.height), max_pixels, "image")
    try:
        return np.ascontiguousarray(bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8"))
    except Exception as exc:  # noqa: BLE001 - cv_bridge raises CvBridgeError and cv2.error
        raise InputError(f"cv_bridge cannot convert {encoding!r} image to bgr8: {exc}") from exc


def check_compressed(msg: Any) -> None:
    """Cheap checks on a ``sensor_msgs/CompressedImage`` before decoding."""
    if len(msg.data) == 0:
        raise InputError(f"compressed image (format {msg.format!r}) has no data")


def compressed_to_bgr(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg, png, ...) to HxWx3 uint8 BGR."""
    check_compressed(msg)
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    try:
        frame = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        frame = None
    if frame is None:
        raise InputError(f"cannot decode compressed image (format {msg.format!r}, {buffer.size} bytes)")
    _check_size(frame.shape[1], frame.shape[0], max_pixels, "decoded image")
    return frame


def bgr_to_bytes(frame: np.ndarray) -> array.array:
    """The pixels of an HxWx3 uint8 frame as the ``array('B')`` an Image message stores (one copy)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(frame).data)
    return out


def box_center_size(box_xywh: Iterable[float]) -> tuple[float, float, float, float]:
    """``x, y, w, h`` (top-left corner, pixels) -> ``cx, cy, w, h`` as ``vision_msgs/BoundingBox2D`` holds it."""
    x, y, w, h = (float(v) for v in box_xywh)
    return x + w / 2, y + h / 2, w, h


def detection_box(detection: Any) -> tuple[float, float, float, float]:
    """``x, y, w, h`` of a ``vision_msgs/Detection2D`` (its ``bbox``: center and size, pixels)."""
    bbox = detection.bbox
    w, h = float(bbox.size_x), float(bbox.size_y)
    return float(bbox.center.position.x) - w / 2, float(bbox.center.position.y) - h / 2, w, h


def points_to_box(points: Iterable[Any]) -> tuple[float, float, float, float]:
    """Bounding ``x, y, w, h`` of polygon points (``.x``, ``.y``): 2 opposite corners or a full outline."""
    pts = [(float(p.x), float(p.y)) for p in points]
    if len(pts) < 2:
        raise InputError(f"init polygon needs at least 2 points (opposite corners), got {len(pts)}")
    if not all(math.isfinite(v) for p in pts for v in p):
        raise InputError(f"init polygon has a non-finite coordinate: {pts}")
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def roi_to_box(roi: Any) -> tuple[float, float, float, float]:
    """``sensor_msgs/RegionOfInterest`` -> ``x, y, w, h``; the all-zero "whole image" ROI is rejected."""
    w, h = int(roi.width), int(roi.height)
    if w <= 0 or h <= 0:
        raise InputError(f"init ROI has zero size ({w}x{h} at {roi.x_offset},{roi.y_offset})")
    return float(roi.x_offset), float(roi.y_offset), float(w), float(h)


class UnsupportedSerialization(InputError):
    """CDR bytes in a representation :func:`parse_serialized_image` does not read (the caller deserialises)."""


# CDR encapsulation kinds read here: XCDR1 big / little endian and plain XCDR2 big / little endian; for
# the fields of Image and CompressedImage (4-byte and 1-byte integers, strings, byte sequences) they
# lay out the same.
_PLAIN_CDR_KINDS = {0x0000, 0x0001, 0x0006, 0x0007}


class _CdrReader:
    def __init__(self, data: bytes):
        if len(data) < 4:
            raise InputError(f"serialized message has {len(data)} bytes, too short for a CDR header")
        kind = int.from_bytes(bytes(data[:2]), "big")
        if kind not in _PLAIN_CDR_KINDS:
            raise UnsupportedSerialization(f"CDR encapsulation 0x{kind:04x} is not read directly")
        self.order = "<" if kind & 1 else ">"
        self.buf = memoryview(data)
        self.pos = 4  # alignment counts from the end of the 4-byte encapsulation header

    def _take(self, size: int, align: int = 1) -> int:
        self.pos += -(self.pos - 4) % align
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.buf):
            raise InputError(f"serialized message is truncated ({len(self.buf)} bytes)")
        return start

    def u32(self) -> int:
        return struct.unpack_from(self.order + "I", self.buf, self._take(4, 4))[0]

    def i32(self) -> int:
        return struct.unpack_from(self.order + "i", self.buf, self._take(4, 4))[0]

    def u8(self) -> int:
        return self.buf[self._take(1)]

    def string(self) -> str:
        size = self.u32()  # counts the terminating NUL
        start = self._take(size)
        return bytes(self.buf[start:start + max(size - 1, 0)]).decode("utf-8", errors="replace")

    def octets(self) -> memoryview:
        size = self.u32()
        start = self._take(size)
        return self.buf[start:start + size]


def _header(reader: _CdrReader) -> SimpleNamespace:
    stamp = SimpleNamespace(sec=reader.i32(), nanosec=reader.u32())
    return SimpleNamespace(stamp=stamp, frame_id=reader.string())


def parse_serialized_image(data: bytes, compressed: bool = False) -> SimpleNamespace:
    """The fields of a serialized ``sensor_msgs/Image`` (or ``CompressedImage``) with ``data`` a view, no copy.

    The result has the message's field names, so every function of this module takes it.
    Raises :class:`UnsupportedSerialization` for other CDR representations and
    :class:`InputError` for truncated bytes.
    """
    reader = _CdrReader(data)
    header = _header(reader)
    if compressed:
        return SimpleNamespace(header=header, format=reader.string(), data=reader.octets())
    height, width, encoding = reader.u32(), reader.u32(), reader.string()
    is_bigendian, step = reader.u8(), reader.u32()
    return SimpleNamespace(header=header, height=height, width=width, encoding=encoding,
                           is_bigendian=is_bigendian, step=step, data=reader.octets())
