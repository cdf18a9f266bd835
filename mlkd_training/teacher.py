"""The MLKD teacher: DarkLighter (frozen) in front of the tracker's backbone, as the reference builds it.

The teacher is an ordinary tracker network (:class:`~mlkd_tracker.nets.SiamRPN` or
:class:`~mlkd_tracker.nets.nanotrack.NanoTrack`) with an ``enhancer``: every template and search
crop (raw BGR 0..255) goes through DarkLighter before the backbone (see
:mod:`mlkd_tracker.nets.darklighter` for the pixel convention). Saved as one checkpoint
(``enhancer.e_conv*`` next to the tracker's keys), it runs with ``mlkd track --model`` and is
the distillation source of the students.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from mlkd_tracker.config import architecture_tracker_config
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets.checkpoint import checkpoint_tracking, load_network, save_checkpoint
from mlkd_tracker.nets.darklighter import DarkLighter, load_darklighter
from mlkd_tracker.nets.nanotrack import NanoTrack
from mlkd_tracker.nets.siamrpn import SiamRPN

Network = SiamRPN | NanoTrack


def teacher_name(model: Network) -> str:
    return f"MLKD teacher (DarkLighter + {'NanoTrack' if isinstance(model, NanoTrack) else 'SiamRPN'})"


def teacher_arch(model: Network) -> dict[str, Any]:
    return {**model.arch(), "enhancer": "darklighter"}


def freeze_enhancer(teacher: Network) -> Network:
    """Stop gradients into the teacher's enhancer (the students learn; the enhancer stays as loaded)."""
    enhancer = getattr(teacher, "enhancer", None)
    if enhancer is None:
        raise ValueError("this tracker has no enhancer: it is a student, not a teacher")
    for p in enhancer.parameters():
        p.requires_grad_(False)
    enhancer.eval()
    return teacher


def build_teacher(enhancer: DarkLighter | str | os.PathLike, tracker: Network | str | os.PathLike,
                  freeze: bool = True) -> tuple[Network, dict[str, Any]]:
    """Put DarkLighter in front of a tracker: ``(teacher, meta)`` ready for :func:`save_teacher`.

    ``enhancer``: a :class:`DarkLighter` or its weights file (official, ``train-enhancer`` output or
    another teacher). ``tracker``: a SiamRPN or NanoTrack, or a checkpoint of one (pysot, MLKD, the
    NanoTrack releases, ours); if it already holds an enhancer, that one is replaced. The tracking
    values of the tracker file come along (a file without them: those ``checkpoint_tracking`` gives it).
    """
    sources: dict[str, str] = {}
    tracking: Mapping[str, Any] | None = None
    if not isinstance(enhancer, DarkLighter):
        sources["enhancer"] = str(enhancer)
        enhancer, _ = load_darklighter(enhancer)
    if not isinstance(tracker, nn.Module):
        sources["tracker"] = str(tracker)
        tracker, tracker_meta = load_network(tracker)
        tracking = checkpoint_tracking(tracker_meta, tracker.arch(), sources["tracker"]).to_dict()
    teacher = copy.deepcopy(tracker)
    teacher.enhancer = copy.deepcopy(enhancer)
    teacher.eval()
    if freeze:
        freeze_enhancer(teacher)
    meta = {"name": teacher_name(teacher), "arch": teacher_arch(teacher),
            "tracking": dict(tracking) if tracking else architecture_tracker_config(teacher.arch()).to_dict(),
            "sources": sources}
    return teacher, meta


def save_teacher(teacher: Network, path: str | os.PathLike, meta: Mapping[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write the teacher as one checkpoint (atomic) that ``mlkd track`` and the trainers load."""
    if getattr(teacher, "enhancer", None) is None:
        raise ValueError("save_teacher needs a tracker with an enhancer")
    meta = dict(meta or {"name": teacher_name(teacher), "arch": teacher_arch(teacher)})
    return save_checkpoint(teacher, path, meta, half=half)


def load_teacher(path: str | os.PathLike, freeze: bool = True) -> tuple[Network, dict[str, Any]]:
    """A teacher checkpoint (ours or an MLKD reference one), enhancer frozen; eval mode, CPU fp32."""
    model, meta = load_network(path)
    if getattr(model, "enhancer", None) is None:
        raise ModelFileError(f"{path} holds no enhancer (enhancer.e_conv* keys): it is a student tracker, "
                             f"not a teacher; build one with 'mlkd build-teacher'")
    return (freeze_enhancer(model) if freeze else model), meta
