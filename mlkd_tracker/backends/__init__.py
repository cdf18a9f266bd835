"""Choosing an inference backend from a model file, and building a tracker from it.

``.pth``/``.pt``/``.safetensors`` -> PyTorch, ``.onnx`` -> ONNX Runtime, ``.engine``/``.plan``
-> TensorRT, ``.yaml`` -> a bundled model config naming its weights. ``backend=`` asks for one
explicitly (``tensorrt`` on an ``.onnx`` builds or reuses a cached engine). Each backend module
is imported only when its kind of file is opened.
"""
from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mlkd_tracker.config import TrackerConfig, default_model_path, load_model_spec
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.tracker import Backend, SiameseTracker

# suffix -> module with ``open_model(path, device, precision, log) -> LoadedModel`` and ``SUFFIXES``
BACKEND_MODULES: dict[str, str] = {
    ".pth": "mlkd_tracker.backends.torch_backend",
    ".pt": "mlkd_tracker.backends.torch_backend",
    ".safetensors": "mlkd_tracker.backends.torch_backend",
    ".onnx": "mlkd_tracker.backends.onnx_backend",
    ".engine": "mlkd_tracker.backends.tensorrt_backend",
    ".plan": "mlkd_tracker.backends.tensorrt_backend",
}
# backend name -> module, for asking for one explicitly
BACKENDS: dict[str, str] = {
    "torch": "mlkd_tracker.backends.torch_backend",
    "onnxruntime": "mlkd_tracker.backends.onnx_backend",
    "tensorrt": "mlkd_tracker.backends.tensorrt_backend",
}


@dataclass
class LoadedModel:
    """A ready backend plus the tracking values that came with the model file."""

    backend: Backend
    config: TrackerConfig
    name: str
    info: dict[str, Any] = field(default_factory=dict)  # backend, device, precision, file, ...


def load_model(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
               allow_random_weights: bool = False, backend: str = "auto",
               log: Callable[[str], None] | None = None) -> LoadedModel:
    """Open a model file (default: the bundled MLKD-Track config) with the backend its suffix names.

    ``backend`` (``auto``, ``torch``, ``onnxruntime``, ``tensorrt``) overrides the choice by
    suffix where the file allows it (``tensorrt`` on an ``.onnx`` builds or reuses a cached engine).
    ``log`` receives progress lines (a TensorRT engine build can take minutes); by default they go
    to the ``mlkd_tracker.backends`` Python logger (the ROS node forwards it to its ROS log).
    ``allow_random_weights`` lets a config without weights run with freshly initialised ones
    (for timing only: ``mlkd bench``).
    """
    path = Path(path) if path is not None else default_model_path()
    log = log or logging.getLogger("mlkd_tracker.backends").info
    if path.suffix in (".yaml", ".yml"):
        spec = load_model_spec(path)
        if spec.weights is not None:
            loaded = load_model(spec.weights, device, precision, backend=backend, log=log)
            loaded.config, loaded.name = spec.tracking, spec.name
            return loaded
        if not allow_random_weights:
            raise ModelFileError(f"model config {path} names no weights file; give a trained model file "
                                 f"(.pth / .onnx / .engine) instead")
        from mlkd_tracker.backends.torch_backend import random_weights_model
        return random_weights_model(spec, device, precision)
    suffix = path.suffix.lower()
    if backend == "auto":
        module_name = BACKEND_MODULES.get(suffix)
        if module_name is None:
            raise ModelFileError(f"unknown model file type {path.suffix!r} ({path}); expected one of "
                                 f"{sorted(BACKEND_MODULES) + ['.yaml']}")
    else:
        module_name = BACKENDS.get(backend)
        if module_name is None:
            raise InputError(f"unknown backend {backend!r}; expected auto or one of {sorted(BACKENDS)}")
    module = importlib.import_module(module_name)
    if suffix not in module.SUFFIXES:
        raise ModelFileError(f"the {backend} backend cannot open {path.name}: it reads {', '.join(module.SUFFIXES)} "
                             f"files" + (" (export the checkpoint first: mlkd export)" if suffix in
                                         BACKEND_MODULES and backend != "torch" else ""))
    if not path.is_file() and suffix != ".onnx":  # an .onnx may name a <prefix>.{template,search}.onnx pair
        raise ModelFileError(f"model file not found: {path}")
    return module.open_model(path, device, precision, log=log)


def create_tracker(path: str | os.PathLike | None = None, device: str = "auto", precision: str = "auto",
                   overrides: Mapping[str, Any] | None = None, allow_random_weights: bool = False,
                   backend: str = "auto", log: Callable[[str], None] | None = None,
                   ) -> tuple[SiameseTracker, LoadedModel]:
    """A tracker for a model file, with tracking values from the file updated by ``overrides``."""
    loaded = load_model(path, device, precision, allow_random_weights, backend, log)
    config = loaded.config.replace(**overrides) if overrides else loaded.config
    return SiameseTracker(loaded.backend, config), loaded
