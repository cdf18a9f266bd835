"""Typed tracker configuration, read from the model YAML files in ``models/``.

One :class:`TrackerConfig` flows from the model file (its defaults), through the CLI or ROS
parameters (overrides), into the tracker. No global mutable config.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from mlkd_tracker.crop import CROP_MODES
from mlkd_tracker.errors import InputError, ModelFileError

DEFAULT_MODEL_CONFIG = "mlkd_track.yaml"
SIAMRPN_MODEL_CONFIG = "mlkd_track_siamrpn.yaml"  # the SiamRPN reference-architecture model


DECODERS = ("anchors", "points")
_RENAMED_KEYS = {"anchor_stride": "stride"}  # files written before NanoTrack support


@dataclass(frozen=True)
class TrackerConfig:
    """Siamese tracking hyper-parameters (pysot ``cfg.TRACK`` / ``cfg.ANCHOR`` / ``cfg.POINT``) plus lost detection.

    ``decoder`` names how the network's maps become boxes: ``anchors`` (SiamRPN: 2A cls and 4A
    delta channels per position) or ``points`` (NanoTrack's BAN head: one cls pair and the ltrb
    distances per position). Everything else (crops, penalties, window, smoothing) is shared.
    """

    exemplar_size: int = 127          # template crop side (px)
    instance_size: int = 287          # search crop side while tracking (px)
    context_amount: float = 0.5       # context added around the box: ctx = amount * (w + h)
    penalty_k: float = 0.14           # scale / aspect-ratio change penalty
    window_influence: float = 0.428   # cosine-window blend weight
    lr: float = 0.30                  # size update rate (times penalty * score)
    decoder: str = "anchors"          # anchors (SiamRPN) or points (NanoTrack)
    stride: int = 8                   # crop pixels between neighbouring score-map positions
    output_size: int = 0              # score-map side (NanoTrack's OUTPUT_SIZE); 0 = derived, see score_size
    anchor_ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    anchor_scales: tuple[float, ...] = (8.0,)
    min_size: float = 10.0            # smallest box side kept after clipping (px)
    lost_threshold: float = 0.3       # best score below this counts as a weak frame
    lost_frames: int = 5              # consecutive weak frames before status becomes "lost"
    crop: str = "fast"                # "fast" (one warp) or "pysot" (its get_subwindow, pixel for pixel); crop.py

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor_ratios", tuple(float(r) for r in self.anchor_ratios))
        object.__setattr__(self, "anchor_scales", tuple(float(s) for s in self.anchor_scales))
        problems = []
        if self.exemplar_size <= 0 or self.instance_size <= self.exemplar_size:
            problems.append("need 0 < exemplar_size < instance_size")
        if self.decoder not in DECODERS:
            problems.append(f"decoder must be one of {list(DECODERS)}, got {self.decoder!r}")
        if self.stride <= 0 or self.output_size < 0:
            problems.append("stride must be > 0 and output_size >= 0 (0 = derived from the crop sizes)")
        elif self.output_size == 0 and (self.instance_size - self.exemplar_size) % self.stride:
            problems.append("instance_size - exemplar_size must be a multiple of stride (or give output_size)")
        if not 0.0 <= self.window_influence <= 1.0:
            problems.append("window_influence must be in [0, 1]")
        if not 0.0 <= self.lr <= 1.0:
            problems.append("lr must be in [0, 1]")
        if self.penalty_k < 0 or self.context_amount < 0 or self.min_size <= 0:
            problems.append("penalty_k and context_amount must be >= 0, min_size > 0")
        if not self.anchor_ratios or not self.anchor_scales or min(self.anchor_ratios + self.anchor_scales) <= 0:
            problems.append("anchor ratios and scales must be non-empty and positive")
        if not 0.0 <= self.lost_threshold <= 1.0 or self.lost_frames < 1:
            problems.append("lost_threshold must be in [0, 1] and lost_frames >= 1")
        if self.crop not in CROP_MODES:
            problems.append(f"crop must be one of {', '.join(CROP_MODES)}, got {self.crop!r}")
        if problems:
            raise InputError("invalid tracker config: " + "; ".join(problems))

    @property
    def anchor_num(self) -> int:
        """Boxes predicted per score-map position: one per anchor shape, or 1 for points."""
        return len(self.anchor_ratios) * len(self.anchor_scales) if self.decoder == "anchors" else 1

    @property
    def score_size(self) -> int:
        """Side of the score map: ``output_size``, or (instance - exemplar) / stride + 1 (21 for SiamRPN's 287/127)."""
        return self.output_size or (self.instance_size - self.exemplar_size) // self.stride + 1

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrackerConfig":
        """Build from a mapping, rejecting unknown keys by name."""
        values = {_RENAMED_KEYS.get(k, k): v for k, v in values.items()}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{source}: unknown tracking parameter(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise InputError(f"{source}: {exc}") from exc

    def replace(self, **overrides: Any) -> "TrackerConfig":
        """A copy with some values changed (validated like the original)."""
        return TrackerConfig.from_dict({**dataclasses.asdict(self), **overrides}, "overrides")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["anchor_ratios"] = list(self.anchor_ratios)
        d["anchor_scales"] = list(self.anchor_scales)
        return d


ARCHITECTURES = ("siamrpn", "nanotrack")


@dataclass(frozen=True)
class ModelSpec:
    """A model YAML: architecture, tracking values and (optionally) a weights file beside it.

    ``arch`` is ``siamrpn`` (with ``width``) or ``nanotrack`` (with ``version`` 1, 2 or 3);
    ``enhancer`` puts DarkLighter in front (the MLKD teacher).
    """

    name: str
    tracking: TrackerConfig
    arch: str = "siamrpn"
    width: float = 1.0
    version: int = 2
    enhancer: bool = False
    weights: Path | None = None
    extra: dict = field(default_factory=dict)


def models_dir() -> Path:
    """Folder holding the bundled model configs: the source tree's ``models/`` (a checkout, editable or
    symlink install), else the ROS package share, else the pip-installed share."""
    candidates = [Path(__file__).resolve().parent.parent / "models",
                  Path(sys.prefix) / "share" / "mlkd_tracker" / "models"]
    try:  # a sourced ROS 2 workspace
        from ament_index_python.packages import get_package_share_directory
        candidates.insert(1, Path(get_package_share_directory("mlkd_tracker")) / "models")
    except Exception:  # noqa: BLE001 - not a ROS install, or the package is not in the index
        pass
    for path in candidates:
        if (path / DEFAULT_MODEL_CONFIG).is_file():
            return path
    raise ModelFileError(f"bundled model configs not found (looked in {', '.join(map(str, candidates))})")


def default_model_path() -> Path:
    return models_dir() / DEFAULT_MODEL_CONFIG


def load_model_spec(path: str | os.PathLike) -> ModelSpec:
    """Read a model YAML (see ``models/mlkd_track.yaml``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"model config not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ModelFileError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"model config {path} must be a mapping, got {type(data).__name__}")
    arch = data.get("arch", {}) or {}
    if arch.get("type", "siamrpn") not in ARCHITECTURES:
        raise ModelFileError(f"model config {path}: arch.type must be one of {list(ARCHITECTURES)}, "
                             f"got {arch.get('type')!r}")
    weights = data.get("weights")
    return ModelSpec(
        name=str(data.get("name", path.stem)),
        tracking=TrackerConfig.from_dict(data.get("tracking", {}) or {}, str(path)),
        arch=str(arch.get("type", "siamrpn")),
        width=float(arch.get("width", 1.0)),
        version=int(arch.get("version", 2)),
        enhancer=bool(arch.get("enhancer", False)),
        weights=(path.parent / weights) if weights else None,
        extra={k: v for k, v in data.items() if k not in {"name", "tracking", "arch", "weights"}},
    )


def architecture_tracker_config(arch: Mapping[str, Any]) -> TrackerConfig:
    """Tracking values for a weights file that carries none, by its architecture (``model.arch()``):
    the authors' values for NanoTrack (``models/nanotrack_vN.yaml``), the MLKD reference values of the
    SiamRPN model (``models/mlkd_track_siamrpn.yaml``) for SiamRPN."""
    if arch.get("type") == "nanotrack":
        return load_model_spec(models_dir() / f"nanotrack_v{arch['version']}.yaml").tracking
    return load_model_spec(models_dir() / SIAMRPN_MODEL_CONFIG).tracking


def architecture_name(arch: Mapping[str, Any]) -> str:
    """A model's architecture in words, from ``model.arch()`` or a backend's info: ``NanoTrack v2``,
    ``SiamRPN-AlexNet width 0.5``, with ``+ DarkLighter`` for a teacher (an enhancer in front)."""
    if arch.get("type") == "nanotrack":
        name = f"NanoTrack v{arch['version']}"
    else:
        name = f"SiamRPN-AlexNet width {float(arch.get('width', 1.0)):g}"
    return name + (" + DarkLighter" if arch.get("enhancer") else "")
