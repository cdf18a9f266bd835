"""Typed training configuration, read from the ``models/train_*.yaml`` files.

One :class:`TrainConfig` per run: mode, networks to start from, data, pair sampling, anchor
targets, optimisation and loss weights. Values mirror the pysot / MLKD reference
(``experiments/*/config.yaml`` and ``pysot/core/config.py``); the YAML files say where.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from mlkd_tracker.errors import InputError
from mlkd_training.losses import FEATURE_LOSSES
from mlkd_training.pairs import PairConfig
from mlkd_training.room import LossConfig
from mlkd_training.targets import TargetConfig

MODES = ("base", "teacher", "kd", "ml")


@dataclass(frozen=True)
class DataSource:
    """A training source: a dataset folder (any layout the readers know) or a crop cache."""

    path: str
    num_use: int = -1               # videos per pass (-1: all; more repeats them, as pysot NUM_USE)
    frame_range: int | None = None  # overrides pairs.frame_range for this source


@dataclass(frozen=True)
class Schedule:
    """One LR segment: ``start`` -> ``end`` over ``epochs`` (log-spaced; the warm-up is geometric steps)."""

    start: float
    end: float
    epochs: int = 0


@dataclass(frozen=True)
class BackboneTraining:
    """pysot ``cfg.BACKBONE``: which layers train (the network's stage names: SiamRPN ``layer1`` ...
    ``layer5``, NanoTrack ``features``), from which epoch, at what LR multiple."""

    layers: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4", "layer5")
    train_epoch: int = 0
    lr_mult: float = 0.1


@dataclass(frozen=True)
class OptimConfig:
    """SGD and the LR schedule (pysot ``cfg.TRAIN``): warm-up then log decay, stepped per epoch.

    As in pysot, ``warmup`` and ``lr`` give the schedule's shape and ``base_lr`` its scale: a parameter
    group's LR in an epoch is ``schedule(epoch) * base_lr * lr_mult / lr.start``. Lowering ``lr`` and
    ``warmup`` together changes nothing; lower ``base_lr`` (with them, to keep the values readable).
    """

    epochs: int = 50
    batch_size: int = 32            # per process (per GPU), as pysot
    base_lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    lr: Schedule = Schedule(start=0.01, end=0.0005)
    warmup: Schedule = Schedule(start=0.005, end=0.01, epochs=5)
    backbone: BackboneTraining = BackboneTraining()
    freeze_head_output: bool = False  # MLKD students: the last 1x1 conv of each head (head.3) stays fixed


@dataclass(frozen=True)
class TrainConfig:
    """Everything one ``mlkd train`` run needs."""

    mode: str = "base"
    width: float | None = None          # backbone width; None: from ``init``, else 1.0
    init: str | None = None             # checkpoint the trained network(s) start from (pysot or ours)
    teacher: str | None = None          # kd / ml: the frozen teacher checkpoint (DarkLighter + SiamRPN)
    enhancer: str | None = None         # teacher mode: DarkLighter weights when ``init`` has none
    feature: str = "l2"                 # kd: the feature loss
    students: tuple[str, ...] = ("l2", "spatial", "threshold")  # ml: one student per feature loss
    # ml: baselines trained in the same room on the same pairs, outside the election: "kd" (a single-KD
    # student per feature loss, kd_<loss>) and "nokd" (the same recipe without the teacher)
    baselines: tuple[str, ...] = ()
    data: tuple[DataSource, ...] = ()
    pairs: PairConfig = PairConfig()
    targets: TargetConfig = TargetConfig()
    optim: OptimConfig = OptimConfig()
    losses: LossConfig = LossConfig()
    workers: int = 2                    # data-loading processes
    seed: int = 123456
    amp: bool = True                    # fp16 autocast + gradient scaling on CUDA (ignored on the CPU)
    log_every: int = 10                 # TensorBoard / progress-bar update period, in steps
    keep_checkpoints: int = 2           # training states kept (the newest ones)
    tracking: dict = field(default_factory=dict)  # tracking values written into exported models

    def __post_init__(self) -> None:
        o = self.optim
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        for name in ((self.feature,) if self.mode == "kd" else self.students if self.mode == "ml" else ()):
            if name not in FEATURE_LOSSES:
                problems.append(f"unknown feature loss {name!r}; known: {sorted(FEATURE_LOSSES)}")
        if self.mode == "ml" and (len(self.students) < 2 or len(set(self.students)) != len(self.students)):
            problems.append("ml mode needs at least two students with distinct feature losses")
        if set(self.baselines) - {"kd", "nokd"} or (self.baselines and self.mode != "ml"):
            problems.append("baselines (ml mode only) are among 'kd' and 'nokd'")
        if o.epochs < 1 or o.batch_size < 1 or not 0 <= o.warmup.epochs < o.epochs:
            problems.append("need epochs >= 1, batch_size >= 1 and 0 <= warmup.epochs < epochs")
        if min(o.base_lr, o.lr.start, o.lr.end) <= 0 or (o.warmup.epochs and min(o.warmup.start, o.warmup.end) <= 0):
            problems.append("learning rates must be positive")
        anchor_map = (self.pairs.search_size - self.pairs.exemplar_size) // self.targets.stride + 1
        if self.pairs.search_size != self.targets.search_size or \
                (self.targets.decoder == "anchors" and anchor_map != self.targets.output_size):
            problems.append("pairs (exemplar/search size) and targets (search_size, output_size, stride) disagree")
        if self.workers < 0 or self.log_every < 1 or self.keep_checkpoints < 1:
            problems.append("need workers >= 0, log_every >= 1, keep_checkpoints >= 1")
        if problems:
            raise InputError("invalid training config: " + "; ".join(problems))

    def lr_spaces(self) -> np.ndarray:
        """The reference LR of every epoch (pysot ``lr_spaces``): geometric warm-up steps, then log decay."""
        o = self.optim
        w = o.warmup.epochs
        warm = o.warmup.start * (o.warmup.end / o.warmup.start) ** (np.arange(w) / w) if w else np.empty(0)
        decay = np.logspace(np.log10(o.lr.start), np.log10(o.lr.end), o.epochs - w)
        return np.concatenate([warm, decay])

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively (YAML / JSON friendly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def build_dataclass(cls: type, values: Mapping[str, Any], where: str, base: Any = None):
    """Instantiate a (nested) config dataclass from a mapping, naming unknown keys and bad values.

    Keys not given keep the value of ``base`` (an instance), else the field default; a nested
    section given in part keeps the rest of its default (``optim.warmup.epochs: 1`` keeps the
    warm-up's start and end).
    """
    if not isinstance(values, Mapping):
        raise InputError(f"{where} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {name: getattr(base, name) for name in fields} if base is not None else {}
    for key, value in values.items():
        hint = hints[key]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
            current = kwargs[key] if key in kwargs else _field_default(fields[key])
            value = build_dataclass(hint, value, f"{where}.{key}", current)
        elif origin is tuple and isinstance(value, (list, tuple)):
            inner = args[0] if args else None
            if dataclasses.is_dataclass(inner):
                value = tuple(build_dataclass(inner, v if isinstance(v, Mapping) else {"path": v},
                                              f"{where}.{key}[{i}]") for i, v in enumerate(value))
            else:
                value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InputError(f"{where}: {exc}") from exc


def set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    """``set_dotted(d, "optim.epochs", 3)``: override one nested key (creating mappings as needed)."""
    keys = dotted.split(".")
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(f"--set {dotted}: {key} is not a section")
    node[keys[-1]] = value


def read_yaml(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML mapping from a file; :class:`InputError` naming ``what`` and the file otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must be a mapping, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, nested mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def architecture_values(network: str | Path | None) -> dict[str, Any]:
    """Training values a network's architecture brings: ``models/train_nanotrack.yaml`` (with the version's
    score-map size) for a NanoTrack checkpoint, nothing for SiamRPN (``train_<mode>.yaml`` is SiamRPN's)."""
    from mlkd_tracker.config import load_model_spec, models_dir
    from mlkd_tracker.nets.checkpoint import read_checkpoint
    from mlkd_tracker.nets.nanotrack import nanotrack_version

    if network is None or not Path(network).is_file():  # a later pipeline stage's input: checked when trained
        return {}
    version = nanotrack_version(read_checkpoint(network)[0])
    if version is None:
        return {}
    values = read_yaml(models_dir() / "train_nanotrack.yaml", "NanoTrack training values")
    output_size = load_model_spec(models_dir() / f"nanotrack_v{version}.yaml").tracking.output_size
    return _merge(values, {"targets": {"output_size": output_size}})


def load_train_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                      **values: Any) -> TrainConfig:
    """A config from a YAML file (or defaults), the values of the starting network's architecture
    (:func:`architecture_values` of ``init``, else ``teacher``), then ``overrides`` (dotted keys), then keyword values."""
    data = read_yaml(path, "training config") if path is not None else {}
    network = values.get("init") or data.get("init") or values.get("teacher") or data.get("teacher")
    data = _merge(data, architecture_values(network))
    for dotted, value in (overrides or {}).items():
        set_dotted(data, dotted, value)
    data.update({k: v for k, v in values.items() if v is not None})
    return build_dataclass(TrainConfig, data, str(path or "config"))


# settings a resumed run may change; anything else must match the interrupted run's config
RESUMABLE_CHANGES = ("optim.epochs", "workers", "log_every", "keep_checkpoints")


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two ``to_dict()`` configs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out
