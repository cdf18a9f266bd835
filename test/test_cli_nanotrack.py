"""``mlkd track`` and ``mlkd export`` with the released NanoTrack v3 on a real UAV clip: video, frame folder, ONNX."""
import cv2
import numpy as np
import pytest

from mlkd_tracker.cli import main
from nanotrack_reference import UAV_REAL, official, real_clip

CLIP, FRAMES = "wakeboard7", 30


def read_boxes(path):
    return np.loadtxt(path, delimiter=",", ndmin=2)


def mean_iou(a, b):
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]), np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(np.mean(inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)))


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    """``mlkd track`` on the clip's video with the released v3 checkpoint: (results file, printed output)."""
    weights = official(3)
    frames, truth = real_clip(CLIP, FRAMES + 1)
    folder = tmp_path_factory.mktemp("nanotrack-cli")
    out = folder / "torch.txt"
    init = ",".join(f"{v:g}" for v in truth[0])
    code = main(["track", str(UAV_REAL / "data_seq" / f"{CLIP}.mp4"), "--model", str(weights), "--device", "cpu",
                 "--init", init, "--max-frames", str(FRAMES), "--output", str(out),
                 "--save-video", str(folder / "tracked.mp4")])
    assert code == 0
    return out, frames, truth, init, folder


def test_track_a_real_video_with_the_released_v3_checkpoint(torch_run, capsys):
    out, frames, truth, _, folder = torch_run
    boxes = read_boxes(out)
    assert boxes.shape == (FRAMES + 1, 4)
    np.testing.assert_allclose(boxes[0], truth[0], atol=1e-4)  # the first line is the init box
    h, w = frames[0].shape[:2]
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= w).all() and (boxes[:, 1] + boxes[:, 3] <= h).all()
    assert np.ptp(truth[:, 0]) > 20  # the target moves across the clip...
    assert mean_iou(boxes[1:], truth[1:]) > 0.5  # ...and the released weights follow it
    assert int(cv2.VideoCapture(str(folder / "tracked.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES + 1


def test_a_frame_folder_gives_the_same_boxes_as_the_video(torch_run, tmp_path):
    out, frames, _, init, _ = torch_run
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):  # lossless: the decoded video frames exactly
        cv2.imwrite(str(folder / f"{i + 1:04d}.png"), frame)
    from_folder = tmp_path / "folder.txt"
    assert main(["track", str(folder), "--model", str(official(3)), "--device", "cpu", "--init", init,
                 "--output", str(from_folder), "--quiet"]) == 0
    np.testing.assert_array_equal(read_boxes(from_folder), read_boxes(out))


def test_export_the_released_v3_and_track_the_onnx_like_torch(torch_run, tmp_path, capsys):
    out, _, _, init, _ = torch_run
    prefix = tmp_path / "nanotrackv3"
    assert main(["export", str(official(3)), "--output", str(prefix)]) == 0
    assert "max abs diff" in capsys.readouterr().out  # the export checks itself against torch
    onnx_out = tmp_path / "onnx.txt"
    assert main(["track", str(UAV_REAL / "data_seq" / f"{CLIP}.mp4"), "--model", f"{prefix}.onnx", "--init", init,
                 "--max-frames", str(FRAMES), "--output", str(onnx_out), "--quiet"]) == 0
    np.testing.assert_allclose(read_boxes(onnx_out), read_boxes(out), atol=0.01, rtol=0)
