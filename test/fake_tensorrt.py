"""Stand-ins for the ``tensorrt`` and ``cuda-python`` modules, for running our TensorRT code paths without a GPU.

They test OUR logic only (cache, engine files, buffer binding, copies, call order), never TensorRT:
"device" memory is host memory, copies are ``memmove``, and an engine "runs" by checking that every
tensor has an address and writing constants into its outputs.
"""
from __future__ import annotations

import ctypes
import enum
import types

import numpy as np


def make_modules(io: dict[str, tuple[int, ...]]) -> dict[str, types.ModuleType]:
    """``{"tensorrt": ..., "cuda": ..., "cuda.bindings": ..., "cuda.bindings.runtime": ...}`` for ``sys.modules``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    trt.built = []

    class ILogger:
        Severity = enum.IntEnum("Severity", "INTERNAL_ERROR ERROR WARNING INFO VERBOSE", start=0)

        def __init__(self):
            pass

    class IProgressMonitor:
        def __init__(self):
            pass

    class Config:
        def __init__(self):
            self.flags, self.progress_monitor = [], None

        def set_memory_pool_limit(self, pool, size):
            self.workspace = size

        def set_flag(self, flag):
            self.flags.append(flag)

    class Builder:
        platform_has_fast_fp16 = True

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return types.SimpleNamespace(flags=flags)

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            config.progress_monitor.phase_start("Building engine", None, 2)
            config.progress_monitor.step_complete("Building engine", 0)
            config.progress_monitor.phase_finish("Building engine")
            trt.built.append((network.parsed, config.flags))
            return f"engine:{network.parsed}".encode()

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            self.network = network

        def parse_from_file(self, path):
            self.network.parsed = "template" if "template" in path else "search"
            return True

    class Context:
        def __init__(self, names, role):
            self.names, self.role, self.addresses = names, role, {}

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            assert set(self.addresses) == set(self.names), f"unbound tensors: {set(self.names) - set(self.addresses)}"
            outputs = ("kernel_cls", "kernel_loc") if self.role == "template" else ("cls", "loc")
            for name in outputs:
                n = int(np.prod(io[name]))
                np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses[name]))[:] = 0.5
            return True

    class Engine:
        def __init__(self, blob):
            self.role = blob.decode().split(":")[1]
            self.names = ["template", "kernel_cls", "kernel_loc"] if self.role == "template" else \
                ["search", "kernel_cls", "kernel_loc", "cls", "loc"]
            self.num_io_tensors = len(self.names)

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_shape(self, name):
            return io[name]

        def get_tensor_dtype(self, name):
            return "float32"

        def create_execution_context(self):
            return Context(self.names, self.role)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine(blob)

    trt.ILogger, trt.IProgressMonitor, trt.Builder, trt.OnnxParser, trt.Runtime = (
        ILogger, IProgressMonitor, Builder, OnnxParser, Runtime)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", "WORKSPACE", start=0)
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", "FP16", start=0)
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", start=0)
    trt.nptype = lambda dtype: np.dtype(dtype)

    runtime = types.ModuleType("cuda.bindings.runtime")
    runtime.live = {}
    ok = enum.IntEnum("cudaError_t", "cudaSuccess", start=0).cudaSuccess
    runtime.cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", "cudaMemcpyHostToDevice cudaMemcpyDeviceToHost")

    def alloc(nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        runtime.live[ctypes.addressof(buf)] = buf
        return ok, ctypes.addressof(buf)

    def free(ptr):
        runtime.live.pop(ptr)
        return (ok,)

    runtime.cudaMalloc = runtime.cudaMallocHost = alloc
    runtime.cudaFree = runtime.cudaFreeHost = free
    runtime.cudaGetDeviceCount = lambda: (ok, 1)
    runtime.cudaGetDeviceProperties = lambda i: (ok, types.SimpleNamespace(name=b"Stand-in GPU\0\0", major=8, minor=7))
    runtime.cudaSetDevice = lambda i: (ok,)
    runtime.cudaStreamCreate = lambda: (ok, 7)
    runtime.cudaStreamSynchronize = runtime.cudaStreamDestroy = lambda stream: (ok,)
    runtime.cudaMemcpyAsync = lambda dst, src, n, kind, stream: (ctypes.memmove(dst, src, n), ok)[1:]
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = runtime
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings
    return {"tensorrt": trt, "cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": runtime}
