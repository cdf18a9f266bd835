"""PyTorch -> ONNX: a SiamRPN's template and search graphs, fixed shapes, with tracking metadata.

Works for students and for the teacher: a model with an ``enhancer`` submodule (DarkLighter) runs
it inside both graphs, exactly as :meth:`SiamRPN.features` does. Uses the ``torch.export``-based
exporter (``dynamo=True``, needs ``onnxscript``) on a copy with BatchNorm folded into the convolutions
and ReLU moved before MaxPool (both exact); the graph is then converted to the requested opset
(default 17, which TensorRT 8.5+ on JetPack 5 reads).
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mlkd_tracker.backends.exported import (GRAPH_INPUTS, GRAPH_OUTPUTS, KERNELS, OUTPUTS, ROLES, ExportMeta,
                                            check_tensor_shapes, graph_paths)
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.nets.siamrpn import SiamRPN, fold_batchnorm
from mlkd_tracker.report import write_bytes_atomic

DEFAULT_OPSET = 17
MIN_OPSET = 17
_EXPORTER_OPSET = 18  # what torch.onnx's dynamo exporter writes natively


class TrackingGraph(nn.Module):
    """Both branches in one module: exported once, then split into the template and search graphs.

    One trace instead of two (the exporter's fixed cost dominates for a small network), and the
    two graphs are exact sub-graphs of one export, so they always agree.
    """

    def __init__(self, model: SiamRPN):
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kernel_cls, kernel_loc = self.model.template_kernels(template)
        cls, loc = self.model.track(search, kernel_cls, kernel_loc)
        return kernel_cls, kernel_loc, cls, loc


def relu_before_pool(model: nn.Module) -> nn.Module:
    """Swap every MaxPool2d -> ReLU pair (pysot's AlexNet order) to ReLU -> MaxPool2d, in place.

    Exactly equal (max pooling commutes with a monotone function), and the Conv -> ReLU pattern is
    the one runtimes fuse and quantisers understand: ONNX Runtime's QOperator quantiser drops a
    ReLU that follows a MaxPool without clipping the conv's int8 range, which wrecks the output.
    """
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            if isinstance(seq._modules[a], nn.MaxPool2d) and isinstance(seq._modules[b], nn.ReLU):
                seq._modules[a], seq._modules[b] = seq._modules[b], seq._modules[a]
    return model


def _export_id(model: nn.Module, tracking: TrackerConfig, opset: int) -> str:
    digest = hashlib.sha256(json.dumps([tracking.to_dict(), opset]).encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs optional-op registrations and FutureWarnings that mean nothing to users."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _to_onnx(model: SiamRPN, template: torch.Tensor, search: torch.Tensor, opset: int) -> dict:
    """``{"template": ModelProto, "search": ModelProto}`` from one export of :class:`TrackingGraph`."""
    import onnx
    import onnx.utils
    import onnx.version_converter

    with _quiet_exporter():
        program = torch.onnx.export(TrackingGraph(model).eval(), (template, search), dynamo=True,
                                    opset_version=_EXPORTER_OPSET, input_names=["template", "search"],
                                    output_names=[*KERNELS, *OUTPUTS], verbose=False, optimize=True)
    proto = program.model_proto
    if opset != _EXPORTER_OPSET:
        proto = onnx.version_converter.convert_version(proto, opset)
    extractor = onnx.utils.Extractor(proto)
    return {role: extractor.extract_model(list(GRAPH_INPUTS[role]), list(GRAPH_OUTPUTS[role])) for role in ROLES}


def export_onnx(model: SiamRPN, prefix: str | os.PathLike, tracking: TrackerConfig, name: str,
                opset: int = DEFAULT_OPSET, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write ``<prefix>.template.onnx`` and ``<prefix>.search.onnx`` (checked, atomic); returns both paths."""
    import onnx

    if opset < MIN_OPSET:
        raise InputError(f"opset must be >= {MIN_OPSET}, got {opset}")
    model = copy.deepcopy(model).float().cpu().eval()  # never touch the caller's model
    e, i = tracking.exemplar_size, tracking.instance_size
    generator = torch.Generator().manual_seed(0)
    template = torch.rand(1, 3, e, e, generator=generator) * 255
    search = torch.rand(1, 3, i, i, generator=generator) * 255
    with torch.no_grad():
        kernels = model.template_kernels(template)
        cls, loc = model.track(search, *kernels)
    io = {"template": tuple(template.shape), "search": tuple(search.shape),
          "kernel_cls": tuple(kernels[0].shape), "kernel_loc": tuple(kernels[1].shape),
          "cls": tuple(cls.shape), "loc": tuple(loc.shape)}
    meta = ExportMeta(name=name, tracking=tracking, io=io, arch=model.arch(),
                      export_id=_export_id(model, tracking, opset))
    meta.validate(f"model {name}")  # e.g. a width whose score map does not fit the tracking values
    paths = graph_paths(prefix)
    if log:
        log(f"exporting {name} (opset {opset}) -> {paths['template']}, {paths['search']}")
    protos = _to_onnx(relu_before_pool(fold_batchnorm(model)), template, search, opset)
    for role, proto in protos.items():
        del proto.metadata_props[:]
        for key, value in meta.to_props(role).items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = "mlkd-tracker"
        proto.producer_version = meta.version
        proto.doc_string = (f"{name}: SiamRPN {role} graph exported by mlkd-tracker. Input layout: "
                            f"{meta.input_layout}. Tracking values in metadata mlkd.tracking.")
        onnx.checker.check_model(proto, full_check=True)
        shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
                  for v in (*proto.graph.input, *proto.graph.output)}
        check_tensor_shapes(shapes, meta, role, f"exported {paths[role].name}")
        write_bytes_atomic(paths[role], proto.SerializeToString())
    return paths


def parity(model: SiamRPN, paths: dict[str, Path], tracking: TrackerConfig, seed: int = 0) -> dict[str, float]:
    """Max abs difference between ONNX Runtime (CPU) and torch on one random template/search pair."""
    import onnxruntime as ort

    try:
        sessions = {role: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for role, p in paths.items()}
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for unloadable graphs
        raise ModelFileError(f"onnxruntime cannot load the exported graphs: {exc}") from exc
    rng = np.random.default_rng(seed)
    e, i = tracking.exemplar_size, tracking.instance_size
    template = rng.uniform(0, 255, (1, 3, e, e)).astype(np.float32)
    search = rng.uniform(0, 255, (1, 3, i, i)).astype(np.float32)
    model = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        kernels = model.template_kernels(torch.from_numpy(template))
        cls, loc = model.track(torch.from_numpy(search), *kernels)
    kc, kl = sessions["template"].run(None, {"template": template})
    ort_cls, ort_loc = sessions["search"].run(None, {"search": search, "kernel_cls": kc, "kernel_loc": kl})
    return {"kernel_cls": float(np.abs(kc - kernels[0].numpy()).max()),
            "kernel_loc": float(np.abs(kl - kernels[1].numpy()).max()),
            "cls": float(np.abs(ort_cls - cls.numpy()).max()),
            "loc": float(np.abs(ort_loc - loc.numpy()).max())}


def export_model(model_path: str | os.PathLike | None, prefix: str | os.PathLike, opset: int = DEFAULT_OPSET,
                 allow_random_weights: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Export a checkpoint or model YAML (default: the bundled MLKD-Track config) as an ONNX pair at ``prefix``.

    The model is opened exactly as ``mlkd track`` opens it (torch backend, CPU fp32), so name and
    tracking values are the ones the checkpoint carries.
    """
    from mlkd_tracker.backends import load_model

    loaded = load_model(model_path, "cpu", "fp32", allow_random_weights=allow_random_weights, backend="torch")
    return export_onnx(loaded.backend.model, prefix, loaded.config, loaded.name, opset, log)
