"""Message <-> numpy conversion (``mlkd_tracker.ros.convert``): every encoding and every check, no rclpy."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mlkd_tracker.errors import InputError
from mlkd_tracker.ros import convert
from mlkd_tracker.ros.convert import (box_corners, check_image, compressed_to_bgr, image_to_bgr, image_view,
                                      points_to_box, roi_to_box)

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


def test_boxes_polygons_and_rois():
    assert box_corners((1, 2, 10, 5)) == [(1, 2), (11, 2), (11, 7), (1, 7)]
    pts = [SimpleNamespace(x=x, y=y) for x, y in box_corners((1, 2, 10, 5))]
    assert points_to_box(pts) == (1, 2, 10, 5)
    assert points_to_box(pts[::2]) == (1, 2, 10, 5)  # two opposite corners
    with pytest.raises(InputError, match="at least 2 points"):
        points_to_box(pts[:1])
    with pytest.raises(InputError, match="non-finite"):
        points_to_box([SimpleNamespace(x=float("nan"), y=1.0), SimpleNamespace(x=3.0, y=4.0)])
    assert roi_to_box(SimpleNamespace(x_offset=3, y_offset=4, width=20, height=10)) == (3, 4, 20, 10)
    with pytest.raises(InputError, match="zero size"):
        roi_to_box(SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0))
