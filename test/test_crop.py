"""The single-warp crop against a slow, literal re-implementation of pysot's sub-window."""
import math

import cv2
import numpy as np
import pytest

from mlkd_tracker.crop import crop_subwindow


def reference_subwindow(im, pos, model_sz, original_sz, avg_chans):
    """pysot semantics written out step by step: pad with the mean, cut, resize bilinearly."""
    sz = original_sz
    c = (original_sz + 1) / 2
    xmin = math.floor(pos[0] - c + 0.5)
    ymin = math.floor(pos[1] - c + 0.5)
    xmax, ymax = xmin + sz - 1, ymin + sz - 1
    left, top = int(max(0, -xmin)), int(max(0, -ymin))
    right, bottom = int(max(0, xmax - im.shape[1] + 1)), int(max(0, ymax - im.shape[0] + 1))
    padded = np.zeros((im.shape[0] + top + bottom, im.shape[1] + left + right, 3), np.uint8)
    padded[:, :] = np.asarray(avg_chans).astype(np.uint8)
    padded[top:top + im.shape[0], left:left + im.shape[1]] = im
    patch = padded[ymin + top:ymax + top + 1, xmin + left:xmax + left + 1]
    if model_sz != original_sz:
        patch = cv2.resize(patch, (model_sz, model_sz))
    return patch


def textured_frame(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (5, 5), 0)


@pytest.mark.parametrize("pos,out,orig", [
    ((160.3, 120.7), 287, 200),   # inside, upscale
    ((160.0, 120.0), 127, 300),   # downscale with padding on every side
    ((10.2, 15.9), 287, 130),     # near the top-left corner
    ((300.5, 230.1), 127, 60),    # near the bottom-right corner
    ((100.0, 100.0), 127, 127),   # no resize: exact copy
    ((-30.0, 50.0), 127, 90),     # centre outside the frame
])
def test_warp_crop_matches_pysot_subwindow(pos, out, orig):
    frame = textured_frame()
    avg = frame.mean(axis=(0, 1))
    ours = crop_subwindow(frame, pos, out, orig, avg).astype(int)
    ref = reference_subwindow(frame, pos, out, orig, avg).astype(int)
    assert ours.shape == ref.shape == (out, out, 3)
    # away from borders (bilinear mixes image and padding there) within 1 grey level
    scale = orig / out
    xmin = math.floor(pos[0] - (orig + 1) / 2 + 0.5)
    ymin = math.floor(pos[1] - (orig + 1) / 2 + 0.5)
    u = (np.arange(out) + 0.5) * scale - 0.5  # sample position inside the cut square
    xs, ys = u + xmin, u + ymin
    # cv2.resize clamps at the square's own edge where the warp reads the true neighbours: skip those
    in_square = (u >= 0) & (u <= orig - 1)
    inner_x = in_square & (xs > 1) & (xs < frame.shape[1] - 2)
    inner_y = in_square & (ys > 1) & (ys < frame.shape[0] - 2)
    outer_x = (xs < -1) | (xs > frame.shape[1])
    outer_y = (ys < -1) | (ys > frame.shape[0])
    inner = np.outer(inner_y, inner_x)
    outer = np.outer(outer_y, np.ones(out, bool)) | np.outer(np.ones(out, bool), outer_x)
    diff = np.abs(ours - ref).max(axis=2)
    assert inner.any()
    assert diff[inner].max() <= 1
    if outer.any():  # pure padding is the truncated mean colour, exactly
        assert diff[outer].max() == 0
    if out == orig:
        assert diff.max() == 0
