"""The deployment benchmark scripts in bench/ run end to end on tiny data and compute what they claim."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export_helpers import tiny_export

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fp32_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    for path in tiny_export("student")[1].values():
        shutil.copy(path, folder / path.name)
    return folder / "tiny-student.search.onnx"


def test_success_and_precision_follow_the_ope_definitions():
    acc = load_script("int8_accuracy")
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], float)
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [0, 0, 5, 5], [40, 40, 10, 10]], float)
    np.testing.assert_allclose(acc.iou(gt[:2], boxes[:2]), [1.0, 1 / 3])
    curve = acc.success_curve(gt, boxes)  # the NaN frame is skipped: 3 frames with IoU 1, 1/3, 0
    assert len(curve) == 21 and curve[0] == pytest.approx(2 / 3)  # IoU > 0
    assert curve[7] == pytest.approx(1 / 3)  # IoU > 0.35: only the exact box
    assert curve[-1] == 0.0  # nothing is > 1
    assert acc.precision_at(gt, boxes) == pytest.approx(2 / 3)  # centres 0, 5 and 56.6 px away


def test_int8_accuracy_script_writes_table_json_and_plot(fp32_copy, tmp_path, capsys):
    acc = load_script("int8_accuracy")
    report, plot = tmp_path / "acc.json", tmp_path / "acc.png"
    assert acc.main(["--model", str(fp32_copy), "--sequences", "2", "--frames", "6", "--calib-clips", "2",
                     "--json", str(report), "--plot", str(plot)]) == 0
    data = json.loads(report.read_text())
    assert data["frames"] == 10 and len(data["sequences"]) == 2
    for label in ("fp32", "int8"):
        r = data["results"][label]
        assert 0.0 <= r["success_auc"] <= 1.0 and r["fps"] > 0 and len(r["success_curve"]) == 21
        assert r["success_auc"] == pytest.approx(np.mean(r["success_curve"]))
    assert data["auc_change"] == pytest.approx(data["results"]["int8"]["success_auc"]
                                               - data["results"]["fp32"]["success_auc"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "AUC change int8 - fp32" in capsys.readouterr().out


def test_int8_variants_script_times_and_compares_a_variant(fp32_copy, tmp_path):
    variants = load_script("int8_variants")
    report = tmp_path / "variants.json"
    name = "qdq u8s8 per-channel reduce-range"
    assert variants.main(["--model", str(fp32_copy), "--calib-clips", "2", "--repeats", "2", "--held-out-clips", "2",
                          "--variants", name,
                          "--json", str(report)]) == 0
    result = json.loads(report.read_text())["variants"][name]
    assert result["speedup"] == pytest.approx(result["fp32_search_p50_ms"] / result["int8_search_p50_ms"])
    assert 0 <= result["best_anchor_agreement"] <= 1 and result["max_relative_diff"] < 0.5


def test_error_stats_on_known_arrays():
    tol = load_script("tolerances")
    ref = [(np.zeros((1, 2, 1, 2), np.float32) + [[[[0, 1]], [[0, 3]]]], np.full((1, 4, 1, 2), 2.0, np.float32))]
    out = [(ref[0][0] + 0.5, ref[0][1] - 0.25)]
    stats = tol.error_stats(ref, out)
    assert stats["max_abs_cls"] == 0.5 and stats["max_abs_loc"] == 0.25
    assert stats["max_relative"] == pytest.approx(0.5 / 3)
    assert stats["best_anchor_agreement"] == 1.0  # a uniform shift keeps the best anchor


def test_crop_bench_times_both_modes_on_real_sequences(tmp_path, shared_data):
    if not (shared_data / "uav_real" / "data_seq").is_dir():
        pytest.skip("real UAV sequences absent")
    crop = load_script("crop")
    report = tmp_path / "crop.json"
    assert crop.main(["--data", str(shared_data / "uav_real"), "--sequences", "1", "--frames", "6",
                      "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["frames"] == 6 and data["frame_size"] == [1280, 720]
    assert data["largest_window"] == round(((1280 + 1000) * (720 + 1000)) ** 0.5 * 287 / 127)  # a frame-sized target
    assert data["crops"]["all"] == 6 and data["crops"]["largest"] == 50
    assert set(data["crop_ms"]["all"]) == {"fast", "pysot"}
    assert 0 < data["differing_values"] < 0.3 and data["max_difference"] == 1


def test_enhancer_bench_reports_floor_ratios_and_system_time(tmp_path, monkeypatch):
    enhancer = load_script("enhancer")
    monkeypatch.setattr(enhancer, "matmul_rates", lambda: (50.0, 25.0))  # GFLOP per wall / CPU second
    report = tmp_path / "enhancer.json"
    assert enhancer.main(["--frame-sizes", "64x48", "--size", "64x48", "--tile", "32", "--threads", "1",
                          "--repeats", "1", "--frame-repeats", "2", "--warmup", "1", "--frames", "2",
                          "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["enhancer_ms"]
    assert set(rows) == {"template crop 127x127", "search crop 287x287", "search crop 287x287, reference structure",
                         "frame 64x48, 32 px tiles", "frame 64x48, one pass"}
    flops_per_pixel = 2 * 9 * (3 * 32 + 32 * 32 + 3 * 64 * 32 + 64 * 16)  # LE-Net's seven 3x3 convolutions
    frame = rows["frame 64x48, one pass"]
    assert frame["gflop"] == pytest.approx(flops_per_pixel * 64 * 48 / 1e9)
    assert frame["floor_ms"] == pytest.approx(frame["gflop"] / 50.0 * 1e3)
    assert frame["p50_over_floor"] == pytest.approx(frame["p50"] / frame["floor_ms"])
    assert frame["cpu_over_floor"] == pytest.approx(frame["cpu_ms"] / (frame["gflop"] / 25.0 * 1e3))
    assert 0 <= frame["system_share"] <= 1 and frame["minor_faults"] >= 0


def test_video_frames_script_checks_out_of_order_reads_and_writes_json(tmp_path, capsys):
    from dataset_fixtures import write_uav_video_dataset

    write_uav_video_dataset(tmp_path / "v", count=1, frames=30)  # mp4v: a keyframe every 12 frames
    bench = load_script("video_frames")
    assert bench.main(["--dataset", str(tmp_path / "v"), "--sequence", "vid1", "--samples", "9",
                       "--json", str(tmp_path / "vf.json")]) == 0
    report = json.loads((tmp_path / "vf.json").read_text())
    assert report["exact"] and report["frames"] == 30 and report["size"] == [128, 96]
    assert report["in_order_ms"] > 0 and report["canvas_memory_mb"] > 0
    assert "random order, frame store" in capsys.readouterr().out


def test_torch_speed_script_times_nanotrack_variants_against_its_floor(tmp_path, capsys):
    from nanotrack_reference import official

    official(2)  # skips without ../shared
    speed = load_script("torch_speed")
    report = tmp_path / "speed.json"
    assert speed.main(["--models", "v2", "--threads", "1", "--turns", "1", "--calls", "3", "--json", str(report)]) == 0
    entry = json.loads(report.read_text())["models"]["v2"]
    assert entry["arch"]["version"] == 2 and entry["backend_threads"] == 1
    assert round(entry["search_flops"] / 1e6, 1) == 156.1 and entry["tiny_crop_flops"] < 0.02 * entry["search_flops"]
    assert max(entry["max_abs_diff"].values()) < 1e-3  # the variants compute the same maps
    one = entry["threads"]["1"]
    assert one["floor_ms"] == pytest.approx(entry["search_flops"] / (one["matmul_gflops"] * 1e9) * 1e3)
    assert set(one["ms"]) == {"backend", "eager-cl", "eager-nchw", "torchscript", "tiny-crop"}
    assert all(0 < t["min"] <= t["p10"] <= t["p50"] for t in one["ms"].values())
    assert "p50 / floor" in capsys.readouterr().out
