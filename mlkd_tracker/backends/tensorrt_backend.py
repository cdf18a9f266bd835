"""TensorRT backend: FP16 / FP32 engines built from the exported ONNX pair, cached beside it.

An engine file (``.engine``) holds both engines (template and search) behind a small header with
the model metadata and the cache key (GPU name, compute capability, TensorRT version, precision,
builder and the digest of what it was built from), so one file configures a tracker. Opening an
``.onnx`` with ``backend="tensorrt"`` uses ``<prefix>.<precision>.<gpu>-sm<cc>-trt<version>.engine``
beside it, building it first when it is missing or stale (another ONNX, GPU or TensorRT).

Inference keeps everything on the GPU between calls: pinned host buffers and device buffers are
allocated once, the template engine writes the correlation kernels straight into device memory
that the search engine reads, and each call is copy-in, ``execute_async_v3``, copy-out on one
CUDA stream. Device memory and streams come from ``cuda-python`` (NVIDIA's official bindings:
a pip wheel with no compiler step, unlike pycuda, and no PyTorch, which a drone image may not
carry). Needs TensorRT >= 8.5 (name-based tensor API; convolutions with kernels as inputs).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from mlkd_tracker.backends import LoadedModel
from mlkd_tracker.backends.exported import (GRAPH_INPUTS, GRAPH_OUTPUTS, KERNELS, ROLES, ExportMeta,
                                            check_tensor_shapes, find_graph_pair, onnx_prefix, read_onnx_meta)
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.report import write_bytes_atomic

SUFFIXES = (".onnx", ".engine", ".plan")
ENGINE_MAGIC = b"MLKDTRT1"
ENGINE_PRECISIONS = ("fp16", "fp32")
WORKSPACE_BYTES = 1 << 30

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    """Default log: drop messages."""


# ---------------------------------------------------------------- cache keys and engine files

@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is specific to: the GPU model and compute capability, and the TensorRT version."""

    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str

    def slug(self) -> str:
        """File-name part, e.g. ``nvidia-jetson-agx-orin-sm87-trt10.3.0``."""
        name = re.sub(r"[^a-z0-9]+", "-", self.gpu_name.lower()).strip("-") or "gpu"
        major, minor = self.compute_capability
        return f"{name}-sm{major}{minor}-trt{self.tensorrt_version}"


def cache_key(device: DeviceInfo, precision: str, source_digest: str, builder: str) -> dict[str, Any]:
    """Everything an engine depends on; an engine whose key differs is stale."""
    return {"gpu": device.gpu_name, "compute_capability": list(device.compute_capability),
            "tensorrt": device.tensorrt_version, "precision": precision, "source": source_digest,
            "builder": builder}


def engine_cache_path(prefix: Path, precision: str, device: DeviceInfo) -> Path:
    """``<prefix>.<precision>.<gpu slug>.engine`` beside the ONNX pair."""
    return prefix.with_name(f"{prefix.name}.{precision}.{device.slug()}.engine")


def onnx_digest(paths: Mapping[str, Path]) -> str:
    """sha256 of both graphs: any re-export with other weights or options changes it."""
    digest = hashlib.sha256()
    for role in ROLES:
        digest.update(Path(paths[role]).read_bytes())
    return digest.hexdigest()


def write_engine_file(path: Path, header: Mapping[str, Any], engines: Mapping[str, bytes]) -> Path:
    """``MAGIC | u32 header length | header JSON | template engine | search engine``, written atomically."""
    header = dict(header)
    offset = 0
    header["engines"] = {}
    for role in ROLES:
        header["engines"][role] = {"offset": offset, "size": len(engines[role])}
        offset += len(engines[role])
    head = json.dumps(header).encode()
    return write_bytes_atomic(path, ENGINE_MAGIC + struct.pack("<I", len(head)) + head
                              + b"".join(engines[role] for role in ROLES))


def read_engine_header(path: Path) -> tuple[dict[str, Any], int]:
    """``(header, offset of the first engine byte)``; :class:`ModelFileError` for other files."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(ENGINE_MAGIC) + 4)
            if len(start) < len(ENGINE_MAGIC) + 4 or not start.startswith(ENGINE_MAGIC):
                raise ModelFileError(f"{path} is not an mlkd engine file (a plain TensorRT plan carries no "
                                     f"tracking metadata; build engines with 'mlkd export --engine')")
            (length,) = struct.unpack("<I", start[len(ENGINE_MAGIC):])
            head = f.read(length)
            header = json.loads(head.decode())
    except FileNotFoundError:
        raise ModelFileError(f"engine file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} has a corrupt engine header: {exc}") from exc
    if len(head) < length or not isinstance(header, dict) or not {"key", "meta", "engines"} <= set(header):
        raise ModelFileError(f"{path} has a truncated or incomplete engine header")
    return header, len(ENGINE_MAGIC) + 4 + length


def read_engine_file(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Header and the serialized template and search engines."""
    header, start = read_engine_header(path)
    data = Path(path).read_bytes()[start:]
    engines = {}
    for role in ROLES:
        span = header["engines"].get(role, {})
        offset, size = int(span.get("offset", -1)), int(span.get("size", -1))
        if offset < 0 or size <= 0 or offset + size > len(data):
            raise ModelFileError(f"{path} is truncated: the {role} engine is incomplete")
        engines[role] = data[offset:offset + size]
    return header, engines


def stale_reason(path: Path, key: Mapping[str, Any]) -> str | None:
    """Why the engine at ``path`` cannot serve ``key`` (None when it can)."""
    if not path.is_file():
        return "no cached engine"
    try:
        header, _ = read_engine_header(path)
    except ModelFileError as exc:
        return f"unreadable cached engine ({exc})"
    old = header["key"]
    for field, label in (("source", "built from another export"), ("tensorrt", "built by another TensorRT"),
                         ("gpu", "built for another GPU"), ("compute_capability", "built for another GPU"),
                         ("precision", "another precision"), ("builder", "built another way")):
        if old.get(field) != key[field]:
            return f"cached engine is stale: {label} ({old.get(field)} -> {key[field]})"
    return None


def ensure_engine(onnx_path: Path, precision: str, device: DeviceInfo,
                  build: Callable[[Path, str, Log], bytes], log: Log = _quiet) -> Path:
    """The cached engine for an ONNX pair on ``device``: reused when current, else built and written.

    ``build(onnx_graph_path, precision, log) -> serialized engine`` is :func:`build_serialized_engine`
    on a real GPU.
    """
    if precision not in ENGINE_PRECISIONS:
        raise InputError(f"TensorRT engines are built as {' or '.join(ENGINE_PRECISIONS)}, not {precision!r} "
                         f"(int8 runs on the CPU through onnxruntime: mlkd export --int8)")
    pair = find_graph_pair(onnx_path)
    meta, _ = read_onnx_meta(pair["search"])
    if meta.precision != "fp32":
        raise ModelFileError(f"{pair['search']} is an {meta.precision} graph; build engines from the fp32 export")
    key = cache_key(device, precision, onnx_digest(pair), "onnx-parser")
    path = engine_cache_path(onnx_prefix(onnx_path), precision, device)
    reason = stale_reason(path, key)
    if reason is None:
        log(f"tensorrt: reusing cached engine {path}")
        return path
    log(f"tensorrt: building {precision} engines for {device.gpu_name} ({reason}); the first build takes minutes")
    engines = {}
    for role in ROLES:
        log(f"tensorrt: building the {role} engine from {pair[role].name}")
        engines[role] = build(pair[role], precision, log)
    header = {"key": key, "meta": meta.to_json(), "source_onnx": onnx_prefix(onnx_path).name,
              "tensors": {role: {n: n for n in (*GRAPH_INPUTS[role], *GRAPH_OUTPUTS[role])} for role in ROLES}}
    write_engine_file(path, header, engines)
    log(f"tensorrt: engine written to {path}")
    return path


# ---------------------------------------------------------------- TensorRT and CUDA (GPU only)

def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise ModelFileError("the TensorRT backend needs NVIDIA TensorRT's Python package (JetPack ships it; "
                             "on a desktop: pip install tensorrt) and an NVIDIA GPU") from None
    major, minor = (int(v) for v in tensorrt.__version__.split(".")[:2])
    if (major, minor) < (8, 5):
        raise ModelFileError(f"TensorRT {tensorrt.__version__} is too old: the backend needs >= 8.5")
    return tensorrt


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python
        except ImportError:
            raise ModelFileError("the TensorRT backend needs cuda-python for device buffers and streams: "
                                 "pip install cuda-python") from None
    return cudart


def _check(result):
    """Unwrap a cuda-python ``(error, *values)`` tuple, raising on a CUDA error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelFileError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else tuple(values)


def device_index(device: str) -> int:
    """``auto``/``cuda`` -> 0, ``cuda:N`` -> N; anything else is not a GPU."""
    kind, _, index = device.partition(":")
    if kind not in ("auto", "cuda") or (index and not index.isdigit()):
        raise InputError(f"the TensorRT backend runs on a CUDA device (auto, cuda or cuda:N), not {device!r}")
    return int(index or 0)


def current_device(index: int = 0) -> DeviceInfo:
    """The GPU ``index`` and the installed TensorRT, as a cache-key part."""
    trt, cudart = _tensorrt(), _cudart()
    count = _check(cudart.cudaGetDeviceCount())
    if index >= count:
        raise InputError(f"CUDA device {index} requested but {count} device(s) present")
    props = _check(cudart.cudaGetDeviceProperties(index))
    name = props.name.split(b"\0")[0].decode() if isinstance(props.name, bytes) else str(props.name)
    return DeviceInfo(name.strip(), (int(props.major), int(props.minor)), trt.__version__)


def _trt_logger(trt, log: Log):
    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                log(f"tensorrt: {msg}")
    return Logger()


def _progress_monitor(trt, log: Log):
    """Build progress to ``log`` (TensorRT >= 10 reports phases and steps)."""
    class Progress(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.steps: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.steps[phase_name] = num_steps
            if parent_phase is None:
                log(f"tensorrt: {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            self.steps.pop(phase_name, None)
    return Progress()


def build_serialized_engine(onnx_path: Path, precision: str, log: Log = _quiet,
                            workspace_bytes: int = WORKSPACE_BYTES) -> bytes:
    """Parse one ONNX graph and build a serialized engine with the TensorRT builder API."""
    trt = _tensorrt()
    logger = _trt_logger(trt, log)
    builder = trt.Builder(logger)
    explicit = 0 if int(trt.__version__.split(".")[0]) >= 10 else \
        1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # implicit in TensorRT 10
    network = builder.create_network(explicit)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision == "fp16":
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in newer TensorRT
            log("tensorrt: this GPU has no fast fp16; building fp16 anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    if hasattr(trt, "IProgressMonitor"):
        monitor = _progress_monitor(trt, log)  # must outlive the build
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    return bytes(serialized)


class _CudaBuffers:
    """Device and pinned host memory plus one stream, freed together."""

    def __init__(self, cudart, index: int):
        self.cudart = cudart
        _check(cudart.cudaSetDevice(index))
        self.stream = _check(cudart.cudaStreamCreate())
        self._device: list[int] = []
        self._host: list[int] = []

    def device(self, nbytes: int) -> int:
        ptr = int(_check(self.cudart.cudaMalloc(nbytes)))
        self._device.append(ptr)
        return ptr

    def host(self, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A pinned (page-locked) host array: asynchronous copies need it."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(_check(self.cudart.cudaMallocHost(nbytes)))
        self._host.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    def to_device(self, dst: int, src: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, self.stream))

    def to_host(self, dst: np.ndarray, src: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.cudart.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, self.stream))

    def free(self, ptr: int) -> None:
        if ptr in self._device:
            self._device.remove(ptr)
            _check(self.cudart.cudaFree(ptr))

    def synchronize(self) -> None:
        _check(self.cudart.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        for ptr in self._device:
            self.cudart.cudaFree(ptr)
        for ptr in self._host:
            self.cudart.cudaFreeHost(ptr)
        self._device, self._host = [], []
        self.cudart.cudaStreamDestroy(self.stream)


class DeviceKernels:
    """The correlation kernels of one target, in device memory (freed with the object)."""

    def __init__(self, buffers: _CudaBuffers, nbytes: Mapping[str, int]):
        self._buffers = buffers
        self.ptrs = {name: buffers.device(size) for name, size in nbytes.items()}

    def __del__(self):
        for ptr in getattr(self, "ptrs", {}).values():
            try:
                self._buffers.free(ptr)
            except Exception:  # noqa: BLE001 - interpreter shutdown: the context may be gone
                pass


def engine_io(engine, trt) -> dict[str, tuple[tuple[int, ...], Any]]:
    """``{tensor name: (shape, numpy dtype)}`` of a deserialized engine (TensorRT >= 8.5 name API)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return {n: (tuple(engine.get_tensor_shape(n)), np.dtype(trt.nptype(engine.get_tensor_dtype(n)))) for n in names}


def check_engine_io(io: Mapping[str, tuple], tensors: Mapping[str, str], meta: ExportMeta, role: str,
                    source: str) -> None:
    """Shapes as in the metadata and float32 bindings (an fp16 engine still takes and gives float32)."""
    by_logical = {logical: io[name] for logical, name in tensors.items() if name in io}
    check_tensor_shapes({k: v[0] for k, v in by_logical.items()}, meta, role, source)
    wrong = [f"{k} is {v[1]}" for k, v in by_logical.items() if v[1] != np.float32]
    if wrong:
        raise ModelFileError(f"{source} ({role} engine): expected float32 inputs and outputs: {', '.join(wrong)}")


class TensorRTBackend:
    """Template and search engines with preallocated buffers on one CUDA stream."""

    name = "tensorrt"

    def __init__(self, path: Path, device: str = "auto", log: Log = _quiet):
        trt, cudart = _tensorrt(), _cudart()
        index = device_index(device)
        header, blobs = read_engine_file(path)
        self.meta = ExportMeta.from_json(header["meta"], str(path))
        self.meta.validate(str(path))
        self.key = header["key"]
        self.precision = self.key["precision"]
        self.device = f"cuda:{index}"
        self._buffers = _CudaBuffers(cudart, index)
        self._runtime = trt.Runtime(_trt_logger(trt, log))
        self.engines, self.contexts, self.tensors = {}, {}, header["tensors"]
        for role in ROLES:
            engine = self._runtime.deserialize_cuda_engine(blobs[role])
            if engine is None:
                raise ModelFileError(f"TensorRT {trt.__version__} cannot load the {role} engine of {path} "
                                     f"(built with TensorRT {self.key['tensorrt']} for {self.key['gpu']})")
            check_engine_io(engine_io(engine, trt), self.tensors[role], self.meta, role, str(path))
            self.engines[role] = engine
            self.contexts[role] = engine.create_execution_context()
        io = self.meta.io
        self._host = {name: self._buffers.host(io[name]) for name in ("template", "search", "cls", "loc")}
        self._device = {name: self._buffers.device(self._host[name].nbytes) for name in self._host}
        self._kernel_bytes = {name: int(np.prod(io[name])) * 4 for name in KERNELS}
        for role, names in (("template", ("template",)), ("search", ("search", "cls", "loc"))):
            for name in names:
                self.contexts[role].set_tensor_address(self.tensors[role][name], self._device[name])
        c = self.meta.tracking
        self._crop_shapes = {"template": (c.exemplar_size, c.exemplar_size, 3),
                             "search": (c.instance_size, c.instance_size, 3)}

    def _enqueue(self, role: str, crop: np.ndarray, kernels: DeviceKernels) -> None:
        """Bind the target's kernels, copy the crop in and run the ``role`` engine on the stream."""
        if crop.shape != self._crop_shapes[role] or crop.dtype != np.uint8:
            raise InputError(f"{role} crop must be {self._crop_shapes[role]} uint8, got {crop.shape} {crop.dtype}")
        context = self.contexts[role]
        for name, ptr in kernels.ptrs.items():  # outputs of the template engine, inputs of the search engine
            context.set_tensor_address(self.tensors[role][name], ptr)
        self._host[role][0] = crop.transpose(2, 0, 1)  # uint8 HWC -> float32 CHW in the pinned buffer
        self._buffers.to_device(self._device[role], self._host[role])
        if not context.execute_async_v3(int(self._buffers.stream)):
            raise ModelFileError(f"TensorRT failed to run the {role} engine")

    def template(self, crop: np.ndarray) -> DeviceKernels:
        kernels = DeviceKernels(self._buffers, self._kernel_bytes)
        self._enqueue("template", crop, kernels)
        self._buffers.synchronize()
        return kernels

    def search(self, crop: np.ndarray, kernels: DeviceKernels) -> tuple[np.ndarray, np.ndarray]:
        self._enqueue("search", crop, kernels)
        self._buffers.to_host(self._host["cls"], self._device["cls"])
        self._buffers.to_host(self._host["loc"], self._device["loc"])
        self._buffers.synchronize()
        return self._host["cls"].copy(), self._host["loc"].copy()

    def close(self) -> None:
        """Free device memory and the stream (also done at exit by the driver)."""
        self.contexts, self.engines = {}, {}
        self._buffers.close()


# ---------------------------------------------------------------- torch2trt (alternative conversion)

def build_engines_torch2trt(model, meta: ExportMeta, precision: str, log: Log = _quiet) -> dict[str, bytes]:
    """Serialized template and search engines converted by torch2trt straight from the torch module.

    torch2trt's own ``F.conv2d`` converter would freeze the example's correlation kernels into the
    search engine as constants; a converter for :func:`xcorr_depthwise` keeps them as an input.
    SiamRPN only: NanoTrack's correlations (a matmul, and v3's depthwise convolution with the kernel
    as input) have no such converter here, so its engines are built from the ONNX export.
    """
    if model.arch().get("type") != "siamrpn":
        from mlkd_tracker.config import architecture_name
        raise InputError(f"torch2trt converts SiamRPN models only; build {architecture_name(model.arch())} engines "
                         f"from its ONNX export (mlkd export --engine, the default --via onnx)")
    import torch
    try:
        from torch2trt import torch2trt
        from torch2trt.torch2trt import add_missing_trt_tensors, tensorrt_converter
    except ImportError:
        raise ModelFileError("torch2trt is not installed (pip install from NVIDIA-AI-IOT/torch2trt; JetPack "
                             "images often carry it); use the default ONNX path instead") from None
    trt = _tensorrt()
    if not torch.cuda.is_available():
        raise InputError("torch2trt needs a CUDA build of PyTorch and a GPU")

    @tensorrt_converter("mlkd_tracker.nets.siamrpn.xcorr_depthwise")
    def _convert_xcorr(ctx):  # noqa: ANN001 - torch2trt's converter signature
        search, kernel = ctx.method_args[0], ctx.method_args[1]
        search_trt, kernel_trt = add_missing_trt_tensors(ctx.network, [search, kernel])
        _, channels, kh, kw = kernel.shape
        reshape = ctx.network.add_shuffle(kernel_trt)
        reshape.reshape_dims = (channels, 1, kh, kw)
        conv = ctx.network.add_convolution_nd(search_trt, channels, (kh, kw), trt.Weights(), trt.Weights())
        conv.num_groups = channels
        conv.set_input(1, reshape.get_output(0))
        ctx.method_return._trt = conv.get_output(0)

    class Branch(torch.nn.Module):
        """One branch (a bound method of the model) as the module torch2trt converts."""

        def __init__(self, method):
            super().__init__()
            self.method = method

        def forward(self, *inputs):
            return self.method(*inputs)

    model = model.float().cuda().eval()
    io = meta.io
    template = torch.rand(io["template"], device="cuda") * 255
    with torch.no_grad():
        kernels = model.template_kernels(template)
    modules = {"template": (Branch(model.template_kernels).eval(), [template]),
               "search": (Branch(model.track).eval(), [torch.rand(io["search"], device="cuda") * 255, *kernels])}
    engines = {}
    for role, (module, inputs) in modules.items():
        log(f"torch2trt: converting the {role} branch ({precision})")
        converted = torch2trt(module, inputs, fp16_mode=precision == "fp16", max_workspace_size=WORKSPACE_BYTES,
                              input_names=list(GRAPH_INPUTS[role]), output_names=list(GRAPH_OUTPUTS[role]))
        engines[role] = bytes(converted.engine.serialize())
    return engines


def write_torch2trt_engine(model, meta: ExportMeta, prefix: Path, precision: str, device: DeviceInfo,
                           log: Log = _quiet) -> Path:
    """Convert with torch2trt and write the same engine file the ONNX path writes (keyed by the weights)."""
    path = engine_cache_path(prefix, precision, device)
    engines = build_engines_torch2trt(model, meta, precision, log)
    header = {"key": cache_key(device, precision, meta.export_id, "torch2trt"), "meta": meta.to_json(),
              "tensors": {role: {n: n for n in (*GRAPH_INPUTS[role], *GRAPH_OUTPUTS[role])} for role in ROLES}}
    return write_engine_file(path, header, engines)


# ---------------------------------------------------------------- entry point

def open_model(path: Path, device: str = "auto", precision: str = "auto", log: Log | None = None) -> LoadedModel:
    """A TensorRT backend for an engine file, or for an ONNX pair (engine built or reused from the cache)."""
    log = log or _quiet
    index = device_index(device)
    if path.suffix.lower() == ".onnx":
        path = ensure_engine(path, "fp16" if precision == "auto" else precision, current_device(index),
                             build_serialized_engine, log)
    else:
        header, _ = read_engine_header(path)
        built = header["key"]
        if precision not in ("auto", built["precision"]):
            raise InputError(f"{path} is a {built['precision']} engine, not {precision}")
        reason = stale_reason(path, cache_key(current_device(index), built["precision"], built["source"],
                                              built["builder"]))
        if reason is not None:  # e.g. copied to another GPU or TensorRT: rebuild from the ONNX beside it
            source = header.get("source_onnx")
            onnx_path = path.with_name(f"{source}.search.onnx") if source else None
            if onnx_path is None or not onnx_path.is_file():
                raise ModelFileError(f"{path}: {reason}, and its ONNX export is not beside it to rebuild from")
            path = ensure_engine(onnx_path, built["precision"], current_device(index), build_serialized_engine, log)
    backend = TensorRTBackend(path, device, log)
    meta = backend.meta
    info = {"backend": "tensorrt", "device": backend.device, "precision": backend.precision, "file": str(path),
            "files": [str(path)], "model_bytes": path.stat().st_size, "gpu": backend.key["gpu"],
            **{k: v for k, v in meta.arch.items() if v is not None}}
    log(f"tensorrt: {meta.name} ({backend.precision}) on {backend.key['gpu']}")
    return LoadedModel(backend, meta.tracking, meta.name, info)
