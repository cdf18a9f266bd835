"""``mlkd test`` and ``mlkd eval`` end to end: real frames, OpenCV peers, a model file, result files, JSON, PNGs."""
import json
import os
import re

import numpy as np
import pytest
import torch

from dataset_fixtures import box_lines, write_uav_dataset, write_uav_video_dataset
from mlkd_tracker.cli import main
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_training.data.readers import open_dataset, read_boxes
from mlkd_training.data.sequence import Sequence
from mlkd_training.evaluation.metrics import iou
from mlkd_training.evaluation.peers import OpenCVTracker, available_peers
from mlkd_training.evaluation.runner import TrackerSpec, default_tracker_name, run_tracker, track_sequence


@pytest.fixture
def dataset_dir(tmp_path):
    root = tmp_path / "NightSet"
    write_uav_dataset(root, count=3, frames=12)
    att = root / "anno" / "att"
    att.mkdir()
    for k in range(3):
        (att / f"seq{k + 1}.txt").write_text(",".join("1" if i == k else "0" for i in range(12)) + "\n")
    return root


def test_peers_exist_and_follow_a_photographic_target():
    assert {"csrt", "kcf", "mosse"} <= set(available_peers())
    import skimage.data

    patch = np.ascontiguousarray(skimage.data.astronaut()[150:214, 200:264, ::-1])  # 64 px, BGR
    background = np.random.default_rng(0).integers(0, 60, (240, 320, 3), dtype=np.uint8)
    frames, boxes = [], []
    for i in range(15):
        x, y = 60 + 3 * i, 80 + i
        frame = background.copy()
        frame[y:y + 64, x:x + 64] = patch
        frames.append(frame)
        boxes.append((x, y, 64, 64))
    for name in ("csrt", "kcf", "mosse"):
        tracker = OpenCVTracker(name)
        tracker.init(frames[0], boxes[0])
        results = [tracker.update(frame) for frame in frames[1:]]
        for result, (gx, gy, gw, gh) in zip(results, boxes[1:]):
            x, y, w, h = result.box_xywh
            assert abs(x + w / 2 - gx - gw / 2) < 3 and abs(y + h / 2 - gy - gh / 2) < 3, name
    kcf = OpenCVTracker("kcf")  # no one-frame lag (the init frame is learnt first)
    kcf.init(frames[0], boxes[0])
    assert kcf.update(frames[1]).box_xywh[:2] == pytest.approx(boxes[1][:2], abs=1)


def test_mlkd_test_writes_pysot_results_and_resumes(dataset_dir, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["test", str(dataset_dir), "-t", "kcf", "-t", "mosse", "--results", str(results), "--quiet"]) == 0
    folder = results / "NightSet" / "kcf"
    gt = open_dataset(dataset_dir)["seq2"].gt
    boxes = read_boxes(folder / "seq2.txt")
    assert boxes.shape == (12, 4)
    np.testing.assert_allclose(boxes[0], gt[0])  # first line: the init box
    speed = json.loads((folder / "speed.json").read_text())
    assert set(speed) == {"seq1", "seq2", "seq3"} and speed["seq1"]["frames"] == 12 and speed["seq1"]["fps"] > 0
    assert "mosse" in capsys.readouterr().out
    before = (folder / "seq1.txt").stat().st_mtime_ns
    (folder / "seq3.txt").unlink()  # as if interrupted before the last sequence
    summary = run_tracker(open_dataset(dataset_dir), TrackerSpec("kcf", "kcf"), results, progress=False)
    assert summary.skipped == ["seq1", "seq2"] and summary.ran == ["seq3"]
    assert (folder / "seq1.txt").stat().st_mtime_ns == before and (folder / "seq3.txt").is_file()
    assert not list(results.rglob("*.partial*"))


def test_mlkd_test_model_file_and_parallel_workers(dataset_dir, tmp_path):
    torch.manual_seed(0)
    model = save_checkpoint(SiamRPN(width=0.25), tmp_path / "tiny.pth", {"name": "tiny"})
    results = tmp_path / "results"
    write_uav_dataset(tmp_path / "Short", count=1, frames=4)  # the CPU network is slow: few frames
    assert main(["test", str(tmp_path / "Short"), "-t", str(model), "--results", str(results), "--quiet"]) == 0
    boxes = read_boxes(results / "Short" / "tiny" / "seq1.txt")
    assert boxes.shape == (4, 4) and np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
    assert main(["test", str(dataset_dir), "-t", "kcf", "--name", "kcf2", "--workers", "2",
                 "--results", str(results), "--quiet"]) == 0
    serial = run_tracker(open_dataset(dataset_dir), TrackerSpec("kcf", "kcf1"), results, progress=False)
    assert serial.ran == ["seq1", "seq2", "seq3"]
    for seq in ("seq1", "seq2", "seq3"):  # parallel processes give the same boxes
        np.testing.assert_array_equal(read_boxes(results / "NightSet" / "kcf1" / f"{seq}.txt"),
                                      read_boxes(results / "NightSet" / "kcf2" / f"{seq}.txt"))


def test_mlkd_test_and_eval_on_a_video_dataset(tmp_path, capsys):
    root = tmp_path / "Clips"
    gts = write_uav_video_dataset(root, count=2, frames=20)  # data_seq/<seq>.mp4 + anno/<seq>.txt
    results = tmp_path / "results"
    assert main(["test", str(root), "-t", "csrt", "--workers", "2", "--results", str(results), "--quiet"]) == 0
    for name, gt in gts.items():
        boxes = read_boxes(results / "Clips" / "csrt" / f"{name}.txt")
        assert boxes.shape == (20, 4)
        np.testing.assert_allclose(boxes[0], gt[0])
    assert main(["eval", str(root), "--results", str(results), "--no-plots", "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert report["sequences"] == 2 and report["trackers"][0]["name"] == "csrt"
    assert "csrt" in capsys.readouterr().out


@pytest.fixture
def nanotrack_v2(shared_data):
    folder = shared_data / "nanotrack" / "v2"
    if not (folder / "nanotrack_head_sim.onnx").is_file() or not (shared_data / "uav_real").is_dir():
        pytest.skip("NanoTrack v2 ONNX networks or uav_real not found under ../shared/data")
    return folder


def test_opencv_nanotrack_peer_tracks_a_real_clip(nanotrack_v2, shared_data, tmp_path, capsys):
    uav_real, results = shared_data / "uav_real", tmp_path / "results"
    spec = f"nano:{nanotrack_v2 / 'nanotrack_backbone_sim.onnx'},{nanotrack_v2 / 'nanotrack_head_sim.onnx'}"
    assert default_tracker_name(spec) == default_tracker_name(f"nano:{nanotrack_v2}") == "opencv-nano"
    assert main(["test", str(uav_real), "--sequences", "MountainBike6", "-t", spec, "--threads", "2",
                 "--results", str(results), "--quiet"]) == 0
    assert "opencv-nano" in capsys.readouterr().out
    boxes = read_boxes(results / "uav_real" / "opencv-nano" / "MountainBike6.txt")
    gt = open_dataset(uav_real, sequences=["MountainBike6"])[0].gt
    assert boxes.shape == gt.shape and iou(boxes, gt).mean() > 0.55  # 0.69 measured (81 frames, 26x23 px target)


def test_opencv_nanotrack_reinitialises_and_rounds_boxes_to_the_nearest_pixel(nanotrack_v2, shared_data):
    seq = open_dataset(shared_data / "uav_real", sequences=["wakeboard7"])[0]  # a 5.5 x 19 px target
    short = Sequence(seq.name, seq.store.head(12), seq.gt[:12])
    tracker = OpenCVTracker(f"nano:{nanotrack_v2}")
    # corners (10.4, 20.6), (15.9, 39.6) -> (10, 21), (16, 40); CSRT's outward box would be 6 x 20 at (10, 20)
    assert tracker._native_box((10.4, 20.6, 5.5, 19.0)) == (10, 21, 6, 19)
    first, _ = track_sequence(tracker, short)
    again, _ = track_sequence(tracker, short)  # the same networks, a fresh tracking state
    assert first == again and np.isfinite(first).all()
    assert 0.0 <= tracker.update(seq.frame(12)).score <= 1.0


def test_opencv_nanotrack_spec_errors_are_one_line(nanotrack_v2, tmp_path, capsys):
    bad = tmp_path / "bad_head.onnx"
    bad.write_bytes(b"not an onnx graph")
    write_uav_dataset(tmp_path / "D", count=1, frames=3)
    for spec, message in (("nano", r"needs its authors' two ONNX networks: nano:BACKBONE\.onnx,HEAD\.onnx"),
                          (f"nano:{tmp_path}", r"must hold one \*backbone\*\.onnx and one \*head\*\.onnx"),
                          (f"nano:{nanotrack_v2}/nanotrack_backbone_sim.onnx,{tmp_path}/none.onnx",
                           r"ONNX network not found: .*none\.onnx"),
                          (f"nano:{nanotrack_v2}/nanotrack_backbone_sim.onnx,{bad}",
                           r"cv2\.TrackerNano cannot load .*bad_head\.onnx")):
        assert main(["test", str(tmp_path / "D"), "-t", spec, "--results", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(message, err), err


def test_mlkd_eval_table_json_plots_and_attributes(dataset_dir, tmp_path, capsys):
    ds = open_dataset(dataset_dir)
    results = tmp_path / "results" / "NightSet"
    for name, shift in (("shifted", 6.0), ("perfect", 0.0), ("lost", 400.0)):
        for seq in ds:
            boxes = seq.gt.copy()
            boxes[1:, 0] += shift
            (results / name).mkdir(parents=True, exist_ok=True)
            (results / name / f"{seq.name}.txt").write_text(box_lines(boxes))
    out = tmp_path / "eval"
    assert main(["eval", str(dataset_dir), "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed.split("success AUC per attribute")[0]
    assert table.index("perfect") < table.index("shifted") < table.index("lost")  # sorted by AUC
    report = json.loads((out / "eval.json").read_text())
    by_name = {t["name"]: t for t in report["trackers"]}
    assert by_name["perfect"]["success_auc"] == pytest.approx(20 / 21)
    # "lost": only the init frame (IoU 1) of 12 succeeds: (20/21) / 12
    assert by_name["lost"]["success_auc"] == pytest.approx(20 / 21 / 12)
    assert by_name["lost"]["precision_20"] == pytest.approx(1 / 12)
    assert report["attributes"]["SV"] == ["seq1"] and report["attributes"]["ARC"] == ["seq2"]
    assert by_name["shifted"]["attributes"]["SV"]["success_auc"] == pytest.approx(
        by_name["shifted"]["per_sequence"]["seq1"]["success_auc"])
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["attributes_precision.png", "attributes_success.png", "norm_precision.png", "precision.png",
                    "success.png"]
    assert (out / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "success.png").stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600
    assert main(["eval", str(dataset_dir), "--results", str(results), "-t", "perfect", "--no-plots",
                 "--out", str(tmp_path / "e2")]) == 0
    assert not list((tmp_path / "e2").glob("*.png"))


@pytest.mark.parametrize("make_args,message", [
    (lambda d, r: ["eval", str(d), "--results", str(r)], "no results for 1 of 3 sequences"),
    (lambda d, r: ["eval", str(d), "--results", str(r / "nowhere")], "results folder not found"),
    (lambda d, r: ["eval", str(d), "--results", str(r), "-t", "ghost"], "no results folder for tracker ghost"),
    (lambda d, r: ["test", str(d), "-t", "boosting2", "--results", str(r)], "model file not found|unknown model"),
    (lambda d, r: ["test", str(d / "nope"), "-t", "kcf"], "dataset not found"),
    (lambda d, r: ["test", str(d), "-t", "kcf", "-t", "csrt", "--name", "x"], "--name names a single tracker"),
])
def test_errors_are_one_line(dataset_dir, tmp_path, capsys, make_args, message):
    results = tmp_path / "results"
    (results / "NightSet" / "kcf").mkdir(parents=True)
    (results / "NightSet" / "kcf" / "seq1.txt").write_text("1,1,5,5\n" * 12)
    (results / "NightSet" / "kcf" / "seq2.txt").write_text("1,1,5,5\n" * 12)
    assert main(make_args(dataset_dir, results)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlkd ")
    assert re.search(message, err), err


def test_short_result_file_is_named(dataset_dir, tmp_path, capsys):
    results = tmp_path / "results" / "NightSet" / "t"
    results.mkdir(parents=True)
    for k in range(3):
        (results / f"seq{k + 1}.txt").write_text("1,1,5,5\n" * (12 if k else 7))
    assert main(["eval", str(dataset_dir), "--results", str(tmp_path / "results"), "--no-plots",
                 "--out", str(tmp_path / "e")]) == 2
    assert "seq1.txt: 7 boxes for 12 frames" in capsys.readouterr().err
