"""Each loss against small tensors whose values are worked out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from mlkd_training.losses import (feature_l2, feature_spatial, feature_threshold, gated_distillation, mutual_mse,
                                  response_kl, select_cross_entropy, tracking_losses, weighted_l1)


def test_select_cross_entropy_halves_positive_and_negative_means():
    # A=1, S=1, B=3: channel 0 background, channel 1 foreground
    cls = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0], [5.0, -5.0]]).reshape(3, 2, 1, 1)
    label = torch.tensor([1, 0, -1]).reshape(3, 1, 1, 1)  # the third anchor is ignored
    expected = 0.5 * -math.log(3 / 4) + 0.5 * -math.log(4 / 5)
    assert select_cross_entropy(cls, label).item() == pytest.approx(expected, rel=1e-6)
    # no positive anchor at all: only the negative half counts
    assert select_cross_entropy(cls, torch.tensor([0, 0, -1]).reshape(3, 1, 1, 1)).item() == pytest.approx(
        0.5 * (-math.log(1 / 4) - math.log(4 / 5)) / 2, rel=1e-6)


def test_weighted_l1_sums_deltas_and_divides_by_batch():
    loc = torch.tensor([1.0, -2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]).reshape(2, 4, 1, 1)
    target = torch.zeros(2, 4, 1, 1, 1)
    weight = torch.tensor([0.5, 1.0]).reshape(2, 1, 1, 1)
    assert weighted_l1(loc, target, weight).item() == pytest.approx((1 + 2 + 3 + 4) * 0.5 / 2)


def test_tracking_losses_weights_cls_and_loc():
    out = {"cls": torch.zeros(1, 2, 1, 1), "loc": torch.ones(1, 4, 1, 1)}
    batch = {"label_cls": torch.ones(1, 1, 1, 1, dtype=torch.long), "label_loc": torch.zeros(1, 4, 1, 1, 1),
             "label_loc_weight": torch.ones(1, 1, 1, 1)}
    losses = tracking_losses(out, batch)
    assert losses["cls"].item() == pytest.approx(0.5 * math.log(2))
    assert losses["loc"].item() == pytest.approx(4.0)
    assert losses["total"].item() == pytest.approx(0.5 * math.log(2) + 1.2 * 4.0)


def test_response_kl_is_over_positions_at_temperature_with_batchmean():
    # B=2, A=1, S=1 -> N=2 positions. Student foreground logits 0 and 10, teacher all 0, T=10:
    # student column = softmax([0, 1]) = [1, e] / (1 + e), teacher column uniform
    student = {"cls": torch.tensor([0.0, 0.0, 0.0, 10.0]).reshape(2, 2, 1, 1), "loc": torch.zeros(2, 4, 1, 1)}
    teacher = {"cls": torch.zeros(2, 2, 1, 1), "loc": torch.zeros(2, 4, 1, 1)}
    teacher["loc"][1, 0] = 10.0
    cls_kl, loc_kl = response_kl(student, teacher, temperature=10.0)
    e = math.e
    assert cls_kl.item() == pytest.approx((math.log((1 + e) / 2) - 0.5) / 2, rel=1e-5)
    p = [1 / (1 + e), e / (1 + e)]  # teacher loc column 0; student uniform
    assert loc_kl.item() == pytest.approx((math.log(2) + sum(q * math.log(q) for q in p)) / 2, rel=1e-5)


@pytest.mark.parametrize("s_cls,s_loc,expected,case", [
    (0.1, 0.1, 0.0, "none"),        # better than the teacher on both: nothing added
    (0.5, 0.1, 0.3, "cls"),         # worse on cls only: the cls KL
    (0.1, 0.5, 0.7, "loc"),         # worse on loc only: the loc KL
    (0.5, 0.5, 1e4 * 1.0, "both"),  # worse on both: KD_WEIGHT * (cls KL + loc KL)
    (0.2, 0.1, 0.3, "cls"),         # a tie counts as worse (>=)
])
def test_kd_gate_four_cases(s_cls, s_loc, expected, case):
    student = {"cls": torch.tensor(s_cls), "loc": torch.tensor(s_loc)}
    teacher = {"cls": torch.tensor(0.2), "loc": torch.tensor(0.2)}
    term, applied = gated_distillation(student, teacher, torch.tensor(0.3), torch.tensor(0.7), kd_weight=1e4)
    assert applied == case and term.item() == pytest.approx(expected)


def test_feature_l2_is_mse_of_softmax_over_all_elements():
    s = torch.tensor([0.0, 0.0]).reshape(1, 2, 1, 1)
    t = torch.tensor([0.0, math.log(3.0)]).reshape(1, 2, 1, 1)  # softmax [0.25, 0.75]
    assert feature_l2(s, t).item() == pytest.approx(0.0625 * 0.01, rel=1e-6)


def test_feature_spatial_hand_case():
    s = torch.tensor([[1.0, 0.0], [0.0, 0.0]]).reshape(1, 1, 2, 2)
    # (0,0): four unit differences; (0,1) and (1,0): one each; (1,1): none -> 6 / 4 positions
    assert feature_spatial(s, torch.zeros_like(s)).item() == pytest.approx(1.5)


def test_feature_spatial_equals_the_reference_formulation_for_256_channels():
    torch.manual_seed(0)
    s, t = torch.randn(3, 256, 5, 5), torch.randn(3, 256, 5, 5)
    kernels = {"left": [[0, 0, 0], [-1, 1, 0], [0, 0, 0]], "right": [[0, 0, 0], [0, 1, -1], [0, 0, 0]],
               "up": [[0, -1, 0], [0, 1, 0], [0, 0, 0]], "down": [[0, 0, 0], [0, 1, 0], [0, -1, 0]]}
    s_mean = s.reshape(1, -1, 16 * 5, 16 * 5).mean(1, keepdim=True)
    t_mean = t.reshape(1, -1, 16 * 5, 16 * 5).mean(1, keepdim=True)
    total = 0
    for k in kernels.values():
        w = torch.tensor(k, dtype=torch.float32)[None, None]
        total = total + (F.conv2d(t_mean, w, padding=1) - F.conv2d(s_mean, w, padding=1)) ** 2
    assert feature_spatial(s, t).item() == pytest.approx(total.mean().item(), rel=1e-5)


def test_feature_threshold_tends_to_the_hard_masks_and_has_a_gradient():
    s = torch.tensor([0.0, 0.0, 0.0, 3.0]).reshape(1, 4, 1, 1)
    t = torch.tensor([3.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    # hard masks (softmax > its mean): [0,0,0,1] vs [1,0,0,0] -> MSE 2/4, times 5
    assert feature_threshold(s, t, sharpness=1e4).item() == pytest.approx(2.5, rel=1e-4)
    s = torch.tensor([0.1, -0.2, 0.05, 0.3]).reshape(1, 4, 1, 1).requires_grad_()
    loss = feature_threshold(s, torch.tensor([0.3, 0.0, -0.1, 0.1]).reshape(1, 4, 1, 1))
    loss.backward()
    assert loss.item() > 0 and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 1e-3
    # the reference's hard threshold passes no gradient at all
    hard = torch.where(F.softmax(s.reshape(-1), 0) > 0.25, 1.0, 0.0)
    assert not hard.requires_grad


def test_mutual_mse_detaches_the_elected_feature():
    f = torch.tensor([1.0, 2.0], requires_grad=True)
    elected = torch.tensor([0.0, 0.0], requires_grad=True)
    loss = mutual_mse(f, elected)
    assert loss.item() == pytest.approx(2.5 / 60)
    loss.backward()
    assert elected.grad is None and torch.allclose(f.grad, torch.tensor([1.0, 2.0]) / 60)
