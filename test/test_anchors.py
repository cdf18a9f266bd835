"""Anchors, score/box decoding and penalties against their formulas."""
import math

import numpy as np
import pytest

from mlkd_tracker.anchors import (anchor_grid, base_anchors, cosine_window, decode_boxes, foreground_scores,
                                  size_penalty, tracking_anchors)
from mlkd_tracker.config import TrackerConfig


def test_base_anchor_sizes_follow_the_formula():
    sizes = base_anchors(8, [0.33, 0.5, 1, 2, 3], [8])
    expected = []
    for r in [0.33, 0.5, 1, 2, 3]:
        w = int(math.sqrt(64 / r))
        expected.append([w * 8, int(w * r) * 8])
    assert sizes[:, 2:].tolist() == expected
    # the concrete values pysot's Alex model uses
    assert expected == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


def test_anchor_grid_is_centred_and_ordered_anchor_row_col():
    s, stride = 5, 8
    grid = anchor_grid(s, stride, [0.5, 1.0], [8])
    assert grid.shape == (4, 2 * s * s)
    for a in range(2):
        for row in range(s):
            for col in range(s):
                i = a * s * s + row * s + col
                assert grid[0, i] == (col - s // 2) * stride
                assert grid[1, i] == (row - s // 2) * stride
    assert np.all(grid[2, :s * s] == 88) and np.all(grid[3, s * s:] == 64)


def test_tracking_grid_has_21x21_positions_for_287_search():
    cfg = TrackerConfig()
    assert cfg.score_size == 21 and cfg.anchor_num == 5
    grid = tracking_anchors(cfg)
    assert grid.shape == (4, 5 * 21 * 21)
    assert grid[0].min() == -80 and grid[0].max() == 80


def test_cosine_window_peaks_in_the_centre_and_vanishes_at_the_rim():
    win = cosine_window(5, 2).reshape(2, 5, 5)
    assert np.allclose(win[0], win[1])
    assert win[0, 2, 2] == pytest.approx(1.0)
    assert np.all(win[0, 0, :] == 0) and np.all(win[0, :, 4] == 0)
    assert win[0, 1, 1] == pytest.approx(0.25)  # hanning(5) = [0, .5, 1, .5, 0]


def test_foreground_scores_are_the_softmax_foreground_probability():
    rng = np.random.default_rng(1)
    a, s = 5, 3
    cls = rng.normal(size=(1, 2 * a, s, s)).astype(np.float32) * 3
    got = foreground_scores(cls, a)
    bg, fg = cls[0, :a].reshape(-1), cls[0, a:].reshape(-1)
    expected = np.exp(fg) / (np.exp(fg) + np.exp(bg))
    assert np.allclose(got, expected, atol=1e-6)
    assert np.all(np.isfinite(foreground_scores(np.full((1, 10, 3, 3), 1e30, np.float32), a)))


def test_decode_boxes_applies_deltas_to_anchors():
    anchors = np.array([[0.0, 8.0], [0.0, -8.0], [64.0, 32.0], [64.0, 96.0]], np.float32)
    loc = np.zeros((1, 4, 1, 2), np.float32)
    loc[0, :, 0, 0] = [0.5, -0.25, math.log(2.0), 0.0]
    loc[0, :, 0, 1] = [0.0, 0.0, 0.0, math.log(0.5)]
    boxes = decode_boxes(loc, anchors)
    assert np.allclose(boxes[:, 0], [32.0, -16.0, 128.0, 64.0])
    assert np.allclose(boxes[:, 1], [8.0, -8.0, 32.0, 48.0])


def test_size_penalty_hand_computed():
    k = 0.14
    same = size_penalty(np.array([[0.0], [0.0], [40.0], [20.0]]), 40.0, 20.0, k)
    assert same[0] == pytest.approx(1.0)
    # twice as wide: scale change and aspect change both penalised
    w, h = 80.0, 20.0
    sz = lambda a, b: math.sqrt((a + (a + b) / 2) * (b + (a + b) / 2))
    s_c = max(sz(w, h) / sz(40, 20), sz(40, 20) / sz(w, h))
    r_c = max((40 / 20) / (w / h), (w / h) / (40 / 20))
    got = size_penalty(np.array([[0.0], [0.0], [w], [h]]), 40.0, 20.0, k)
    assert got[0] == pytest.approx(math.exp(-(r_c * s_c - 1) * k))
    assert got[0] < 1.0
