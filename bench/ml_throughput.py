"""ML-mode training throughput: the mutual-learning room (teacher once per batch) against a loop
that recomputes the teacher for each of the three students, in one run.

All loops train the same three students (same losses, election, mutual term, update) on the
same batches; they differ only in how often the teacher runs:

- ``room``: :class:`mlkd_training.room.Room`, the teacher once per batch under ``no_grad``
  (BatchNorm folded into its convolutions, as the trainer runs it);
- ``per-student teacher``: the same teacher recomputed for every student, also under ``no_grad``;
- ``per-student teacher, reference style``: as the MLKD reference code runs it, the teacher
  recomputed for every student with autograd on (its SiamRPN parameters trainable, the KD target
  not detached, so each backward also runs through the teacher).

The teacher is the real one: ``SiamRPN(width, enhancer=DarkLighter())``. Weights are random
(throughput does not depend on them). Crops are 127 / 255 as in training. The loops take
turns step by step, so load changes on a shared machine affect them alike. Prints a table,
writes JSON. Usage::

    python bench/ml_throughput.py --widths 0.25,0.5,1.0 --batch 8 --steps 3 --json bench_ml_throughput.json
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.nets.siamrpn import SiamRPN, fold_batchnorm  # noqa: E402
from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.losses import gated_distillation, mutual_mse, response_kl, tracking_losses  # noqa: E402
from mlkd_training.room import Learner, LossConfig, Room, elect, peak_ratio  # noqa: E402
from mlkd_training.targets import AnchorTargets  # noqa: E402

FEATURES = ("l2", "spatial", "threshold")


def make_batch(batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Random 127 / 255 crops with anchor targets for a jittered box near the centre."""
    rng = np.random.default_rng(seed)
    targets = AnchorTargets()
    labels = []
    for _ in range(batch):
        cx, cy = 127 + rng.uniform(-40, 40, 2)
        w, h = rng.uniform(30, 90, 2)
        labels.append(targets((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), False, rng))
    g = torch.Generator().manual_seed(seed)
    return {"template": torch.rand(batch, 3, 127, 127, generator=g) * 255,
            "search": torch.rand(batch, 3, 255, 255, generator=g) * 255,
            "label_cls": torch.from_numpy(np.stack([l.cls for l in labels])),
            "label_loc": torch.from_numpy(np.stack([l.delta for l in labels])),
            "label_loc_weight": torch.from_numpy(np.stack([l.weight for l in labels]))}


def make_learners(width: float, seed: int) -> list[Learner]:
    torch.manual_seed(seed)
    learners = []
    for feature in FEATURES:
        model = SiamRPN(width).train()
        model.rpn_head.cls.head[3].requires_grad_(False)
        model.rpn_head.loc.head[3].requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        learners.append(Learner(f"student_{feature}", model, torch.optim.SGD(params, lr=1e-3, momentum=0.9),
                                feature))
    return learners


class PerStudentTeacherRoom(Room):
    """The room, but the teacher is recomputed for every student (optionally with autograd, as the reference)."""

    def __init__(self, *args, reference_grad: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference_grad = reference_grad

    def step(self, batch, autocast=None, scaler=None):
        c = self.losses
        outs, totals, logs = [], [], {}
        for learner in self.learners:
            with torch.set_grad_enabled(self.reference_grad):
                t_out = self.teacher(batch["template"], batch["search"])
            t_losses = tracking_losses(t_out, batch, c.cls_weight, c.loc_weight)
            out = learner.model(batch["template"], batch["search"])
            base = tracking_losses(out, batch, c.cls_weight, c.loc_weight)
            kd, _ = gated_distillation({k: base[k].detach() for k in ("cls", "loc")},
                                       {k: t_losses[k].detach() for k in ("cls", "loc")},
                                       *response_kl(out, t_out, c.temperature), c.kd_weight)
            feature = self._feature_fns[learner.feature_loss](out["cls_feature"], t_out["cls_feature"])
            outs.append(out)
            totals.append(base["total"] + kd + feature)
        elected = elect([float(peak_ratio(o["cls"]).mean()) for o in outs])
        target = outs[elected]["cls_feature"].detach()
        totals = [t if i == elected else t + mutual_mse(outs[i]["cls_feature"], target, c.mutual_divisor)
                  for i, t in enumerate(totals)]
        self._update(totals, logs, None)
        if self.reference_grad:
            self.teacher.zero_grad(set_to_none=True)  # the reference computes these and never uses them
        return logs


def measure(loops: dict[str, Room], batches: list[dict[str, torch.Tensor]], warmup: int,
            teacher: torch.nn.Module) -> tuple[dict[str, float], float]:
    """Pairs per second of each loop, and the teacher's forward seconds per batch.

    The loops take turns, one step each, so that a load change on a shared machine hits them
    alike; the first ``warmup`` rounds are not timed.
    """
    seconds = {name: 0.0 for name in loops}
    teacher_s, pairs = 0.0, 0
    for i, batch in enumerate(batches):
        timed = i >= warmup
        for name, room in loops.items():
            t0 = time.perf_counter()
            room.step(batch)
            seconds[name] += (time.perf_counter() - t0) * timed
        t0 = time.perf_counter()
        with torch.no_grad():
            teacher(batch["template"], batch["search"])
        teacher_s += (time.perf_counter() - t0) * timed
        pairs += len(batch["template"]) * timed
    return {name: pairs / s for name, s in seconds.items()}, teacher_s / (len(batches) - warmup)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--widths", default="0.25,0.5,1.0", help="backbone widths of teacher and students")
    p.add_argument("--batch", type=int, default=8, help="pairs per batch")
    p.add_argument("--steps", type=int, default=3, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", default="bench_ml_throughput.json", help="where to write the figures")
    args = p.parse_args()
    from mlkd_tracker.nets.darklighter import DarkLighter

    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [make_batch(args.batch, seed) for seed in range(args.warmup + args.steps)]
    rows, report = [], {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                        "batch": args.batch, "steps": args.steps, "torch": torch.__version__, "widths": {}}
    for width in (float(w) for w in args.widths.split(",")):
        torch.manual_seed(0)
        reference_teacher = SiamRPN(width, enhancer=DarkLighter()).eval().requires_grad_(False)
        teacher = fold_batchnorm(reference_teacher)
        reference_teacher.backbone.requires_grad_(True)  # the reference trains these layers, never DarkLighter
        reference_teacher.rpn_head.requires_grad_(True)
        losses = LossConfig()
        loops = {
            "room (teacher once per batch)": Room(make_learners(width, 1), teacher, losses, mutual=True),
            "per-student teacher": PerStudentTeacherRoom(make_learners(width, 1), teacher, losses, mutual=True),
            "per-student teacher, reference style": PerStudentTeacherRoom(
                make_learners(width, 1), reference_teacher, losses, mutual=True, reference_grad=True),
        }
        speeds, teacher_s = measure(loops, batches, args.warmup, teacher)
        ours = speeds["room (teacher once per batch)"]
        room_s = args.batch / ours
        report["widths"][str(width)] = {
            **{name: {"pairs_per_s": s, "room_speedup": ours / s} for name, s in speeds.items()},
            "teacher_forward_s_per_batch": teacher_s, "room_step_s": room_s}
        print(f"width {width:g}: teacher forward {teacher_s:.2f} s of a {room_s:.2f} s room step "
              f"({100 * teacher_s / room_s:.0f}%); recomputing it for 3 students adds 2 more", flush=True)
        rows += [[width, name, s, ours / s] for name, s in speeds.items()]
        print(format_table(["width", "loop", "pairs/s", "room speed-up"], rows[-3:], floatfmt=".2f"), flush=True)
    print()
    print(format_table(["width", "loop", "pairs/s", "room speed-up"], rows, floatfmt=".2f"))
    write_json_atomic(args.json, report)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
