"""Training losses: the base losses of both head kinds, MLKD's gated response distillation, the
three feature-distillation losses and the mutual-learning term (MLKD_METHOD.md sections 2, 4, 5).

Every function takes model outputs (the networks' ``forward`` dict entries) and targets and
returns a scalar tensor computed in float32 (safe under autocast). Layouts follow pysot: the
``cls`` map is ``(B, 2A, S, S)`` with background logits in channels ``[0, A)`` and foreground in
``[A, 2A)``; ``loc`` is ``(B, 4A, S, S)`` with the four deltas as channel blocks. NanoTrack's
point head is the case ``A = 1`` with ``loc`` the ltrb distances; its box loss is the authors'
linear IoU loss instead of SiamRPN's weighted L1.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F


def cls_pairs(cls: torch.Tensor) -> torch.Tensor:
    """``(B, 2A, S, S)`` logits -> ``(B, A, S, S, 2)`` (background, foreground) per anchor."""
    b, a2, h, w = cls.shape
    return cls.float().reshape(b, 2, a2 // 2, h, w).permute(0, 2, 3, 4, 1)


def select_cross_entropy(cls: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """0.5 * mean NLL over positive anchors + 0.5 * mean NLL over negative ones (-1 ignored).

    A class with no labelled anchor in the batch contributes 0 (pysot would give NaN for none
    and, through a squeeze, 0 for exactly one).
    """
    logp = F.log_softmax(cls_pairs(cls), dim=-1).reshape(-1, 2)
    label = label.reshape(-1)
    total = cls.new_zeros((), dtype=torch.float32)
    for value in (1, 0):
        chosen = (label == value).float()
        nll = -(logp[:, value] * chosen).sum() / chosen.sum().clamp(min=1.0)
        total = total + 0.5 * nll
    return total


def weighted_l1(loc: torch.Tensor, label_loc: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum over anchors of ``weight * sum_4 |delta - target|``, divided by the batch size."""
    b, _, h, w = loc.shape
    diff = (loc.float().reshape(b, 4, -1, h, w) - label_loc).abs().sum(dim=1)
    return (diff * weight).sum() / b


def linear_iou(loc: torch.Tensor, label_loc: torch.Tensor, label_cls: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - IoU`` over positive points of predicted and target ltrb distances (NanoTrack's loss).

    Both boxes share the point, so their intersection is ``(min l + min r) x (min t + min b)``;
    IoU is smoothed as ``(inter + 1) / (union + 1)`` as the authors do. No positive: 0.
    """
    b, _, h, w = loc.shape
    pred = loc.float().permute(0, 2, 3, 1).reshape(-1, 4)
    target = label_loc.float().reshape(b, 4, h, w).permute(0, 2, 3, 1).reshape(-1, 4)
    positive = label_cls.reshape(-1) == 1
    if not bool(positive.any()):
        return loc.new_zeros((), dtype=torch.float32) + 0.0 * loc.float().sum()  # keeps the graph connected
    pred, target = pred[positive], target[positive]
    inter = ((torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 2], target[:, 2]))
             * (torch.minimum(pred[:, 1], target[:, 1]) + torch.minimum(pred[:, 3], target[:, 3])))
    area_p = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    area_t = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    iou = (inter + 1.0) / (area_p + area_t - inter + 1.0)
    return (1.0 - iou).mean()


def tracking_losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                    cls_weight: float = 1.0, loc_weight: float = 1.2, decoder: str = "anchors") -> dict[str, torch.Tensor]:
    """``cls``, ``loc`` and ``total = cls_weight * cls + loc_weight * loc`` for one model's outputs.

    ``decoder`` is the head kind: ``anchors`` (weighted L1 on deltas) or ``points`` (linear IoU on ltrb).
    """
    cls = select_cross_entropy(out["cls"], batch["label_cls"])
    if decoder == "points":
        loc = linear_iou(out["loc"], batch["label_loc"], batch["label_cls"])
    else:
        loc = weighted_l1(out["loc"], batch["label_loc"], batch["label_loc_weight"])
    return {"cls": cls, "loc": loc, "total": cls_weight * cls + loc_weight * loc}


def _kl_over_positions(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    # rows are the N anchor positions of the batch; softmax runs down each column (dim 0)
    return F.kl_div(F.log_softmax(student / temperature, dim=0), F.softmax(teacher / temperature, dim=0),
                    reduction="batchmean")


def response_kl(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                temperature: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(teacher || student) of the cls logits as ``(N, 2)`` and the loc outputs as ``(N, 4A)``.

    N counts every anchor position of the batch; the distributions are over N (dim 0), at
    temperature T, with "batchmean" reduction (sum / N), as the MLKD reference.
    """
    s_cls, t_cls = cls_pairs(student["cls"]).reshape(-1, 2), cls_pairs(teacher["cls"]).reshape(-1, 2)
    a4 = student["loc"].shape[1]
    s_loc = student["loc"].float().permute(0, 2, 3, 1).reshape(-1, a4)
    t_loc = teacher["loc"].float().permute(0, 2, 3, 1).reshape(-1, a4)
    return _kl_over_positions(s_cls, t_cls, temperature), _kl_over_positions(s_loc, t_loc, temperature)


def gated_distillation(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                       cls_kl: torch.Tensor, loc_kl: torch.Tensor,
                       kd_weight: float = 1e4) -> tuple[torch.Tensor, str]:
    """The KD term MLKD adds given student vs teacher base losses, and which case applied.

    Student better on both cls and loc: nothing ("none"); worse (>=) on cls only: cls KL
    ("cls"); on loc only: loc KL ("loc"); on both: ``kd_weight * (cls KL + loc KL)`` ("both").
    """
    worse_cls = bool(student["cls"] >= teacher["cls"])
    worse_loc = bool(student["loc"] >= teacher["loc"])
    if worse_cls and worse_loc:
        return kd_weight * (cls_kl + loc_kl), "both"
    if worse_cls:
        return cls_kl, "cls"
    if worse_loc:
        return loc_kl, "loc"
    return cls_kl.new_zeros(()), "none"


def feature_l2(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """"L2": MSE between softmaxes over all elements of each feature, times 0.01."""
    return F.mse_loss(F.softmax(student.float().reshape(-1), dim=0),
                      F.softmax(teacher.float().reshape(-1), dim=0)) * 0.01


def _channel_grid(channels: int) -> tuple[int, int]:
    """Rows x columns for laying C channels out as a 2-D mosaic: 16 x 16 for 256 (the reference)."""
    rows = max(d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0)
    return rows, channels // rows


def _neighbour_differences(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared left/right/up/down differences (zero outside) of a (..., H, W) map."""
    p = F.pad(x, (1, 1, 1, 1))
    centre = p[..., 1:-1, 1:-1]
    return ((centre - p[..., 1:-1, :-2]) ** 2 + (centre - p[..., 1:-1, 2:]) ** 2 +
            (centre - p[..., :-2, 1:-1]) ** 2 + (centre - p[..., 2:, 1:-1]) ** 2)


def feature_spatial(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """"Spatial" (Spa): compare the four directional neighbour differences of both features.

    Each ``(B, C, H, W)`` feature's memory is viewed as ``(1, B, rH, cW)`` (r x c = C; 16 x 16 for
    C = 256, exactly the reference's reshape) and averaged over B; the loss is the mean over
    positions of the summed squared differences between student's and teacher's left, right,
    up and down differences (3x3 kernels with one -1/+1 pair, zero padding). The differences
    are linear, so they are taken once of the student-teacher gap.
    """
    b, c, h, w = student.shape
    rows, cols = _channel_grid(c)
    gap = (student.float() - teacher.float()).reshape(b, rows * h, cols * w).mean(dim=0)
    return _neighbour_differences(gap).mean()


def soft_foreground(feature: torch.Tensor, sharpness: float) -> torch.Tensor:
    """Differentiable mask of elements whose softmax (over all elements) exceeds its mean.

    ``sigmoid(k * (p / mean(p) - 1))``; ``p / mean(p) = N * softmax`` is computed in the log
    domain. As ``k`` grows this tends to the reference's hard ``p > mean(p)`` mask, whose
    gradient is zero everywhere.
    """
    x = feature.float().reshape(-1)
    relative = torch.exp(x - torch.logsumexp(x, dim=0) + math.log(x.numel()))
    return torch.sigmoid(sharpness * (relative - 1.0))


def feature_threshold(student: torch.Tensor, teacher: torch.Tensor, sharpness: float = 20.0) -> torch.Tensor:
    """"Response-threshold": MSE between the soft foreground masks of both features, times 5."""
    return F.mse_loss(soft_foreground(student, sharpness), soft_foreground(teacher, sharpness)) * 5.0


FEATURE_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "l2": feature_l2,
    "spatial": feature_spatial,
    "threshold": feature_threshold,
}


def mutual_mse(feature: torch.Tensor, elected: torch.Tensor, divisor: float = 60.0) -> torch.Tensor:
    """MSE between a student's cls feature and the elected student's (a fixed, detached target) / 60."""
    return F.mse_loss(feature.float(), elected.detach().float()) / divisor
