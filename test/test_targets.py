"""Anchor targets against hand-worked cases on the 17x17 training score map."""
import numpy as np

from mlkd_training.targets import AnchorTargets, TargetConfig, box_iou

CENTRE_BOX = (95.0, 95.0, 159.0, 159.0)  # 64x64 at the crop centre 127: the square anchor there


def test_anchor_grid_is_centred_on_the_search_crop():
    t = AnchorTargets()
    cx, cy, w, h = t.centers
    assert t.centers.shape == (4, 5, 17, 17)
    assert cx[2, 8, 8] == 127 and cy[2, 8, 8] == 127 and w[2, 8, 8] == 64 and h[2, 8, 8] == 64
    assert cx[0, 0, 0] == 127 - 64 and cx[0, 0, 16] == 127 + 64
    # ratio 0.33: w = int(sqrt(64 / 0.33)) = 13, h = int(13 * 0.33) = 4, times scale 8
    assert (w[0, 0, 0], h[0, 0, 0]) == (104, 32)


def test_box_on_the_centre_anchor_gives_the_3x3_positive_block():
    labels = AnchorTargets()(CENTRE_BOX, negative=False, rng=np.random.default_rng(0))
    pos = np.argwhere(labels.cls == 1)
    # same-size square anchors 8 px off overlap 56*64 / (2*64*64 - 56*64) = 0.78, 16 px off exactly 0.6 (not > 0.6);
    # the diagonal neighbours 56*56 / (8192 - 3136) = 0.62; no other aspect ratio reaches 0.6
    assert sorted(map(tuple, pos)) == [(2, y, x) for y in (7, 8, 9) for x in (7, 8, 9)]
    assert np.allclose(labels.weight[labels.cls == 1], 1 / 9, rtol=1e-5)
    assert labels.weight[labels.cls != 1].sum() == 0
    assert (labels.cls == 0).sum() == 64 - 16  # negatives capped at total_num - pos_num
    assert np.allclose(labels.delta[:, 2, 8, 8], 0.0, atol=1e-7)
    assert np.allclose(labels.delta[:, 2, 8, 9], [-8 / 64, 0.0, 0.0, 0.0], atol=1e-7)
    # log(tw / aw) against the 0.33-ratio anchor (104 x 32)
    assert np.isclose(labels.delta[2, 0, 8, 8], np.log(64 / 104)) and np.isclose(labels.delta[3, 0, 8, 8], np.log(2.0))


def test_positive_count_is_capped_and_weighted_by_the_kept_number():
    t = AnchorTargets(TargetConfig(pos_num=4, total_num=10))
    labels = t(CENTRE_BOX, negative=False, rng=np.random.default_rng(1))
    assert (labels.cls == 1).sum() == 4 and (labels.cls == 0).sum() == 6
    assert np.allclose(labels.weight[labels.cls == 1], 0.25, rtol=1e-5)


def test_negative_pair_labels_only_the_zone_around_the_box():
    labels = AnchorTargets()(CENTRE_BOX, negative=True, rng=np.random.default_rng(0))
    neg = np.argwhere(labels.cls == 0)
    assert len(neg) == 16 and (labels.cls == 1).sum() == 0 and labels.weight.sum() == 0
    # centre cell = 8 + ceil(0 / 8 + 0.5) = 9; the zone is rows/cols 6..12
    assert neg[:, 1].min() >= 6 and neg[:, 1].max() <= 12 and neg[:, 2].min() >= 6 and neg[:, 2].max() <= 12


def test_labels_are_deterministic_for_a_seeded_generator():
    t = AnchorTargets()
    box = (60.3, 101.0, 170.2, 150.5)
    a, b = t(box, False, np.random.default_rng(7)), t(box, False, np.random.default_rng(7))
    assert np.array_equal(a.cls, b.cls) and np.array_equal(a.weight, b.weight)


def test_iou_convention_has_no_plus_one():
    corners = np.array([0.0, 0.0, 10.0, 10.0]).reshape(4, 1)
    assert np.isclose(box_iou(corners, (5, 0, 15, 10))[0], 50 / 150)
