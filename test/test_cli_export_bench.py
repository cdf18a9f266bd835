"""``mlkd export`` and ``mlkd bench`` end to end on a tiny checkpoint (real files, real ONNX Runtime)."""
import importlib.util
import json

import cv2
import pytest

from export_helpers import tiny_model
from fakes import moving_square_frames
from mlkd_tracker.backends import load_model
from mlkd_tracker.cli import main
from mlkd_tracker.nets.checkpoint import save_checkpoint

STAGES = ("crop", "template", "search", "post", "total")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny checkpoint exported by the command: fp32 and int8 pairs beside it."""
    folder = tmp_path_factory.mktemp("export")
    ckpt = save_checkpoint(tiny_model(), folder / "student.pth", {"name": "cli student"})
    code = main(["export", str(ckpt), "--int8", "--calib-clips", "2", "--calib-frames", "3",
                 "--set", "penalty_k=0.25"])
    assert code == 0
    return ckpt


def test_export_writes_fp32_and_int8_pairs_that_track(exported, tmp_path, capsys):
    folder = exported.parent
    for name in ("student.template.onnx", "student.search.onnx", "student.int8.template.onnx",
                 "student.int8.search.onnx"):
        assert (folder / name).stat().st_size > 0
    loaded = load_model(folder / "student.onnx")
    assert loaded.name == "cli student" and loaded.config.penalty_k == 0.25  # --set is stored in the export
    frames, boxes = moving_square_frames(5, size=(240, 320))
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), frame)
    out = tmp_path / "boxes.txt"
    assert main(["track", str(tmp_path), "--model", str(folder / "student.onnx"), "--precision", "int8",
                 "--init", ",".join(map(str, boxes[0])), "--output", str(out), "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_export_errors_are_one_line(exported, capsys, tmp_path):
    onnx_path = str(exported.parent / "student.onnx")
    assert main(["export", onnx_path]) == 2
    assert "already an ONNX export: ask for --int8 and/or --engine" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.pth")]) == 2
    assert "model file not found" in capsys.readouterr().err
    if importlib.util.find_spec("tensorrt") is None:
        assert main(["export", onnx_path, "--engine"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "TensorRT" in err and "Traceback" not in err


def _check_backend_figures(entry):
    for stage in STAGES:
        s = entry["stages_ms"][stage]
        assert 0 < s["p50"] <= s["p90"] <= s["p99"]
    assert entry["fps"] > 0 and entry["model_bytes"] > 0


def test_bench_on_an_export_times_fp32_and_int8(exported, tmp_path, capsys):
    report = tmp_path / "bench.json"
    assert main(["bench", "--model", str(exported.parent / "student.search.onnx"), "--frames", "3", "--warmup", "1",
                 "--template-runs", "2", "--size", "320x240", "--json", str(report), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert set(data["backends"]) == {"onnxruntime-cpu", "onnxruntime-int8"}
    for entry in data["backends"].values():
        _check_backend_figures(entry)
    assert data["backends"]["onnxruntime-int8"]["info"]["precision"] == "int8"
    assert "ONNX export" in data["skipped"]["torch-cpu"]
    assert data["architecture"]["name"] == "SiamRPN-AlexNet width 0.25"  # from the export's metadata
    out = capsys.readouterr().out
    assert "summary" in out and "template p50" in out and "onnxruntime-int8" in out


def test_bench_on_a_checkpoint_exports_and_times_every_available_backend(exported, tmp_path):
    report = tmp_path / "bench.json"
    assert main(["bench", "--model", str(exported), "--frames", "3", "--warmup", "1", "--template-runs", "2",
                 "--size", "320x240", "--exports", str(tmp_path / "exports"), "--json", str(report), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert {"torch-cpu", "onnxruntime-cpu", "onnxruntime-int8"} <= set(data["backends"])
    for entry in data["backends"].values():
        _check_backend_figures(entry)
    assert (tmp_path / "exports" / "model.int8.search.onnx").is_file()  # made for the run, kept on request
    assert data["compute_floor"]["search_gflop"] > 0 and data["compute_floor"]["floor_ms"] > 0
    assert data["compute_floor"]["published_mflops"] is None
    assert data["architecture"] == {"name": "SiamRPN-AlexNet width 0.25", "type": "siamrpn", "width": 0.25,
                                    "decoder": "anchors", "search_crop": 287, "score_map": 21}
    if importlib.util.find_spec("tensorrt") is None:
        assert "TensorRT is not installed" in data["skipped"]["tensorrt-fp16"]


def test_bench_turns_time_the_asked_frames_after_warmup_and_settling():
    from mlkd_tracker.cli.bench import SETTLE, turns

    schedule = turns(frames=7, warmup=3, block=5)
    indices = [i for turn in schedule for i, _ in turn]
    assert indices == list(range(1, len(indices) + 1))  # every tracker sees every frame, in order
    timed = [i for turn in schedule for i, t in turn if t]
    assert len(timed) == 7 and min(timed) > 3
    assert all(not t for turn in schedule for _, t in turn[:SETTLE])


def test_bench_refuses_what_cannot_run(exported, capsys, tmp_path):
    assert main(["bench", "--backends", "tflite"]) == 2
    assert "unknown --backends ['tflite']" in capsys.readouterr().err
    assert main(["bench", "--model", str(exported.parent / "student.onnx"), "--backends", "torch-cpu"]) == 2
    assert "no backend can run here: torch-cpu: the model is an ONNX export" in capsys.readouterr().err
    if importlib.util.find_spec("tensorrt") is None:  # an engine file: only the tensorrt variants apply
        (tmp_path / "m.fp16.engine").write_bytes(b"x")
        assert main(["bench", "--model", str(tmp_path / "m.fp16.engine")]) == 2
        err = capsys.readouterr().err
        assert "torch-cpu: the model is a TensorRT engine" in err and "tensorrt-fp16: TensorRT is not installed" in err


@pytest.mark.parametrize("version", [1, 2, 3])
def test_bench_names_a_nanotrack_config_and_counts_its_flops_beside_the_authors(version, tmp_path, capsys):
    """A NanoTrack model YAML (random weights): the run says the architecture and the point geometry, and the
    search branch's multiply-adds sit just under the MFLOPs the authors publish (their count adds a little)."""
    from mlkd_tracker.config import models_dir
    from mlkd_tracker.nets.nanotrack import PUBLISHED_MFLOPS

    report = tmp_path / "bench.json"
    assert main(["bench", "--model", str(models_dir() / f"nanotrack_v{version}.yaml"), "--backends", "torch-cpu",
                 "--frames", "3", "--warmup", "1", "--template-runs", "2", "--size", "320x240",
                 "--json", str(report), "--quiet"]) == 0
    data = json.loads(report.read_text())
    score_map = 15 if version == 3 else 16
    assert data["architecture"] == {"name": f"NanoTrack v{version}", "type": "nanotrack", "version": version,
                                    "decoder": "points", "search_crop": 255, "score_map": score_map}
    _check_backend_figures(data["backends"]["torch-cpu"])
    floor = data["compute_floor"]
    assert floor["published_mflops"] == PUBLISHED_MFLOPS[version]
    assert 0.85 < floor["search_gflop"] * 500 / PUBLISHED_MFLOPS[version] < 1.0, floor
    out = capsys.readouterr().out
    assert f"NanoTrack v{version} (points decoder, 255 px search crop, {score_map}x{score_map} score map)" in out
    assert f"the authors count {PUBLISHED_MFLOPS[version]} MFLOPs" in out and "multiply-adds M" in out


def test_bench_runs_the_released_nanotrack_on_torch_and_its_onnx_export(tmp_path):
    from nanotrack_reference import official

    report = tmp_path / "bench.json"
    assert main(["bench", "--model", str(official(2)), "--backends", "torch-cpu", "onnxruntime-cpu", "--frames", "3",
                 "--warmup", "1", "--template-runs", "2", "--size", "320x240", "--exports", str(tmp_path / "x"),
                 "--json", str(report), "--quiet"]) == 0
    data = json.loads(report.read_text())
    assert data["architecture"]["name"] == "NanoTrack v2" and set(data["backends"]) == {"torch-cpu", "onnxruntime-cpu"}
    for entry in data["backends"].values():
        _check_backend_figures(entry)
        assert entry["info"]["type"] == "nanotrack" and entry["info"]["version"] == 2
    assert data["backends"]["torch-cpu"]["model"] == data["backends"]["onnxruntime-cpu"]["model"] == "nanotrackv2"
    assert (tmp_path / "x" / "model.search.onnx").is_file()
