"""``mlkd track`` end to end on real files, and its error messages for bad input."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from fakes import moving_square_frames
from mlkd_tracker.cli import main
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_tracker.sources import natural_key, open_source


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(SiamRPN(width=0.25), tmp_path_factory.mktemp("m") / "tiny.pth", {"name": "tiny"})


@pytest.fixture
def frame_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames, boxes = moving_square_frames(12, size=(120, 200), start=(40.0, 30.0), step=(3.0, 1.0))
    for i, f in enumerate(frames):  # names that sort wrongly as plain strings
        cv2.imwrite(str(folder / f"img{i + 1}.png"), f)
    return folder, boxes


def test_natural_sort_order(frame_folder):
    folder, _ = frame_folder
    names = [p.name for p in open_source(folder).paths]
    assert names[:3] == ["img1.png", "img2.png", "img3.png"] and names[-1] == "img12.png"
    assert sorted(["a10", "a9", "b1"], key=natural_key) == ["a9", "a10", "b1"]


def test_track_folder_writes_results_video_and_latency(frame_folder, model_file, tmp_path, capsys):
    folder, boxes = frame_folder
    out, video, lat = tmp_path / "res.txt", tmp_path / "out.mp4", tmp_path / "lat.csv"
    code = main(["track", str(folder), "--model", str(model_file), "--init", "40,30,24,24",
                 "--output", str(out), "--save-video", str(video), "--latency", str(lat), "--quiet"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 12 and lines[0] == "40.0000,30.0000,24.0000,24.0000"
    for line in lines:
        x, y, w, h = map(float, line.split(","))
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 200 and y + h <= 120
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert len(lat.read_text().splitlines()) == 12  # header + 11 tracked frames
    printed = capsys.readouterr().out
    assert "mean FPS" in printed and "p99 ms" in printed and "tiny" in printed
    assert not list(tmp_path.glob("*.partial*"))


def test_track_video_file_and_max_frames(frame_folder, model_file, tmp_path):
    folder, _ = frame_folder
    video = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 120))
    for p in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        writer.write(cv2.imread(str(p)))
    writer.release()
    out = tmp_path / "res.txt"
    assert main(["track", str(video), "--model", str(model_file), "--init", "40,30,24,24", "--output", str(out),
                 "--max-frames", "5", "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == 6


@pytest.mark.parametrize("make_args,message", [
    (lambda d, m: ["track", str(d / "empty"), "--model", str(m), "--init", "1,1,5,5"], "no images"),
    (lambda d, m: ["track", str(d / "bad.mp4"), "--model", str(m), "--init", "1,1,5,5"], "cannot open"),
    (lambda d, m: ["track", str(d / "absent.mp4"), "--model", str(m), "--init", "1,1,5,5"], "input not found"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m)], "--init x,y,w,h or draw it with --select"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m), "--init", "1,1,0,5"], "positive"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m), "--init", "500,1,5,5"], "outside"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(d / "bad.mp4"), "--init", "1,1,5,5"], "unknown model file type"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(d / "corrupt.pth"), "--init", "1,1,5,5"], "not a PyTorch checkpoint"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m), "--init", "1,1,5,5", "--set", "foo=1"], "unknown tracking parameter"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m), "--init", "1,1,5,5", "--set", "crop=exact"],
     "crop must be one of fast, pysot"),
    (lambda d, m: ["track", str(d / "mixed"), "--model", str(m), "--init", "1,1,5,5"], "frame size changed"),
    (lambda d, m: ["track", str(d / "frames"), "--model", str(m), "--init", "1,1,5,5", "--show"], "needs a display"),
])
def test_bad_input_gives_one_clear_error(tmp_path, frame_folder, model_file, capsys, monkeypatch, make_args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 100)
    (tmp_path / "corrupt.pth").write_bytes(b"\x80\x02garbage")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "1.png"), np.zeros((50, 60, 3), np.uint8))
    cv2.imwrite(str(mixed / "2.png"), np.zeros((50, 70, 3), np.uint8))
    assert main(make_args(tmp_path, model_file) + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_console_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "mlkd_tracker", "--help"], capture_output=True, text=True, check=True).stdout
    assert "track" in out and "bench" in out
    out = subprocess.run([sys.executable, "-m", "mlkd_tracker", "track", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--init" in out and "--save-video" in out
