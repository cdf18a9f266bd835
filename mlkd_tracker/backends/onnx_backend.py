"""ONNX Runtime backend: the exported template/search graph pair on CPU, CUDA or TensorRT execution providers.

``device`` picks the execution provider: ``cpu``; ``cuda`` / ``cuda:N`` (onnxruntime-gpu);
``tensorrt`` / ``tensorrt:N`` (ONNX Runtime's TensorRT provider, engines cached beside the ONNX);
``auto`` = CUDA when the installed onnxruntime has it, else CPU. The correlation kernels stay on
the device between frames (I/O binding), so a GPU provider never copies them back to the host.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlkd_tracker.backends import LoadedModel
from mlkd_tracker.backends.exported import (GRAPH_OUTPUTS, KERNELS, ExportMeta, check_tensor_shapes,
                                            file_bytes, find_graph_pair, onnx_prefix)
from mlkd_tracker.errors import InputError, ModelFileError

SUFFIXES = (".onnx",)
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
              "tensorrt": "TensorrtExecutionProvider"}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ModelFileError("the onnxruntime package is needed for .onnx models: pip install onnxruntime "
                             "(or onnxruntime-gpu for CUDA / TensorRT)") from None
    return onnxruntime


def available_devices() -> list[str]:
    """Devices this onnxruntime build can run: a subset of cpu, cuda, tensorrt."""
    present = set(_ort().get_available_providers())
    return [d for d, provider in _PROVIDERS.items() if provider in present]


def providers_for(device: str, precision: str, cache_dir: Path) -> tuple[str, list]:
    """``(device kind, providers list)`` for ``InferenceSession``; clear error if the provider is absent."""
    kind, _, index = device.partition(":")
    if kind == "auto":
        kind, index = ("cuda" if "cuda" in available_devices() else "cpu"), ""
    if kind not in _PROVIDERS:
        raise InputError(f"device {device!r} is not one of auto, cpu, cuda[:N], tensorrt[:N] for onnxruntime")
    if index and not index.isdigit():
        raise InputError(f"device index must be a number: {device!r}")
    if kind not in available_devices():
        raise InputError(f"device {device!r} needs onnxruntime's {_PROVIDERS[kind]}, which this onnxruntime "
                         f"build lacks (available: {', '.join(available_devices())}); install onnxruntime-gpu")
    options: dict[str, Any] = {"device_id": int(index or 0)}
    providers: list = []
    if kind == "tensorrt":
        trt_options = dict(options, trt_fp16_enable=precision == "fp16", trt_engine_cache_enable=True,
                           trt_engine_cache_path=str(cache_dir), trt_timing_cache_enable=True)
        providers.append((_PROVIDERS["tensorrt"], trt_options))
    if kind in ("cuda", "tensorrt"):
        providers.append((_PROVIDERS["cuda"], options))
    providers.append(_PROVIDERS["cpu"])
    return kind, providers


class OnnxRuntimeBackend:
    """Template graph once per target, search graph per frame, through ONNX Runtime sessions."""

    name = "onnxruntime"

    def __init__(self, paths: dict[str, Path], device: str = "auto", precision: str = "auto"):
        ort = _ort()
        self.paths = paths
        if precision == "auto" and device.startswith("tensorrt"):
            precision = "fp16"  # what TensorRT is for
        if precision == "fp16" and not device.startswith("tensorrt"):
            raise InputError("fp16 with onnxruntime needs device tensorrt (its TensorRT provider); "
                             "or use the tensorrt backend, or fp32 / int8 graphs on the CPU")
        self.device, providers = providers_for(device, precision, paths["search"].parent)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3          # errors only; providers warn about node placement
        # idle worker threads sleep instead of spinning: onboard, the tracker shares its cores with the camera
        # driver, ROS and the flight stack (measured cost here: ~3 % of search time)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions, metas = {}, {}
        for role, path in paths.items():
            try:
                self.sessions[role] = ort.InferenceSession(str(path), options, providers=providers)
            except Exception as exc:  # noqa: BLE001 - ORT raises its own types for unreadable graphs
                raise ModelFileError(f"onnxruntime cannot load {path} on {self.device}: {exc}") from exc
            metas[role], file_role = ExportMeta.from_props(
                self.sessions[role].get_modelmeta().custom_metadata_map, str(path))
            if file_role != role:
                raise ModelFileError(f"{path} holds the {file_role} graph, expected the {role} graph")
        if metas["template"].export_id != metas["search"].export_id:
            raise ModelFileError(f"{paths['template']} and {paths['search']} come from different exports "
                                 f"(ids {metas['template'].export_id} vs {metas['search'].export_id}); export again")
        self.meta = metas["search"]
        self.meta.validate(str(paths["search"]))
        for role, session in self.sessions.items():
            shapes = {t.name: tuple(t.shape) for t in (*session.get_inputs(), *session.get_outputs())}
            check_tensor_shapes(shapes, self.meta, role, str(paths[role]))
        if precision in ("fp32", "int8") and precision != self.meta.precision:
            raise InputError(f"{paths['search']} is an {self.meta.precision} graph, not {precision}")
        self.precision = "fp16" if precision == "fp16" and self.meta.precision == "fp32" else self.meta.precision
        self.providers = self.sessions["search"].get_providers()
        self._ort_device = "cuda" if self.device in ("cuda", "tensorrt") else "cpu"
        self._device_id = int(providers[0][1]["device_id"]) if isinstance(providers[0], tuple) else 0
        c = self.meta.tracking
        self._crop_shapes = {"template": (c.exemplar_size, c.exemplar_size, 3),
                             "search": (c.instance_size, c.instance_size, 3)}

    def graph_input(self, crop: np.ndarray, role: str) -> np.ndarray:
        """A uint8 HWC crop as the graph's (1, 3, H, W) float32 input; shape checked."""
        if crop.shape != self._crop_shapes[role] or crop.dtype != np.uint8:
            raise InputError(f"{role} crop must be {self._crop_shapes[role]} uint8, got {crop.shape} {crop.dtype}")
        return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)[None]

    def template(self, crop: np.ndarray) -> list:
        """Correlation kernels as ``OrtValue``s left where the provider computed them."""
        binding = self.sessions["template"].io_binding()
        binding.bind_cpu_input("template", self.graph_input(crop, "template"))
        for name in KERNELS:
            binding.bind_output(name, self._ort_device, self._device_id)
        self.sessions["template"].run_with_iobinding(binding)
        return binding.get_outputs()

    def search(self, crop: np.ndarray, kernels: list) -> tuple[np.ndarray, np.ndarray]:
        binding = self.sessions["search"].io_binding()
        binding.bind_cpu_input("search", self.graph_input(crop, "search"))
        for name, value in zip(KERNELS, kernels):
            binding.bind_ortvalue_input(name, value)
        for name in GRAPH_OUTPUTS["search"]:
            binding.bind_output(name, "cpu")
        self.sessions["search"].run_with_iobinding(binding)
        cls, loc = binding.copy_outputs_to_cpu()
        return cls, loc


def resolve_paths(path: Path, precision: str) -> dict[str, Path]:
    """The graph pair for ``path``; ``precision="int8"`` on an fp32 export picks its ``.int8`` sibling."""
    if precision == "int8" and not onnx_prefix(path).name.endswith(".int8"):
        prefix = onnx_prefix(path)
        sibling = prefix.with_name(prefix.name + ".int8.onnx")
        try:
            return find_graph_pair(sibling)
        except ModelFileError:
            raise ModelFileError(f"no int8 export beside {path} (looked for {prefix.name}.int8.template.onnx / "
                                 f".search.onnx); create it with: mlkd export MODEL --int8") from None
    return find_graph_pair(path)


def open_model(path: Path, device: str = "auto", precision: str = "auto",
               log: Callable[[str], None] | None = None) -> LoadedModel:
    """An ONNX Runtime backend for an exported pair; tracking values from its metadata."""
    paths = resolve_paths(path, precision)
    backend = OnnxRuntimeBackend(paths, device, precision)
    meta = backend.meta
    info = {"backend": "onnxruntime", "device": backend.device, "providers": backend.providers,
            "precision": backend.precision, "file": str(paths["search"]),
            "files": [str(p) for p in paths.values()], "model_bytes": file_bytes(paths.values()),
            "export_id": meta.export_id, **{k: v for k, v in meta.arch.items() if v is not None}}
    if log:
        log(f"onnxruntime: {meta.name} ({backend.precision}) on {', '.join(backend.providers)}")
    return LoadedModel(backend, meta.tracking, meta.name, info)
