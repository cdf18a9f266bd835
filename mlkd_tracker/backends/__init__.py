"""Choosing an inference backend from a model file, and building a tracker from it.

``.pth``/``.pt``/``.safetensors`` -> PyTorch, ``.onnx`` -> ONNX Runtime, ``.engine``/``.plan``
-> TensorRT, ``.yaml`` -> a bundled model config naming its weights. Each backend module is
imported only when its kind of file is opened.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mlkd_tracker.config import TrackerConfig, default_model_path, load_model_spec
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.tracker import Backend, SiamRPNTracker

# suffix -> module with ``open_model(path, device, precision) -> LoadedModel``
BACKEND_MODULES: dict[str, str] = {
    ".pth": "mlkd_tracker.backends.torch_backend",
    ".pt": "mlkd_tracker.backends.torch_backend",
    ".safetensors": "mlkd_tracker.backends.torch_backend",
}


@dataclass
class LoadedModel:
    """A ready backend plus the tracking values that came with the model file."""

    backend: Backend
    config: TrackerConfig
    name: str
    info: dict[str, Any] = field(default_factory=dict)  # backend, device, precision, file, ...


def load_model(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
               allow_random_weights: bool = False) -> LoadedModel:
    """Open a model file (default: the bundled MLKD-Track config) with the backend its suffix names.

    ``allow_random_weights`` lets a config without weights run with freshly initialised ones
    (for timing only: ``mlkd bench``).
    """
    path = Path(path) if path is not None else default_model_path()
    if path.suffix in (".yaml", ".yml"):
        spec = load_model_spec(path)
        if spec.weights is not None:
            loaded = load_model(spec.weights, device, precision)
            loaded.config, loaded.name = spec.tracking, spec.name
            return loaded
        if not allow_random_weights:
            raise ModelFileError(f"model config {path} names no weights file; pass a trained model "
                                 f"(.pth / .onnx / .engine) with --model")
        from mlkd_tracker.backends.torch_backend import random_weights_model
        return random_weights_model(spec, device, precision)
    module_name = BACKEND_MODULES.get(path.suffix.lower())
    if module_name is None:
        raise ModelFileError(f"unknown model file type {path.suffix!r} ({path}); expected one of "
                             f"{sorted(BACKEND_MODULES) + ['.yaml']}")
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    return importlib.import_module(module_name).open_model(path, device, precision)


def create_tracker(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
                   overrides: Mapping[str, Any] | None = None,
                   allow_random_weights: bool = False) -> tuple[SiamRPNTracker, LoadedModel]:
    """A tracker for a model file, with tracking values from the file updated by ``overrides``."""
    loaded = load_model(path, device, precision, allow_random_weights)
    config = loaded.config.replace(**overrides) if overrides else loaded.config
    return SiamRPNTracker(loaded.backend, config), loaded
