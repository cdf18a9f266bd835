"""Message <-> numpy conversion (``mlkd_tracker.ros.convert``): every encoding and every check, no rclpy."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlkd_tracker.errors import InputError
from mlkd_tracker.ros import convert
from mlkd_tracker.ros.convert import (box_center_size, check_image, compressed_to_bgr, detection_box, image_to_bgr,
                                      image_view, points_to_box, roi_to_box)

RNG = np.random.default_rng(0)
BGR = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def raw(pixels: np.ndarray, encoding: str = "bgr8", pad: int = 0, **fields):
    """An Image-shaped message built by hand from HxWxC bytes, rows padded by ``pad`` bytes."""
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    data = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1) if pad else rows
    msg = {"encoding": encoding, "height": h, "width": w, "step": data.shape[1], "data": data.tobytes(), **fields}
    return SimpleNamespace(**msg)


@pytest.mark.parametrize("encoding,pixels", [
    ("bgr8", BGR), ("8UC3", BGR), ("rgb8", BGR[:, :, ::-1]),
    ("bgra8", np.dstack([BGR, np.full(BGR.shape[:2], 9, np.uint8)])),
    ("rgba8", np.dstack([BGR[:, :, ::-1], np.full(BGR.shape[:2], 9, np.uint8)])),
])
def test_colour_encodings_give_the_bgr_pixels(encoding, pixels):
    for pad in (0, 5):
        out = image_to_bgr(raw(np.ascontiguousarray(pixels), encoding, pad))
        assert out.shape == BGR.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, BGR)


def test_mono8_becomes_grey_bgr():
    grey = BGR[:, :, 0].copy()
    out = image_to_bgr(raw(grey[:, :, None], "mono8", pad=3))
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))


def test_bgr8_without_padding_is_a_view_not_a_copy():
    msg = raw(BGR, "bgr8")
    view = image_view(msg)
    assert not view.flags.owndata and np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding,order", [("yuv422", "UYVY"), ("uyvy", "UYVY"),
                                            ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
def test_yuv422_byte_orders(encoding, order):
    # neutral chroma (U = V = 128): every pixel is grey with the value of its Y sample
    y = RNG.integers(16, 235, (4, 6), dtype=np.uint8)
    chroma = np.full((4, 6), 128, np.uint8)
    pairs = np.stack([chroma, y], axis=2) if order == "UYVY" else np.stack([y, chroma], axis=2)
    out = image_to_bgr(raw(pairs, encoding))
    expected = np.clip(np.round((y.astype(np.float32) - 16) * 255 / 219), 0, 255)
    assert out.shape == (4, 6, 3)
    assert np.abs(out[:, :, 1].astype(np.float32) - expected).max() <= 2
    assert np.abs(out[:, :, 0].astype(int) - out[:, :, 2].astype(int)).max() <= 1


@pytest.mark.parametrize("fields,message", [
    (dict(encoding="32FC1"), "unsupported image encoding '32FC1'"),
    (dict(width=0, height=0, step=0, data=b""), "zero size"),
    (dict(width=100000, height=100000, step=300000), "too large"),
    (dict(step=10), "step 10 is smaller than width * 3"),
    (dict(data=b"\x00" * 17), "has 17 bytes, expected step * height = 24 * 6 = 144"),
])
def test_bad_image_messages_are_named(fields, message):
    with pytest.raises(InputError) as info:
        check_image(raw(BGR, **{"encoding": "bgr8", **fields}))
    assert message in str(info.value)


def test_yuv_needs_even_width_and_size_limit_is_a_parameter():
    with pytest.raises(InputError, match="even width"):
        image_view(raw(np.zeros((2, 3, 2), np.uint8), "yuyv"))
    with pytest.raises(InputError, match="limit 20"):
        image_view(raw(BGR, "bgr8"), max_pixels=20)


def test_unknown_encoding_goes_to_cv_bridge_when_present(monkeypatch):
    # the real cv_bridge is not installable here; this checks only our dispatch and error wrapping
    class Bridge:
        def imgmsg_to_cv2(self, msg, desired_encoding):
            assert desired_encoding == "bgr8"
            if msg.encoding == "bayer_bad":
                raise RuntimeError("bad bayer data")
            return BGR[::-1]

    monkeypatch.setattr(convert, "_cv_bridge", lambda: Bridge())
    msg = raw(BGR[:, :, :1].copy(), "bayer_rggb8")
    check_image(msg)
    np.testing.assert_array_equal(image_to_bgr(msg), BGR[::-1])
    with pytest.raises(InputError, match="cv_bridge cannot convert 'bayer_bad'"):
        image_to_bgr(raw(BGR[:, :, :1].copy(), "bayer_bad"))


def test_compressed_jpeg_png_and_garbage():
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[10:30, 20:40] = (30, 160, 250)
    for fmt, ext in (("png", ".png"), ("jpeg", ".jpg")):
        ok, encoded = cv2.imencode(ext, frame)
        out = compressed_to_bgr(SimpleNamespace(format=fmt, data=encoded.tobytes()))
        assert out.shape == frame.shape
        assert np.abs(out.astype(int) - frame).mean() < 3
    with pytest.raises(InputError, match="cannot decode compressed image .format 'jpeg', 9 bytes"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"not a jpg"))
    with pytest.raises(InputError, match="has no data"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b""))
    ok, big = cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(InputError, match="decoded image is too large"):
        compressed_to_bgr(SimpleNamespace(format="png", data=big.tobytes()), max_pixels=100)


def test_boxes_detections_polygons_and_rois():
    assert box_center_size((1, 2, 10, 5)) == (6, 4.5, 10, 5)
    cx, cy, w, h = box_center_size((1.25, 2.5, 10.5, 5))
    detection = SimpleNamespace(bbox=SimpleNamespace(center=SimpleNamespace(position=SimpleNamespace(x=cx, y=cy)),
                                                     size_x=w, size_y=h))
    assert detection_box(detection) == (1.25, 2.5, 10.5, 5)
    pts = [SimpleNamespace(x=x, y=y) for x, y in [(1, 2), (11, 2), (11, 7), (1, 7)]]  # an outline
    assert points_to_box(pts) == (1, 2, 10, 5)
    assert points_to_box(pts[::2]) == (1, 2, 10, 5)  # two opposite corners
    with pytest.raises(InputError, match="at least 2 points"):
        points_to_box(pts[:1])
    with pytest.raises(InputError, match="non-finite"):
        points_to_box([SimpleNamespace(x=float("nan"), y=1.0), SimpleNamespace(x=3.0, y=4.0)])
    assert roi_to_box(SimpleNamespace(x_offset=3, y_offset=4, width=20, height=10)) == (3, 4, 20, 10)
    with pytest.raises(InputError, match="zero size"):
        roi_to_box(SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0))


# reading serialized (CDR) images without deserialising, checked against rclpy's own serializer
def _serializer():
    return pytest.importorskip("rclpy.serialization", reason="rclpy is needed to serialize reference messages")


@settings(max_examples=60, deadline=None)
@given(frame_id=st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12),
       encoding=st.sampled_from(["bgr8", "mono8", "yuv422", "32FC1", ""]), height=st.integers(0, 5),
       width=st.integers(0, 7), pad=st.integers(0, 3), sec=st.integers(-2**31, 2**31 - 1),
       nanosec=st.integers(0, 999_999_999), big=st.integers(0, 1))
def test_serialized_image_fields_match_rclpy(frame_id, encoding, height, width, pad, sec, nanosec, big):
    serialization = _serializer()
    from sensor_msgs.msg import Image

    step = width * 3 + pad
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=big, step=step,
                data=RNG.integers(0, 256, step * height, dtype=np.uint8).tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    raw_bytes = serialization.serialize_message(msg)
    parsed = convert.parse_serialized_image(raw_bytes)
    assert (parsed.header.stamp.sec, parsed.header.stamp.nanosec, parsed.header.frame_id) == (sec, nanosec, frame_id)
    assert (parsed.height, parsed.width, parsed.encoding, parsed.is_bigendian, parsed.step) == \
        (height, width, encoding, big, step)
    assert bytes(parsed.data) == bytes(msg.data)


def test_serialized_pixels_are_a_view_and_compressed_images_parse():
    serialization = _serializer()
    from sensor_msgs.msg import CompressedImage, Image

    msg = Image(height=6, width=8, encoding="bgr8", step=24, data=BGR.tobytes())
    raw_bytes = serialization.serialize_message(msg)
    parsed = convert.parse_serialized_image(raw_bytes)
    view = image_view(parsed)
    np.testing.assert_array_equal(view, BGR)
    assert np.shares_memory(view, np.frombuffer(raw_bytes, np.uint8))
    png = cv2.imencode(".png", BGR)[1].tobytes()
    compressed_msg = CompressedImage(format="png", data=png)
    compressed_msg.header.frame_id = "cam"
    parsed = convert.parse_serialized_image(serialization.serialize_message(compressed_msg), compressed=True)
    assert parsed.format == "png" and parsed.header.frame_id == "cam"
    np.testing.assert_array_equal(compressed_to_bgr(parsed), BGR)


def test_truncated_and_unsupported_serializations():
    serialization = _serializer()
    from sensor_msgs.msg import Image

    raw_bytes = serialization.serialize_message(Image(height=6, width=8, encoding="bgr8", step=24, data=BGR.tobytes()))
    with pytest.raises(InputError, match="truncated"):
        convert.parse_serialized_image(raw_bytes[:-5])
    with pytest.raises(InputError, match="too short"):
        convert.parse_serialized_image(b"\x00")
    with pytest.raises(convert.UnsupportedSerialization, match="0x0003"):
        convert.parse_serialized_image(b"\x00\x03" + raw_bytes[2:])  # parameter-list CDR
