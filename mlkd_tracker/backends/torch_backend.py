"""PyTorch backend: CPU fp32 (channels-last, inference mode) or CUDA with fp16."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mlkd_tracker.backends import LoadedModel
from mlkd_tracker.config import ModelSpec, TrackerConfig
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


@contextmanager
def intra_op_threads(threads: int | None):
    """Run torch's CPU operators on ``threads`` threads while inside (None: leave them), then restore the caller's.

    The setting applies to the calling OS thread's OpenMP parallel regions (threads started meanwhile inherit it)
    and costs well under a microsecond to change.
    """
    previous = torch.get_num_threads()
    if threads is None or threads == previous:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# Search branches cheaper than this run on one CPU thread. NanoTrack (0.14-0.22 GFLOP in some 180 operator calls)
# spends most of a call in fixed per-operator costs, so a second thread gains nothing even on an idle CPU, while
# every operator ends in a barrier that waits for the slowest thread: on cores shared with other work (onboard:
# camera driver, ROS, flight stack) a descheduled thread stalls each one. Measured on the shared 2-core VM
# (bench/torch_speed.py, load 2-6): NanoTrack v2 on 2 threads is no faster at best, 6-26x slower at the median.
# SiamRPN (3.6 GFLOP at width 0.5) keeps torch's thread setting: it gains from a second core.
SINGLE_THREAD_FLOPS = 0.5e9


class TorchBackend:
    """Runs a network's (SiamRPN or NanoTrack) template branch once per target and its search branch per frame.

    ``threads`` is the CPU intra-op thread count while it runs (None: torch's setting);
    :func:`cpu_backend_threads` chooses it for the models ``open_model`` loads.
    """

    name = "torch"

    def __init__(self, model: SiamRPN | NanoTrack, device: str = "auto", precision: str = "auto",
                 threads: int | None = None):
        self.device, self.dtype = resolve_device(device, precision)
        self._memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self._float_mode = denormals_flushed if self.device.type == "cpu" else nullcontext
        self.threads = threads
        self.model = fold_batchnorm(model).to(self.device, self.dtype, memory_format=self._memory_format)

    @contextmanager
    def _running(self):
        with self._float_mode(), intra_op_threads(self.threads):
            yield

    def _to_tensor(self, crop: np.ndarray) -> torch.Tensor:
        # HxWx3 uint8 -> 1x3xHxW float; a permuted HWC view already is channels-last
        t = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1).unsqueeze(0)
        return t.to(self.dtype).contiguous(memory_format=self._memory_format)

    @torch.inference_mode()
    def template(self, crop: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with self._running():
            return self.model.template_kernels(self._to_tensor(crop))

    @torch.inference_mode()
    def search(self, crop: np.ndarray, kernels: Any) -> tuple[np.ndarray, np.ndarray]:
        with self._running():
            cls, loc = self.model.track(self._to_tensor(crop), *kernels)
        # the tracker reads the maps as flat (channel, row, col) arrays: hand it C-contiguous ones
        return cls.float().contiguous().cpu().numpy(), loc.float().contiguous().cpu().numpy()


def cpu_backend_threads(backend: TorchBackend, config: TrackerConfig) -> int | None:
    """1 when the backend's search branch, on the tracker's crops, costs under ``SINGLE_THREAD_FLOPS`` on the CPU;
    else None (torch's setting). Costs one template and one search call."""
    if backend.device.type != "cpu":
        return None
    from mlkd_tracker.nets.flops import count_flops

    kernels = backend.template(np.zeros((config.exemplar_size, config.exemplar_size, 3), np.uint8))
    crop = np.zeros((config.instance_size, config.instance_size, 3), np.uint8)
    return 1 if count_flops(lambda: backend.search(crop, kernels)) < SINGLE_THREAD_FLOPS else None


def _backend(model: SiamRPN | NanoTrack, config: TrackerConfig, device: str, precision: str) -> TorchBackend:
    backend = TorchBackend(model, device, precision)
    backend.threads = cpu_backend_threads(backend, config)
    return backend


def _info(backend: TorchBackend, file: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "torch", "device": str(backend.device),
            "precision": "fp16" if backend.dtype == torch.float16 else "fp32", "file": file, **extra}


def open_model(path: Path, device: str = "auto", precision: str = "auto",
               log: Callable[[str], None] | None = None) -> LoadedModel:
    """A torch backend for a checkpoint; tracking values from its meta, else the authors' values for a
    released NanoTrack or pysot model-zoo file, else MLKD-Track's (``checkpoint_tracking``)."""
    model, meta = load_network(path)
    config = checkpoint_tracking(meta, model.arch(), str(path))
    backend = _backend(model, config, device, precision)
    name = str(meta.get("name", path.stem))
    info = _info(backend, str(path), **_arch_info(model), files=[str(path)], model_bytes=path.stat().st_size)
    if log:
        log(f"torch: {name} on {info['device']} {info['precision']}")
    return LoadedModel(backend, config, name, info)


def _arch_info(model: SiamRPN | NanoTrack) -> dict[str, Any]:
    """What ``LoadedModel.info`` says of the architecture: SiamRPN's width or NanoTrack's version, and the
    enhancer of a teacher (as the ONNX and TensorRT backends say it from the export's metadata)."""
    return {k: v for k, v in model.arch().items() if k in ("type", "width", "version", "enhancer") and v is not None}


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
    backend = _backend(model, spec.tracking, device, precision)
    return LoadedModel(backend, spec.tracking, spec.name + " (random weights)",
                       _info(backend, "<random weights>", **_arch_info(model), model_bytes=size))
