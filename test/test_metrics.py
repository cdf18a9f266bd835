"""OPE metrics against hand-computed cases and a literal frame-by-frame reading of the pysot-toolkit rules."""
import math

import numpy as np
import pytest

from mlkd_tracker.errors import InputError
from mlkd_training.evaluation.metrics import (NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS,
                                              evaluate_tracker, iou, sequence_curves)


def test_threshold_grids_are_the_toolkit_ones():
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[-1] == 1.0
    assert PRECISION_THRESHOLDS.tolist() == list(range(51))
    assert NORM_PRECISION_THRESHOLDS[20] == 0.2 and NORM_PRECISION_THRESHOLDS[-1] == 0.5


def test_half_shifted_box_by_hand():
    # gt [0,10)x[0,10), pred shifted 5 px right: overlap 50, union 150 -> IoU 1/3
    gt, pred = np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 10, 10.]])
    assert iou(gt, pred)[0] == pytest.approx(1 / 3)
    c = sequence_curves(gt, pred)
    # IoU 1/3 exceeds thresholds 0, .05, ..., .30: 7 of 21
    assert c.success.sum() == 7 and np.mean(c.success) == pytest.approx(1 / 3)
    # centres (4.5, 4.5) and (9.5, 4.5): error 5 px -> within thresholds 5..50
    assert c.precision[:5].sum() == 0 and c.precision[5:].all() and c.precision[20] == 1
    # normalised by the gt size (10): error 0.5 -> only the last threshold (0.5 <= 0.5)
    assert c.norm_precision[:50].sum() == 0 and c.norm_precision[50] == 1


def test_perfect_tracking_auc_is_20_of_21():
    """IoU 1 is not strictly greater than the last threshold 1.0: the toolkit's ceiling is 0.952."""
    gt = np.array([[3, 4, 20, 10.], [5, 6, 20, 10.]])
    c = sequence_curves(gt, gt)
    assert np.mean(c.success) == pytest.approx(20 / 21) and c.precision.min() == 1


def test_iou_uses_x_plus_w_edges_and_clips():
    a = np.array([[0, 0, 10, 10.], [0, 0, 10, 10.], [0, 0, 4, 4.]])
    b = np.array([[10, 0, 10, 10.], [9, 9, 10, 10.], [1, 1, 2, 2.]])
    np.testing.assert_allclose(iou(a, b), [0.0, 1 / 199, 4 / 16])


def test_frames_without_ground_truth_pysot_and_skip_protocols():
    box = [10, 10, 20, 20.]
    gt = np.array([box, [np.nan] * 4, box, box])
    pred = np.array([box, box, box, [200, 200, 5, 5.]])
    absent = np.array([False, False, False, True])
    p = sequence_curves(gt, pred, absent, "pysot")
    # denominator 4 (all frames); the absent frame is dropped (a miss), the NaN frame never succeeds ...
    assert p.success[10] == pytest.approx(2 / 4)
    # ... but counts as within every precision threshold (its gt centre is not > 0)
    assert p.precision[0] == pytest.approx(3 / 4) and p.norm_precision[20] == pytest.approx(3 / 4)
    s = sequence_curves(gt, pred, absent, "skip")
    assert s.success[10] == 1 and s.precision[0] == 1  # only the 2 valid frames count


def test_pysot_centre_quirk_for_boxes_left_of_the_frame():
    gt = np.array([[-30, 10, 20, 20.]])  # centre x = -20.5: the toolkit does not measure it
    pred = np.array([[300, 300, 20, 20.]])
    assert sequence_curves(gt, pred, protocol="pysot").precision[20] == 1
    assert sequence_curves(gt, pred, protocol="skip").precision[20] == 0


def test_sequences_weigh_the_same_not_frames():
    a = np.array([[0, 0, 10, 10.]])
    b = np.tile([[0, 0, 10, 10.]], (3, 1))
    miss = np.tile([[50, 50, 10, 10.]], (3, 1))
    ev = evaluate_tracker("t", {"a": a, "b": b}, {"a": a, "b": miss}, attributes={"FM": ["b"], "IV": ["a"]})
    assert ev.overall.auc == pytest.approx((20 / 21 + 0) / 2)
    assert ev.attributes["FM"].auc == 0 and ev.attributes["IV"].auc == pytest.approx(20 / 21)
    assert ev.to_dict()["per_sequence"]["a"]["precision_20"] == 1


def test_length_mismatch_and_unknown_protocol_are_errors():
    gt = np.zeros((3, 4)) + 5
    with pytest.raises(InputError, match="tracker t, sequence s: 2 result boxes for 3 ground-truth frames"):
        evaluate_tracker("t", {"s": gt}, {"s": gt[:2]})
    with pytest.raises(InputError, match="unknown evaluation protocol"):
        sequence_curves(gt, gt, protocol="otb")


def _literal_pysot(gt, pred, absent):
    """Frame-by-frame reading of the toolkit's rules, as independent of the vectorised code as possible."""
    n = len(gt)
    succ, prec, nprec = [0] * 21, [0] * 51, [0] * 51
    for g, p, gone in zip(gt, pred, absent):
        if gone:
            continue
        if g[2] > 0 and g[3] > 0:
            w = max(0.0, min(g[0] + g[2], p[0] + p[2]) - max(g[0], p[0]))
            h = max(0.0, min(g[1] + g[3], p[1] + p[3]) - max(g[1], p[1]))
            o = w * h / (g[2] * g[3] + p[2] * p[3] - w * h)
            o = max(min(1.0, o), 0.0) if not math.isnan(o) else o
            succ = [s + (o > t) for s, t in zip(succ, SUCCESS_THRESHOLDS)]
        gc = (g[0] + (g[2] - 1) / 2, g[1] + (g[3] - 1) / 2)
        pc = (p[0] + (p[2] - 1) / 2, p[1] + (p[3] - 1) / 2)
        d = math.dist(gc, pc) if gc[0] > 0 and gc[1] > 0 else -1
        prec = [s + (d <= t) for s, t in zip(prec, PRECISION_THRESHOLDS)]
        gn = (gc[0] / (g[2] + 1e-16), gc[1] / (g[3] + 1e-16))
        pn = (pc[0] / (g[2] + 1e-16), pc[1] / (g[3] + 1e-16))
        dn = math.dist(gn, pn) if gn[0] > 0 and gn[1] > 0 else -1
        nprec = [s + (dn <= t) for s, t in zip(nprec, NORM_PRECISION_THRESHOLDS)]
    return np.array(succ) / n, np.array(prec) / n, np.array(nprec) / n


@pytest.mark.parametrize("seed", range(5))
def test_vectorised_equals_literal_reading(seed):
    rng = np.random.default_rng(seed)
    n = 200
    gt = np.column_stack([rng.uniform(-20, 300, n), rng.uniform(-20, 200, n), rng.uniform(0, 60, (n, 2))])
    gt[rng.random(n) < 0.1] = np.nan
    gt[rng.random(n) < 0.05, 2] = 0
    pred = gt + rng.normal(0, 8, (n, 4))
    pred[rng.random(n) < 0.05] = np.nan
    absent = rng.random(n) < 0.1
    c = sequence_curves(gt, pred, absent)
    s, p, q = _literal_pysot(gt, pred, absent)
    np.testing.assert_allclose(c.success, s)
    np.testing.assert_allclose(c.precision, p)
    np.testing.assert_allclose(c.norm_precision, q)
