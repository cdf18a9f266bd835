"""PyTorch backend: CPU fp32 (channels-last, inference mode) or CUDA with fp16."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mlkd_tracker.backends import LoadedModel
from mlkd_tracker.config import ModelSpec
from mlkd_tracker.errors import InputError
from mlkd_tracker.nets.checkpoint import CHECKPOINT_SUFFIXES, checkpoint_tracking, load_network
from mlkd_tracker.nets.nanotrack import NanoTrack
from mlkd_tracker.nets.siamrpn import SiamRPN, fold_batchnorm

SUFFIXES = CHECKPOINT_SUFFIXES


def resolve_device(device: str, precision: str) -> tuple[torch.device, torch.dtype]:
    """``auto`` picks CUDA when present; ``auto`` precision is fp16 on CUDA and fp32 on the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    if precision not in ("fp32", "fp16"):
        raise InputError(f"precision must be auto, fp32 or fp16 for the torch backend, got {precision!r}")
    if precision == "fp16" and dev.type != "cuda":
        raise InputError("fp16 needs a CUDA device for the torch backend; use fp32 on the CPU")
    return dev, (torch.float16 if precision == "fp16" else torch.float32)


@contextmanager
def denormals_flushed():
    """Flush denormals to zero on the calling thread while inside, then restore the caller's mode.

    Trained weights leave tiny activations whose denormal arithmetic is many times slower on x86
    (flushing changes no output beyond 1e-38). The mode is per thread and other code in the process
    (numpy, hypothesis) relies on IEEE subnormals, so it is never left on.
    """
    if np.float32(1e-38) * np.float32(0.5) == 0:  # already flushing on this thread
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class TorchBackend:
    """Runs a network's (SiamRPN or NanoTrack) template branch once per target and its search branch per frame."""

    name = "torch"

    def __init__(self, model: SiamRPN | NanoTrack, device: str = "auto", precision: str = "auto"):
        self.device, self.dtype = resolve_device(device, precision)
        self._memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self._float_mode = denormals_flushed if self.device.type == "cpu" else nullcontext
        self.model = fold_batchnorm(model).to(self.device, self.dtype, memory_format=self._memory_format)

    def _to_tensor(self, crop: np.ndarray) -> torch.Tensor:
        # HxWx3 uint8 -> 1x3xHxW float; a permuted HWC view already is channels-last
        t = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        return t.to(self.dtype).contiguous(memory_format=self._memory_format)

    @torch.inference_mode()
    def template(self, crop: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with self._float_mode():
            return self.model.template_kernels(self._to_tensor(crop))

    @torch.inference_mode()
    def search(self, crop: np.ndarray, kernels: Any) -> tuple[np.ndarray, np.ndarray]:
        with self._float_mode():
            cls, loc = self.model.track(self._to_tensor(crop), *kernels)
        # the tracker reads the maps as flat (channel, row, col) arrays: hand it C-contiguous ones
        return cls.float().contiguous().cpu().numpy(), loc.float().contiguous().cpu().numpy()


def _info(backend: TorchBackend, file: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "torch", "device": str(backend.device),
            "precision": "fp16" if backend.dtype == torch.float16 else "fp32", "file": file, **extra}


def open_model(path: Path, device: str = "auto", precision: str = "auto",
               log: Callable[[str], None] | None = None) -> LoadedModel:
    """A torch backend for a checkpoint; tracking values from its meta, else the authors' values for a
    released NanoTrack or pysot model-zoo file, else MLKD-Track's (``checkpoint_tracking``)."""
    model, meta = load_network(path)
    config = checkpoint_tracking(meta, model.arch(), str(path))
    backend = TorchBackend(model, device, precision)
    name = str(meta.get("name", path.stem))
    info = _info(backend, str(path), **_arch_info(model), files=[str(path)], model_bytes=path.stat().st_size)
    if log:
        log(f"torch: {name} on {info['device']} {info['precision']}")
    return LoadedModel(backend, config, name, info)


def _arch_info(model: SiamRPN | NanoTrack) -> dict[str, Any]:
    """What ``LoadedModel.info`` says of the architecture: SiamRPN's width or NanoTrack's version."""
    return {k: v for k, v in model.arch().items() if k in ("type", "width", "version")}


def random_weights_model(spec: ModelSpec, device: str = "auto", precision: str = "auto",
                         seed: int = 0) -> LoadedModel:
    """A model config's architecture with seeded random weights: for timing, never for tracking."""
    torch.manual_seed(seed)
    enhancer = None
    if spec.enhancer:
        from mlkd_tracker.nets.darklighter import DarkLighter
        enhancer = DarkLighter()
    model = (NanoTrack(spec.version, enhancer=enhancer) if spec.arch == "nanotrack"
             else SiamRPN(width=spec.width, enhancer=enhancer))
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    backend = TorchBackend(model, device, precision)
    return LoadedModel(backend, spec.tracking, spec.name + " (random weights)",
                       _info(backend, "<random weights>", **_arch_info(model), model_bytes=size))
