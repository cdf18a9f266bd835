"""The mutual-learning room (MLKD_METHOD.md section 5) and the training step every mode shares.

A room holds one or more learners and, optionally, a frozen teacher:

- ``base`` / ``teacher`` modes: one learner, no teacher, base loss only;
- ``kd``: one student, the teacher, gated response distillation plus one feature loss;
- ``ml``: three students (L2, spatial, threshold feature losses) and the teacher. The teacher
  runs once per batch for all students. Each batch elects the student whose foreground map is
  most peaked (:func:`peak_ratio`, averaged over the batch); it learns from its own loss only,
  the others add ``MSE(own cls feature, elected cls feature) / 60`` with the elected feature
  detached. Baseline learners can share the room (and the teacher's pass) without taking part in
  the election: single-KD students (``mutual=False``) and a no-KD one (``distill=False``).

Under DDP the figures that steer the step (election ratios, the KD gate's losses, whether a
loss is usable) are averaged over all processes first, so every rank takes the same branch and
the method behaves as on one device with the global batch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from mlkd_training.losses import (FEATURE_LOSSES, cls_pairs, feature_threshold, gated_distillation, mutual_mse,
                                  response_kl, tracking_losses)


KD_CASES = ("none", "cls", "loc", "both")  # which KD term the gate added (logged as this index)


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (pysot / MLKD ``cfg.TRAIN`` and ``cfg.KD``)."""

    cls_weight: float = 1.0
    loc_weight: float = 1.2
    kd_weight: float = 1e4
    temperature: float = 10.0
    mutual_divisor: float = 60.0
    threshold_sharpness: float = 20.0
    max_loss: float = 1e4   # pysot skips an update whose loss is NaN, infinite or above this


@dataclass
class Learner:
    """One trained network: its name, forward module (maybe DDP-wrapped), optimizer and feature loss."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    feature_loss: str | None = None
    params: list[nn.Parameter] = field(default_factory=list)  # the ones it clips and steps
    mutual: bool | None = None    # takes part in the election (None: as the room says)
    distill: bool = True          # learns from the teacher (gated KL, feature loss) when the room has one

    def __post_init__(self) -> None:
        if not self.params:
            self.params = [p for g in self.optimizer.param_groups for p in g["params"]]


def foreground_map(cls: torch.Tensor) -> torch.Tensor:
    """``(B, S, S)`` foreground probability per position (max over the anchor shapes)."""
    return F.softmax(cls_pairs(cls), dim=-1)[..., 1].amax(dim=1)


def peak_ratio(cls: torch.Tensor) -> torch.Tensor:
    """``(B,)`` highest / second-highest local maximum of each sample's 2-D foreground map.

    A local maximum is a position no smaller than its 8 neighbours; the second one is looked for
    outside the 3x3 neighbourhood of the first, so a flat-topped peak (saturated neighbours, both
    exactly 1.0 in float32) counts once. A map with a single local maximum is maximally
    unambiguous: its ratio is taken against the map's minimum. (The reference code intends this
    but runs ``argrelmax`` over the flattened batch and compares the last two maxima it finds.)
    """
    fg = foreground_map(cls.detach())
    b, h, w = fg.shape
    neighbourhood = F.max_pool2d(fg.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    peaks = torch.where(fg >= neighbourhood, fg, torch.full_like(fg, -1.0)).reshape(b, -1)
    first, at = peaks.max(dim=1)
    rows, cols = torch.arange(h, device=fg.device), torch.arange(w, device=fg.device)
    near = (((rows[None, :, None] - (at // w)[:, None, None]).abs() <= 1)
            & ((cols[None, None, :] - (at % w)[:, None, None]).abs() <= 1)).reshape(b, -1)
    second = peaks.masked_fill(near, -1.0).amax(dim=1)
    floor = fg.reshape(b, -1).amin(dim=1)
    second = torch.where(second >= 0, second, floor)
    return first / second.clamp(min=1e-12)


def elect(ratios: list[float]) -> int:
    """Index of the most confident student; a tie goes to the earlier one (as the reference)."""
    return max(range(len(ratios)), key=lambda i: (ratios[i], -i))


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def all_mean(values: torch.Tensor) -> torch.Tensor:
    """Average a small tensor over all DDP processes (identity on one process)."""
    if not _distributed():
        return values
    values = values.clone()
    torch.distributed.all_reduce(values)
    return values / torch.distributed.get_world_size()


class Room:
    """Computes every learner's loss for a batch and applies one optimisation step to each."""

    def __init__(self, learners: list[Learner], teacher: nn.Module | None = None,
                 losses: LossConfig | None = None, mutual: bool | None = None,
                 grad_clip: float = 10.0, decoder: str = "anchors"):
        self.learners = learners
        self.decoder = decoder  # the head kind: which base losses apply
        self.teacher = teacher
        self.losses = losses or LossConfig()
        self.mutual = len(learners) > 1 if mutual is None else mutual
        self.grad_clip = grad_clip
        self.elections = [0] * len(learners)
        self.skipped = [0] * len(learners)
        if teacher is None and any(l.feature_loss for l in learners):
            raise ValueError("feature distillation needs a teacher")
        self.electors = [i for i, l in enumerate(learners) if (self.mutual if l.mutual is None else l.mutual)]
        self._feature_fns: dict[str, Callable[..., torch.Tensor]] = {
            **FEATURE_LOSSES, "threshold": partial(feature_threshold, sharpness=self.losses.threshold_sharpness)}

    def _learner_loss(self, learner: Learner, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                      teacher: dict[str, Any] | None, logs: dict[str, float]) -> torch.Tensor:
        c = self.losses
        base = tracking_losses(out, batch, c.cls_weight, c.loc_weight, self.decoder)
        total = base["total"]
        logs.update({f"{learner.name}/cls": base["cls"].item(), f"{learner.name}/loc": base["loc"].item()})
        if teacher is not None and learner.distill:
            cls_kl, loc_kl = response_kl(out, teacher["out"], c.temperature)
            mine = all_mean(torch.stack([base["cls"].detach(), base["loc"].detach()]))
            kd, case = gated_distillation({"cls": mine[0], "loc": mine[1]}, teacher["losses"], cls_kl, loc_kl,
                                          c.kd_weight)
            total = total + kd
            logs.update({f"{learner.name}/kd": kd.item(), f"{learner.name}/kd_cls_kl": cls_kl.item(),
                         f"{learner.name}/kd_loc_kl": loc_kl.item(),
                         f"{learner.name}/kd_case": float(KD_CASES.index(case))})
        if learner.feature_loss:
            feat = self._feature_fns[learner.feature_loss](out["distill_feature"], teacher["out"]["distill_feature"])
            total = total + feat
            logs[f"{learner.name}/feature_{learner.feature_loss}"] = feat.item()
        return total

    def step(self, batch: dict[str, torch.Tensor], autocast: contextlib.AbstractContextManager | None = None,
             scaler: torch.amp.GradScaler | None = None) -> dict[str, float]:
        """Forward every learner (and the teacher once), elect, backward once, clip, step. Returns log scalars."""
        autocast = autocast or contextlib.nullcontext()
        template, search = batch["template"], batch["search"]
        logs: dict[str, float] = {}
        teacher = None
        if self.teacher is not None:
            with torch.no_grad(), autocast:
                t_out = self.teacher(template, search)
            t_losses = tracking_losses(t_out, batch, self.losses.cls_weight, self.losses.loc_weight, self.decoder)
            mean = all_mean(torch.stack([t_losses["cls"], t_losses["loc"]]))
            teacher = {"out": t_out, "losses": {"cls": mean[0], "loc": mean[1]}}
            logs.update({"teacher/cls": mean[0].item(), "teacher/loc": mean[1].item()})
        outs, totals = [], []
        for learner in self.learners:
            with autocast:
                out = learner.model(template, search)
            outs.append(out)
            totals.append(self._learner_loss(learner, out, batch, teacher, logs))
        if len(self.electors) > 1:
            ratios = all_mean(torch.stack([peak_ratio(outs[i]["cls"]).mean() for i in self.electors]))
            elected = self.electors[elect(ratios.tolist())]
            self.elections[elected] += 1
            target = outs[elected]["cls_feature"].detach()
            for i, ratio in zip(self.electors, ratios.tolist()):
                name = self.learners[i].name
                logs[f"{name}/peak_ratio"] = ratio
                if i != elected:
                    ml = mutual_mse(outs[i]["cls_feature"], target, self.losses.mutual_divisor)
                    totals[i] = totals[i] + ml
                    logs[f"{name}/mutual"] = ml.item()
            logs["elected"] = float(elected)
        self._update(totals, logs, scaler)
        return logs

    def _update(self, totals: list[torch.Tensor], logs: dict[str, float], scaler) -> None:
        values = torch.stack([t.detach().float() for t in totals])
        usable = torch.isfinite(values) & (values <= self.losses.max_loss)
        usable = (all_mean(usable.float()) == 1.0).tolist()  # one process's bad loss skips that learner everywhere
        for i, learner in enumerate(self.learners):
            learner.optimizer.zero_grad(set_to_none=True)
            logs[f"{learner.name}/total"] = float(values[i])
            self.skipped[i] += not usable[i]
        # every learner runs backward (a skipped one with weight 0) so DDP's gradient sync stays in step
        loss = torch.stack([t if ok else t * 0.0 for t, ok in zip(totals, usable)]).sum()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        for learner, ok in zip(self.learners, usable):
            if not ok:
                learner.optimizer.zero_grad(set_to_none=True)
                continue
            if scaler is not None:
                scaler.unscale_(learner.optimizer)
            norm = float(torch.nn.utils.clip_grad_norm_(learner.params, self.grad_clip))
            logs[f"{learner.name}/grad_norm"] = norm
            if scaler is not None:
                scaler.step(learner.optimizer)
            else:
                learner.optimizer.step()
        if scaler is not None and any(usable):  # GradScaler.update needs a step it can read inf checks from
            scaler.update()
