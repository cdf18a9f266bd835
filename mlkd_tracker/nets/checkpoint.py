"""Reading and writing tracker checkpoints (pysot / MLKD SiamRPN, NanoTrack, our own), safely and atomically.

Accepted layouts: a plain state dict, ``{"state_dict": ...}`` or ``{"model": ...}``, keys with
or without the DataParallel ``module.`` prefix (MLKD teachers' ``backbone.enhancer.*`` read as
``enhancer.*``; pysot model-zoo SiamRPN ``alexnetlegacy`` backbones ``backbone.features.N.*`` read
as ``backbone.layerL.*``), ``.pth``/``.pt`` (always ``weights_only=True``)
or ``.safetensors``. Our own files add ``"meta"``: architecture and tracking values.
The architecture is recognised from the weights: NanoTrack v1/v2/v3 by their heads, SiamRPN otherwise.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from mlkd_tracker.config import TrackerConfig, architecture_tracker_config, load_model_spec, models_dir
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.report import atomic_output
from mlkd_tracker.nets.nanotrack import NanoTrack, nanotrack_version
from mlkd_tracker.nets.siamrpn import ALEXNET_CHANNELS, SiamRPN, scaled_channels

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
_LIST_LIMIT = 12
# pysot's AlexNetLegacy (its model-zoo siamrpn_alex_dwxcorr) holds the backbone in one Sequential,
# ``backbone.features.N``: index of each conv / BatchNorm there -> our ``layerL.i``. The pooling and
# ReLU modules in between have no parameters; BN follows its conv directly in both layouts.
PYSOT_LEGACY_BACKBONE = {0: "layer1.0", 1: "layer1.1", 4: "layer2.0", 5: "layer2.1", 8: "layer3.0",
                         9: "layer3.1", 11: "layer4.0", 12: "layer4.1", 14: "layer5.0", 15: "layer5.1"}
PYSOT_LEGACY_LAYOUT = "pysot-alexnetlegacy"  # meta["layout"] of such a file
PYSOT_MODEL_CONFIG = "pysot_siamrpn_alex_dwxcorr.yaml"  # pysot's tracking values for that model
_LEGACY_KEY = re.compile(r"backbone\.features\.(\d+)\.(.+)")


def _numpy_scalar_globals() -> list:
    """The numpy types a checkpoint's optimizer state needs: released NanoTrack files keep the learning rate
    as a numpy float64 (pickled as ``numpy.core.multiarray.scalar`` with a float64 dtype; numpy 2 writes
    ``numpy._core``). Nothing else is allowed: arrays, for one, stay refused."""
    import numpy as np

    scalar = (getattr(np, "_core", None) or np.core).multiarray.scalar  # numpy 2 moved numpy.core to numpy._core
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    if hasattr(np, "dtypes"):  # numpy >= 1.25 gives every dtype its own class
        allowed.append(np.dtypes.Float64DType)
    return allowed


def _legacy_backbone_key(key: str) -> str:
    found = _LEGACY_KEY.fullmatch(key)
    if not found or int(found.group(1)) not in PYSOT_LEGACY_BACKBONE:
        return key  # anything else is listed as unexpected when loading
    return f"backbone.{PYSOT_LEGACY_BACKBONE[int(found.group(1))]}.{found.group(2)}"


def _normalise_keys(state: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Keys in our layout, and whether the backbone was pysot's legacy one (a SiamRPN head behind
    ``backbone.features``; NanoTrack's backbone has that name too)."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    legacy = any(_LEGACY_KEY.fullmatch(k) for k in state) and any(k.startswith("rpn_head.") for k in state)
    # MLKD reference teachers keep DarkLighter inside the backbone (Enhance_AlexNet)
    return {("enhancer." + k[len("backbone.enhancer."):] if k.startswith("backbone.enhancer.")
             else _legacy_backbone_key(k) if legacy else k): v for k, v in state.items()}, legacy


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` from a checkpoint file; :class:`ModelFileError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint not found: {path}")
    meta: dict[str, Any] = {}
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as f:
                state = {k: f.get_tensor(k) for k in f.keys()}
                meta = json.loads((f.metadata() or {}).get("mlkd_meta", "{}"))
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for bad files
            raise ModelFileError(f"{path} is not a readable safetensors file: {exc}") from exc
    else:
        try:
            with torch.serialization.safe_globals(_numpy_scalar_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
            if found:  # the pickle wants to import and call something
                raise ModelFileError(f"{path} holds Python objects beyond tensors and plain containers "
                                     f"({found.group(1)}); refusing to unpickle it (weights_only=True)") from exc
            raise ModelFileError(f"{path} is not a PyTorch checkpoint (or it is corrupt)") from exc
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise ModelFileError(f"{path} is not a PyTorch checkpoint (or it is truncated): {_last_line(exc)}") from exc
        if isinstance(obj, dict) and isinstance(obj.get("meta"), dict):
            meta = obj["meta"]
        if isinstance(obj, dict):
            for key in ("state_dict", "model"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
        state = obj
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelFileError(f"{path} does not contain a state dict (a mapping of parameter names to tensors)")
    state, legacy = _normalise_keys(state)
    if legacy:
        meta = {**meta, "layout": PYSOT_LEGACY_LAYOUT}
    return state, meta


def checkpoint_tracking(meta: Mapping[str, Any], arch: Mapping[str, Any], source: str) -> TrackerConfig:
    """Tracking values for a checkpoint: its own, else pysot's for a pysot model-zoo (alexnetlegacy) file,
    else its architecture's defaults (``architecture_tracker_config``; ``arch`` is ``model.arch()``)."""
    tracking = meta.get("tracking")
    if isinstance(tracking, dict):
        return TrackerConfig.from_dict(tracking, source)
    if meta.get("layout") == PYSOT_LEGACY_LAYOUT:
        return load_model_spec(models_dir() / PYSOT_MODEL_CONFIG).tracking
    return architecture_tracker_config(arch)


def infer_width(state: Mapping[str, torch.Tensor]) -> float:
    """Backbone width multiplier whose ``int(c * width)`` channels match all five backbone convs.

    The first conv alone is ambiguous after pysot's rounding down (width 0.3 gives 28 of 96 but 76
    of 256); the roundest width in the interval every layer allows is returned. A file whose
    layers fit no width gets the first conv's ratio, and loading then lists the mis-shaped keys.
    """
    shapes = [state.get(f"backbone.layer{i}.0.weight") for i in range(1, 6)]
    if shapes[0] is None:
        return 1.0
    first_guess = shapes[0].shape[0] / ALEXNET_CHANNELS[0]
    if any(s is None for s in shapes):
        return first_guess
    channels = tuple(int(s.shape[0]) for s in shapes)
    low = max(k / c for k, c in zip(channels, ALEXNET_CHANNELS))
    high = min((k + 1) / c for k, c in zip(channels, ALEXNET_CHANNELS))
    if low >= high:
        return first_guess
    middle = (low + high) / 2
    for digits in range(1, 7):
        if scaled_channels(round(middle, digits)) == channels:
            return round(middle, digits)
    return middle


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with one error listing every missing, unexpected and mis-shaped key.

    BatchNorm ``num_batches_tracked`` counters (absent from some older pysot files) are optional.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                 for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = ", ".join(items[:_LIST_LIMIT]) + (f", ... ({len(items)} in all)" if len(items) > _LIST_LIMIT else "")
                parts.append(f"{label} keys: {shown}")
        target = type(model).__name__
        if isinstance(model, SiamRPN) and not any(k.startswith(("backbone.layer", "rpn_head.")) for k in state):
            target = ("any supported architecture (SiamRPN-AlexNet: backbone.layer1-5 + rpn_head.*; "
                      "NanoTrack v1/v2/v3: backbone.features.* + ban_head.*)")
        raise ModelFileError(f"{source} does not fit {target}: " + "; ".join(parts))
    full = dict(state)
    for k, v in expected.items():
        full.setdefault(k, v)  # only num_batches_tracked can be absent here
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in full.items()}, strict=True)


def build_network(state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> SiamRPN | NanoTrack:
    """An empty network whose architecture matches a state dict: NanoTrack when its head says which
    version, else SiamRPN (width inferred when meta lacks it); teachers get DarkLighter in front."""
    enhancer = None
    if any(k.startswith("enhancer.") for k in state):
        from mlkd_tracker.nets.darklighter import DarkLighter  # the teacher: enhancer in front
        enhancer = DarkLighter()
    version = nanotrack_version(state)
    if version is not None:
        return NanoTrack(version, enhancer=enhancer)
    arch = meta.get("arch", {}) if isinstance(meta.get("arch"), dict) else {}
    width = float(arch.get("width", infer_width(state)))
    return SiamRPN(width=width, enhancer=enhancer)


def load_network(path: str | os.PathLike) -> tuple[SiamRPN | NanoTrack, dict[str, Any]]:
    """Load a tracker network (student or teacher, any architecture) from a checkpoint, in eval mode, fp32 on the CPU."""
    state, meta = read_checkpoint(path)
    model = build_network(state, meta)
    source = str(path) + (" (pysot alexnetlegacy backbone.features.N read as backbone.layerL.i)"
                          if meta.get("layout") == PYSOT_LEGACY_LAYOUT else "")
    load_state_strict(model, state, source)
    return model.eval(), meta


def save_checkpoint(model: nn.Module, path: str | os.PathLike, meta: Mapping[str, Any] | None = None,
                    half: bool = False, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically (temp file in the same folder, then rename).

    ``extra`` adds top-level entries (optimizer state, epoch: a resumable training state) to a
    ``.pth`` file; the file still loads as plain weights.
    """
    path = Path(path)
    if extra and path.suffix == ".safetensors":
        raise ValueError("training state (extra) can only be saved to a .pth file")
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file
            save_file(state, str(tmp), metadata={"mlkd_meta": json.dumps(dict(meta or {}))})
        else:
            torch.save({**dict(extra or {}), "state_dict": state, "meta": dict(meta or {})}, tmp)
    return path
