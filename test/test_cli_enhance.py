"""``mlkd enhance`` on real image, folder and video files; side-by-side preview; bad input."""
import cv2
import numpy as np
import pytest
import torch

from mlkd_tracker.cli import main
from mlkd_tracker.nets import DarkLighter, SiamRPN
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_tracker.nets.darklighter import enhance_bgr_image
from reference_darklighter import random_darklighter_state, reference_enhance
from test_darklighter import OFFICIAL, needs_official


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "darklighter.pth"
    torch.save(random_darklighter_state(0, scale=0.03), path)  # official layout: a plain state dict
    return path


def model_for(path):
    model = DarkLighter()
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def dark_frame(seed=0, size=(48, 64)):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 35, (*size, 3), dtype=np.uint8)
    frame[10:20, 12:30] = (40, 60, 90)
    return frame


def test_image_in_image_out_rgb_by_default_bgr_as_teacher(tmp_path, weights, capsys):
    frame = dark_frame()
    cv2.imwrite(str(tmp_path / "night.png"), frame)
    assert main(["enhance", str(tmp_path / "night.png"), "--weights", str(weights)]) == 0
    assert "output:" in capsys.readouterr().out
    out = cv2.imread(str(tmp_path / "night_enhanced.png"))
    state = torch.load(weights, weights_only=True)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    to_image = lambda t: t[0].clamp(0, 255).round().permute(1, 2, 0).to(torch.uint8).numpy()  # noqa: E731
    expected_rgb = to_image(reference_enhance(state, as_tensor(frame[..., ::-1])))[..., ::-1]
    assert out.shape == frame.shape and np.abs(out.astype(int) - expected_rgb).max() <= 1

    assert main(["enhance", str(tmp_path / "night.png"), "--weights", str(weights), "--as-teacher",
                 "--output", str(tmp_path / "teacher_view.png"), "--tile", "24"]) == 0
    expected_bgr = to_image(reference_enhance(state, as_tensor(frame)))
    assert np.abs(cv2.imread(str(tmp_path / "teacher_view.png")).astype(int) - expected_bgr).max() <= 1


def test_folder_side_by_side(tmp_path, weights):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = [dark_frame(i) for i in range(3)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"img{i + 1}.png"), f)
    (folder / "notes.txt").write_text("not an image")
    assert main(["enhance", str(folder), "--weights", str(weights), "--side-by-side", "--quiet"]) == 0
    out_dir = tmp_path / "frames_enhanced"
    assert sorted(p.name for p in out_dir.iterdir()) == ["img1.png", "img2.png", "img3.png"]
    model = model_for(weights)
    for i, f in enumerate(frames):
        panel = cv2.imread(str(out_dir / f"img{i + 1}.png"))
        assert panel.shape == (48, 128, 3)
        below_labels = slice(16, None)
        assert np.array_equal(panel[below_labels, :64], f[below_labels])
        assert np.array_equal(panel[below_labels, 64:], enhance_bgr_image(model, f)[below_labels])


def test_video_with_preview_and_max_frames(tmp_path, weights, capsys):
    video = tmp_path / "flight.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(6):
        writer.write(dark_frame(i))
    writer.release()
    assert main(["enhance", str(video), "--weights", str(weights), "--side-by-side", "--max-frames", "4",
                 "--quiet"]) == 0
    assert "frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(tmp_path / "flight_enhanced.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 48)
    ok, first = cap.read()
    ok_in, source_first = cv2.VideoCapture(str(video)).read()  # the decoded frame enhance saw
    expected = np.concatenate([source_first, enhance_bgr_image(model_for(weights), source_first)], axis=1)
    assert ok and ok_in and np.abs(first[16:].astype(int) - expected[16:]).mean() < 3  # mp4 is lossy
    assert not list(tmp_path.glob("*.partial*"))


@needs_official
def test_official_weights_light_up_a_night_image(tmp_path):
    frame = dark_frame(size=(120, 160))
    cv2.imwrite(str(tmp_path / "night.jpg"), frame)
    assert main(["enhance", str(tmp_path / "night.jpg"), "--weights", str(OFFICIAL)]) == 0
    out = cv2.imread(str(tmp_path / "night_enhanced.jpg"))
    assert out.mean() > 2.5 * frame.mean()


@pytest.mark.parametrize("make_args,message", [
    (lambda d, w: [str(d / "absent.png"), "--weights", str(w)], "input not found"),
    (lambda d, w: [str(d / "broken.png"), "--weights", str(w)], "cannot read image"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(d / "student.pth")], "SiamRPN checkpoint without an enhancer"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(w), "--output", str(d / "night.png")], "overwrite the input"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(w), "--output", str(d / "out.xyz")], "cannot encode"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(w), "--tile", "-1"], "--tile must be >= 0"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(w), "--precision", "fp16"], "fp16 needs a CUDA device"),
    (lambda d, w: [str(d / "night.png"), "--weights", str(w), "--show"], "needs a display"),
    (lambda d, w: ["7", "--weights", str(w)], "a camera needs --output VIDEO or --show"),
    (lambda d, w: [str(d / "bad.mp4"), "--weights", str(w)], "cannot open"),
])
def test_bad_input_gives_one_clear_error(tmp_path, weights, capsys, monkeypatch, make_args, message):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    cv2.imwrite(str(tmp_path / "night.png"), dark_frame())
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "bad.mp4").write_bytes(b"not a video" * 100)
    save_checkpoint(SiamRPN(width=0.25), tmp_path / "student.pth")
    assert main(["enhance", *make_args(tmp_path, weights), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out.xyz").exists()


def test_command_modules_import_without_torch():
    """``mlkd --help`` and the parsers stay light: torch is imported only when a command runs."""
    import subprocess
    import sys

    code = ("import sys, argparse\n"
            "import mlkd_tracker.cli.enhance as e, mlkd_training.commands.train_enhancer as t\n"
            "import mlkd_training.commands.build_teacher as b\n"
            "for m in (e, t, b):\n"
            "    m.add_arguments(argparse.ArgumentParser())\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "mlkd_tracker", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "enhance" in out and "train-enhancer" in out and "build-teacher" in out
