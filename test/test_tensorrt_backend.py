"""TensorRT backend: everything that needs no GPU (cache keys, staleness, engine files, shape checks, errors).

No NVIDIA GPU or TensorRT is present where these tests run. Engine building is injected: the
``build`` stand-ins below return fake engine bytes, and one test runs the whole path against the
stand-in modules of ``fake_tensorrt.py``; these tests check our caching, file, binding and
buffer logic only, never TensorRT itself. Inference and real builds run only on a GPU machine
(``test_real_engine_matches_onnxruntime``, skipped here).
"""
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from export_helpers import tiny_export
from mlkd_tracker.backends import load_model
from mlkd_tracker.backends.exported import ExportMeta, read_onnx_meta
from mlkd_tracker.backends.tensorrt_backend import (DeviceInfo, check_engine_io, engine_cache_path, engine_io,
                                                    ensure_engine, read_engine_file, read_engine_header,
                                                    stale_reason, write_engine_file)
from mlkd_tracker.errors import InputError, ModelFileError

ORIN = DeviceInfo("NVIDIA Jetson AGX Orin", (8, 7), "10.3.0")
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


class CountingBuild:
    """Stands in for TensorRT's builder: returns recognisable bytes and counts the builds (tests our logic only)."""

    def __init__(self):
        self.calls = []

    def __call__(self, onnx_path, precision, log):
        self.calls.append((onnx_path.name, precision))
        return f"engine:{onnx_path.name}:{precision}".encode()


@pytest.fixture
def export_copy(tmp_path):
    _, paths, _ = tiny_export("student")
    for path in paths.values():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / "tiny-student.search.onnx"


def test_cache_key_parts_are_in_the_file_name():
    assert ORIN.slug() == "nvidia-jetson-agx-orin-sm87-trt10.3.0"
    path = engine_cache_path(Path("/m/student"), "fp16", ORIN)
    assert path.name == "student.fp16.nvidia-jetson-agx-orin-sm87-trt10.3.0.engine"


def test_engines_are_built_once_then_reused_and_rebuilt_when_stale(export_copy):
    build, lines = CountingBuild(), []
    path = ensure_engine(export_copy, "fp16", ORIN, build, lines.append)
    assert build.calls == [("tiny-student.template.onnx", "fp16"), ("tiny-student.search.onnx", "fp16")]
    assert any("no cached engine" in line for line in lines) and any("takes minutes" in line for line in lines)
    header, engines = read_engine_file(path)
    assert engines == {"template": b"engine:tiny-student.template.onnx:fp16",
                       "search": b"engine:tiny-student.search.onnx:fp16"}
    assert header["key"]["gpu"] == "NVIDIA Jetson AGX Orin" and header["key"]["compute_capability"] == [8, 7]
    assert header["key"]["tensorrt"] == "10.3.0" and header["key"]["precision"] == "fp16"

    lines.clear()
    assert ensure_engine(export_copy.with_name("tiny-student.onnx"), "fp16", ORIN, build, lines.append) == path
    assert len(build.calls) == 2 and lines == [f"tensorrt: reusing cached engine {path}"]

    # a new export (other weights, other tracking values...) makes the cached engine stale
    model = onnx.load(str(export_copy))
    model.doc_string += " re-exported"
    onnx.save(model, str(export_copy))
    ensure_engine(export_copy, "fp16", ORIN, build, lines.append)
    assert len(build.calls) == 4 and any("built from another export" in line for line in lines)

    # another TensorRT version is a different cache entry; fp32 is another one again
    newer = DeviceInfo(ORIN.gpu_name, ORIN.compute_capability, "10.7.0")
    assert ensure_engine(export_copy, "fp16", newer, build) != path
    assert ensure_engine(export_copy, "fp32", ORIN, build).name.startswith("tiny-student.fp32.")
    assert len(build.calls) == 8


def test_stale_reasons_name_what_changed(export_copy):
    path = ensure_engine(export_copy, "fp16", ORIN, CountingBuild())
    key = read_engine_header(path)[0]["key"]
    assert stale_reason(path, key) is None
    assert "another TensorRT (10.3.0 -> 10.4.0)" in stale_reason(path, {**key, "tensorrt": "10.4.0"})
    assert "another GPU" in stale_reason(path, {**key, "gpu": "NVIDIA GeForce RTX 4090"})
    assert stale_reason(path.with_name("absent.engine"), key) == "no cached engine"


def test_engine_file_carries_the_model_metadata(export_copy):
    path = ensure_engine(export_copy, "fp32", ORIN, CountingBuild())
    header, _ = read_engine_header(path)
    meta = ExportMeta.from_json(header["meta"], str(path))
    onnx_meta, _ = read_onnx_meta(export_copy)
    assert meta == onnx_meta and meta.tracking.penalty_k == 0.2 and meta.name == "tiny student"
    assert header["tensors"]["search"] == {"search": "search", "kernel_cls": "kernel_cls",
                                           "kernel_loc": "kernel_loc", "cls": "cls", "loc": "loc"}


def test_corrupt_engine_files_are_clear_errors(tmp_path, export_copy):
    plain = tmp_path / "plain.engine"
    plain.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="not an mlkd engine file .*mlkd export --engine"):
        read_engine_header(plain)
    good = ensure_engine(export_copy, "fp16", ORIN, CountingBuild())
    cut = tmp_path / "cut.engine"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="truncated: the search engine is incomplete"):
        read_engine_file(cut)
    head = tmp_path / "head.engine"
    head.write_bytes(good.read_bytes()[:20])
    with pytest.raises(ModelFileError, match="truncated or incomplete engine header|corrupt engine header"):
        read_engine_header(head)
    with pytest.raises(ModelFileError, match="engine file not found"):
        read_engine_header(tmp_path / "absent.engine")


def test_only_fp16_and_fp32_engines_from_fp32_exports(export_copy, tmp_path):
    with pytest.raises(InputError, match=r"fp16 or fp32, not 'int8' .*mlkd export --int8"):
        ensure_engine(export_copy, "int8", ORIN, CountingBuild())
    meta = read_onnx_meta(export_copy)[0]
    for role in ("template", "search"):
        model = onnx.load(str(export_copy.with_name(f"tiny-student.{role}.onnx")))
        del model.metadata_props[:]
        for key, value in {**meta.to_props(role), "mlkd.precision": "int8"}.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp_path / f"q.{role}.onnx"))
    with pytest.raises(ModelFileError, match="is an int8 graph; build engines from the fp32 export"):
        ensure_engine(tmp_path / "q.onnx", "fp16", ORIN, CountingBuild())


class StandInEngine:
    """Answers the name-based tensor queries of ``ICudaEngine`` (tests our shape logic only)."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i):
        return list(self.tensors)[i]

    def get_tensor_shape(self, name):
        return self.tensors[name][0]

    def get_tensor_dtype(self, name):
        return self.tensors[name][1]


class StandInTrt:
    @staticmethod
    def nptype(dtype):
        return dtype


def test_engine_shapes_and_types_are_checked_against_the_metadata(export_copy):
    meta = read_onnx_meta(export_copy)[0]
    names = {n: n for n in ("search", "kernel_cls", "kernel_loc", "cls", "loc")}
    good = {n: (meta.io[n], np.float32) for n in names}
    io = engine_io(StandInEngine(good), StandInTrt)
    check_engine_io(io, names, meta, "search", "m.engine")
    wrong = engine_io(StandInEngine({**good, "cls": ((1, 10, 17, 17), np.float32)}), StandInTrt)
    with pytest.raises(ModelFileError, match=r"m.engine \(search graph\) does not match its metadata: "
                                             r"cls is \(1, 10, 17, 17\), expected \(1, 10, 21, 21\)"):
        check_engine_io(wrong, names, meta, "search", "m.engine")
    half = engine_io(StandInEngine({**good, "search": (meta.io["search"], np.float16)}), StandInTrt)
    with pytest.raises(ModelFileError, match="expected float32 inputs and outputs: search is float16"):
        check_engine_io(half, names, meta, "search", "m.engine")


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed: the missing-package message cannot show")
def test_missing_tensorrt_is_a_clear_error(export_copy):
    with pytest.raises(ModelFileError, match="needs NVIDIA TensorRT's Python package"):
        load_model(export_copy, backend="tensorrt")
    path = ensure_engine(export_copy, "fp16", ORIN, CountingBuild())
    with pytest.raises(ModelFileError, match="needs NVIDIA TensorRT's Python package"):
        load_model(path)  # .engine: TensorRT chosen by the suffix
    with pytest.raises(InputError, match="runs on a CUDA device .*not 'cpu'"):
        load_model(path, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT or importlib.util.find_spec("cuda") is None,
                    reason="needs TensorRT, cuda-python and an NVIDIA GPU")
def test_real_engine_matches_onnxruntime(export_copy):
    """On a GPU machine: build real fp32 and fp16 engines, compare with ONNX Runtime on the CPU."""
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, (127, 127, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (287, 287, 3), dtype=np.uint8)
    ort = load_model(export_copy, "cpu").backend
    ref_cls, ref_loc = ort.search(x, ort.template(z))
    for precision, tolerance in (("fp32", 1e-3), ("fp16", 0.05)):
        trt = load_model(export_copy, "cuda", precision, backend="tensorrt").backend
        cls, loc = trt.search(x, trt.template(z))
        assert np.abs(cls - ref_cls).max() <= tolerance * max(1.0, np.abs(ref_cls).max())
        assert np.abs(loc - ref_loc).max() <= tolerance * max(1.0, np.abs(ref_loc).max())
        assert load_model(export_copy, "cuda", precision, backend="tensorrt").info["file"] == str(
            engine_cache_path(export_copy.with_name("tiny-student"), precision, trt_device()))


def trt_device():
    from mlkd_tracker.backends.tensorrt_backend import current_device
    return current_device(0)


def test_build_cache_and_inference_paths_run_with_stand_in_modules(export_copy, monkeypatch):
    """Our TensorRT code end to end against stand-in tensorrt / cuda-python modules (our logic only:
    builder calls and flags, progress lines, engine file, buffer binding, copies, memory release)."""
    from fake_tensorrt import make_modules
    from mlkd_tracker.backends import create_tracker
    modules = make_modules(read_onnx_meta(export_copy)[0].io)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    lines = []
    tracker, loaded = create_tracker(export_copy, backend="tensorrt", log=lines.append)
    assert modules["tensorrt"].built == [("template", [0]), ("search", [0])]  # both graphs, FP16 flag set
    assert any("Building engine (2 steps)" in line for line in lines)
    assert loaded.info["backend"] == "tensorrt" and loaded.info["precision"] == "fp16"
    assert Path(loaded.info["file"]).name == "tiny-student.fp16.stand-in-gpu-sm87-trt10.3.0.engine"
    assert loaded.config.penalty_k == 0.2  # tracking values from the engine header
    frames = [np.full((240, 320, 3), 30, np.uint8)] * 3
    tracker.init(frames[0], (100, 100, 40, 30))
    kernels = loaded.backend.template(np.zeros((127, 127, 3), np.uint8))
    cls, loc = loaded.backend.search(np.zeros((287, 287, 3), np.uint8), kernels)
    assert cls.shape == (1, 10, 21, 21) and (cls == 0.5).all() and (loc == 0.5).all()  # copied back from "device"
    for frame in frames[1:]:
        assert np.isfinite(tracker.update(frame).box_xywh).all()
    with pytest.raises(InputError, match=r"search crop must be \(287, 287, 3\) uint8"):
        loaded.backend.search(np.zeros((255, 255, 3), np.uint8), kernels)
    del kernels
    live = len(modules["cuda.bindings.runtime"].live)
    tracker.init(frames[0], (100, 100, 40, 30))  # a new target: the old kernels' device memory is freed
    assert len(modules["cuda.bindings.runtime"].live) == live
    _, again = create_tracker(export_copy, backend="tensorrt", log=lines.append)
    assert len(modules["tensorrt"].built) == 2 and lines[-2].startswith("tensorrt: reusing cached engine")
    loaded.backend.close()
    again.backend.close()


@pytest.fixture(params=[2, 3], ids=["nanotrack-v2", "nanotrack-v3"])
def nanotrack_copy(request, tmp_path):
    """The released NanoTrack v2 / v3 exported to ONNX, copied where an engine can be cached beside it."""
    from export_helpers import nanotrack_export

    _, paths, _ = nanotrack_export(request.param)
    for path in paths.values():
        shutil.copy(path, tmp_path / path.name)
    return request.param, tmp_path / "nanotrack.search.onnx"


def test_nanotrack_engines_carry_the_point_geometry(nanotrack_copy):
    """Engine building, caching and shape checks for a NanoTrack export: 255 px search crop, 2 + 4 maps of
    16x16 (v2) or 15x15 (v3) points, kernels as exported, tracking values and decoder in the header."""
    version, onnx_path = nanotrack_copy
    side = 16 if version == 2 else 15
    build = CountingBuild()
    path = ensure_engine(onnx_path, "fp16", ORIN, build)
    assert path.name == "nanotrack.fp16.nvidia-jetson-agx-orin-sm87-trt10.3.0.engine"
    assert build.calls == [("nanotrack.template.onnx", "fp16"), ("nanotrack.search.onnx", "fp16")]
    header, _ = read_engine_header(path)
    meta = ExportMeta.from_json(header["meta"], str(path))
    assert meta == read_onnx_meta(onnx_path)[0]
    assert meta.arch["type"] == "nanotrack" and meta.arch["version"] == version
    assert meta.tracking.decoder == "points" and meta.tracking.score_size == side
    kernel_channels = 48 if version == 2 else 192  # v3 stacks its pixel-wise and depthwise kernels
    assert meta.io == {"template": (1, 3, 127, 127), "search": (1, 3, 255, 255),
                       "kernel_cls": (1, kernel_channels, 8, 8), "kernel_loc": (1, kernel_channels, 8, 8),
                       "cls": (1, 2, side, side), "loc": (1, 4, side, side)}
    assert ensure_engine(onnx_path.with_name("nanotrack.onnx"), "fp16", ORIN, build) == path and len(build.calls) == 2

    names = {n: n for n in ("search", "kernel_cls", "kernel_loc", "cls", "loc")}
    good = {n: (meta.io[n], np.float32) for n in names}
    check_engine_io(engine_io(StandInEngine(good), StandInTrt), names, meta, "search", "nt.engine")
    anchors = {**good, "cls": ((1, 10, side, side), np.float32), "search": ((1, 3, 287, 287), np.float32)}
    with pytest.raises(ModelFileError, match=r"search is \(1, 3, 287, 287\), expected \(1, 3, 255, 255\); "
                                             rf"cls is \(1, 10, {side}, {side}\), expected \(1, 2, {side}, {side}\)"):
        check_engine_io(engine_io(StandInEngine(anchors), StandInTrt), names, meta, "search", "nt.engine")


def test_nanotrack_runs_through_the_stand_in_engine_path(nanotrack_copy, monkeypatch):
    """create_tracker on a NanoTrack export with backend=tensorrt: engine built, buffers sized from the point
    geometry, 255 px crops in, (1, 2, S, S) / (1, 4, S, S) maps out, the point decoder tracking on them."""
    from fake_tensorrt import make_modules
    from mlkd_tracker.backends import create_tracker
    from nanotrack_reference import real_clip

    version, onnx_path = nanotrack_copy
    side = 16 if version == 2 else 15
    modules = make_modules(read_onnx_meta(onnx_path)[0].io)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    tracker, loaded = create_tracker(onnx_path, backend="tensorrt")
    assert modules["tensorrt"].built == [("template", [0]), ("search", [0])]
    assert loaded.info["type"] == "nanotrack" and loaded.info["version"] == version
    assert loaded.config.decoder == "points" and loaded.config.instance_size == 255
    kernels = loaded.backend.template(np.zeros((127, 127, 3), np.uint8))
    cls, loc = loaded.backend.search(np.zeros((255, 255, 3), np.uint8), kernels)
    assert cls.shape == (1, 2, side, side) and loc.shape == (1, 4, side, side) and (cls == 0.5).all()
    with pytest.raises(InputError, match=r"search crop must be \(255, 255, 3\) uint8"):
        loaded.backend.search(np.zeros((287, 287, 3), np.uint8), kernels)
    frames, boxes = real_clip("wakeboard7", 3)
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        result = tracker.update(frame)
        assert np.isfinite(result.box_xywh).all() and result.score == pytest.approx(0.5)  # softmax of equal logits
    loaded.backend.close()


def test_torch2trt_refuses_nanotrack_before_converting():
    from mlkd_tracker.backends.tensorrt_backend import build_engines_torch2trt
    from mlkd_tracker.nets.nanotrack import NanoTrack

    with pytest.raises(InputError, match=r"torch2trt converts SiamRPN models only; build NanoTrack v3 engines "
                                         r"from its ONNX export"):
        build_engines_torch2trt(NanoTrack(3), meta=None, precision="fp16")
