"""The MLKD teacher: DarkLighter (frozen) in front of the SiamRPN backbone, as the reference builds it.

The teacher is an ordinary :class:`~mlkd_tracker.nets.SiamRPN` with ``enhancer=DarkLighter()``:
every template and search crop (raw BGR 0..255) goes through the enhancer before the backbone
(see :mod:`mlkd_tracker.nets.darklighter` for the pixel convention). Saved as one checkpoint
(``enhancer.e_conv*`` next to the SiamRPN keys), it runs with ``mlkd track --model`` and is the
distillation source of the students.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

from mlkd_tracker.config import TrackerConfig, default_tracker_config
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets.checkpoint import load_network, save_checkpoint
from mlkd_tracker.nets.darklighter import DarkLighter, load_darklighter
from mlkd_tracker.nets.siamrpn import SiamRPN

TEACHER_NAME = "MLKD teacher (DarkLighter + SiamRPN)"


def freeze_enhancer(teacher: SiamRPN) -> SiamRPN:
    """Stop gradients into the teacher's enhancer (the students learn; the enhancer stays as loaded)."""
    enhancer = getattr(teacher, "enhancer", None)
    if enhancer is None:
        raise ValueError("this SiamRPN has no enhancer: it is a student, not a teacher")
    for p in enhancer.parameters():
        p.requires_grad_(False)
    enhancer.eval()
    return teacher


def build_teacher(enhancer: DarkLighter | str | os.PathLike, tracker: SiamRPN | str | os.PathLike,
                  freeze: bool = True) -> tuple[SiamRPN, dict[str, Any]]:
    """Put DarkLighter in front of a SiamRPN: ``(teacher, meta)`` ready for :func:`save_teacher`.

    ``enhancer``: a :class:`DarkLighter` or its weights file (official, ``train-enhancer`` output or
    another teacher). ``tracker``: a SiamRPN or a pysot / MLKD-format checkpoint; if it already
    holds an enhancer, that one is replaced. The tracking values of the tracker file come along.
    """
    sources: dict[str, str] = {}
    tracking: Mapping[str, Any] | None = None
    if not isinstance(enhancer, DarkLighter):
        sources["enhancer"] = str(enhancer)
        enhancer, _ = load_darklighter(enhancer)
    if not isinstance(tracker, SiamRPN):
        sources["tracker"] = str(tracker)
        tracker, tracker_meta = load_network(tracker)
        if isinstance(tracker_meta.get("tracking"), dict):
            tracking = TrackerConfig.from_dict(tracker_meta["tracking"], sources["tracker"]).to_dict()
    teacher = SiamRPN(width=tracker.width, anchor_num=tracker.rpn_head.anchor_num, enhancer=copy.deepcopy(enhancer))
    teacher.backbone.load_state_dict(tracker.backbone.state_dict())
    teacher.rpn_head.load_state_dict(tracker.rpn_head.state_dict())
    teacher.eval()
    if freeze:
        freeze_enhancer(teacher)
    meta = {"name": TEACHER_NAME, "arch": {"width": teacher.width, "enhancer": "darklighter"},
            "tracking": dict(tracking) if tracking else default_tracker_config().to_dict(), "sources": sources}
    return teacher, meta


def save_teacher(teacher: SiamRPN, path: str | os.PathLike, meta: Mapping[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write the teacher as one checkpoint (atomic) that ``mlkd track`` and the trainers load."""
    if getattr(teacher, "enhancer", None) is None:
        raise ValueError("save_teacher needs a SiamRPN with an enhancer")
    meta = dict(meta or {"name": TEACHER_NAME, "arch": {"width": teacher.width, "enhancer": "darklighter"}})
    return save_checkpoint(teacher, path, meta, half=half)


def load_teacher(path: str | os.PathLike, freeze: bool = True) -> tuple[SiamRPN, dict[str, Any]]:
    """A teacher checkpoint (ours or an MLKD reference one), enhancer frozen; eval mode, CPU fp32."""
    model, meta = load_network(path)
    if getattr(model, "enhancer", None) is None:
        raise ModelFileError(f"{path} holds no enhancer (enhancer.e_conv* keys): it is a student tracker, "
                             f"not a teacher; build one with 'mlkd build-teacher'")
    return (freeze_enhancer(model) if freeze else model), meta
