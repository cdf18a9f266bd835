"""``mlkd train-enhancer``: a step lowers the loss, checkpoints and plots, resume, bad input."""
import json

import cv2
import numpy as np
import pytest
import torch

from mlkd_tracker.cli import main
from mlkd_tracker.nets import DarkLighter
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_tracker.nets.darklighter import enhance_bgr_image, load_darklighter
from mlkd_training.enhancer.losses import darklighter_loss
from mlkd_training.enhancer.train import (EnhancerTrainConfig, LowLightImages, official_init, train_enhancer,
                                          train_step)
from reference_darklighter import random_darklighter_state
from test_enhancer_losses import _torchvision_vgg16_file


def dark_images(folder, count=5, size=(40, 52), seed=0):
    """Small night-like images: dark noisy background, a dim lit patch; in a nested folder too."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = rng.integers(0, 30, (*size, 3), dtype=np.uint8)
        image[10:20, 15 + i:30 + i] = (60, 70, 90)
        cv2.imwrite(str(folder / ("sub" if i % 2 else "") / f"night{i}.png"), image)
    return folder


def batch_of(folder, size=32):
    data = LowLightImages(folder, size)
    return torch.stack([data[i] for i in range(len(data))])


def test_a_training_step_lowers_the_loss(tmp_path):
    batch = batch_of(dark_images(tmp_path / "imgs"))
    assert batch.shape == (5, 3, 32, 32) and 0.0 <= batch.min() and batch.max() < 0.5
    model = official_init(DarkLighter(), seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)  # the official settings
    with torch.no_grad():
        before = darklighter_loss(model.enhance(batch), batch)
    terms = train_step(model, batch, optimizer)
    with torch.no_grad():
        after = darklighter_loss(model.enhance(batch), batch)
    assert terms["total"] == pytest.approx(before["total"].item(), rel=1e-5)
    assert after["total"] < before["total"]


def test_non_finite_loss_skips_the_step(tmp_path):
    model = DarkLighter()
    model.load_state_dict(random_darklighter_state())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters())
    batch = torch.full((1, 3, 32, 32), float("nan"))
    assert train_step(model, batch, optimizer) is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _args(images, out, *extra):
    return ["train-enhancer", str(images), "--out", str(out), "--size", "32", "--batch-size", "2",
            "--workers", "0", "--quiet", *extra]


def test_cli_trains_writes_checkpoints_plots_and_resumes_exactly(tmp_path, capsys):
    images = dark_images(tmp_path / "imgs")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_args(images, straight, "--epochs", "2", "--save-every", "1")) == 0
    printed = capsys.readouterr().out
    assert "illumination" in printed and "darklighter.pth" in printed
    for name in ("last.pth", "epoch_001.pth", "epoch_002.pth", "darklighter.pth", "history.json"):
        assert (straight / name).is_file(), name
    for name in ("losses.png", "preview.png"):
        assert cv2.imread(str(straight / name)) is not None, name
    history = json.loads((straight / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) == {"epoch", "illumination", "colour", "exposure", "noise", "total", "skipped"}
    assert history[1]["total"] < history[0]["total"]
    model, meta = load_darklighter(straight / "darklighter.pth")  # the output is enhancer weights
    assert meta["epoch"] == 2 and meta["channel_order"] == "rgb" and meta["config"]["batch_size"] == 2
    assert not list(straight.glob("*.partial"))

    assert main(_args(images, split, "--epochs", "1")) == 0
    assert not (split / "epoch_001.pth").exists()  # snapshots every 10 epochs by default
    assert main(_args(images, split, "--epochs", "2", "--resume")) == 0
    assert "resumed from epoch 1" in capsys.readouterr().out
    resumed, _ = load_darklighter(split / "darklighter.pth")
    for k, v in model.state_dict().items():
        assert torch.allclose(resumed.state_dict()[k], v, atol=1e-6), k
    assert json.loads((split / "history.json").read_text())[1]["total"] == pytest.approx(history[1]["total"], rel=1e-5)


def test_fine_tune_from_weights_and_the_perceptual_term(tmp_path):
    images = dark_images(tmp_path / "imgs", count=2)
    start = DarkLighter()
    start.load_state_dict(random_darklighter_state(0, scale=0.02))
    init = save_checkpoint(start, tmp_path / "start.pth")
    _torchvision_vgg16_file(tmp_path / "vgg16.pth")
    config = EnhancerTrainConfig(epochs=1, batch_size=2, image_size=32, workers=0, lr=1e-6, device="cpu")
    summary = train_enhancer(images, tmp_path / "run", config, init=init, vgg16=tmp_path / "vgg16.pth", progress=False)
    assert "perceptual" in summary.history[0] and summary.history[0]["perceptual"] > 0
    tuned, _ = load_darklighter(summary.final)
    for k, v in start.state_dict().items():  # one tiny step away from the start, not a fresh init
        assert (tuned.state_dict()[k] - v).abs().max() < 1e-5, k


def test_bgr_training_is_recorded_and_used_by_enhance(tmp_path):
    images = dark_images(tmp_path / "imgs", count=2)
    assert main(_args(images, tmp_path / "run", "--epochs", "1", "--channel-order", "bgr")) == 0
    model, meta = load_darklighter(tmp_path / "run" / "darklighter.pth")
    assert meta["channel_order"] == "bgr"
    frame = cv2.imread(str(images / "night0.png"))
    assert main(["enhance", str(images / "night0.png"), "--weights", str(tmp_path / "run" / "darklighter.pth"),
                 "--output", str(tmp_path / "lit.png")]) == 0
    lit = cv2.imread(str(tmp_path / "lit.png"))
    assert np.array_equal(lit, enhance_bgr_image(model, frame, as_teacher=True))  # fed BGR, as trained
    assert not np.array_equal(lit, enhance_bgr_image(model, frame))


def _write_empty(d):
    (d / "empty").mkdir()


def _write_unreadable(d):
    (d / "empty").mkdir()
    (d / "empty" / "bad.png").write_bytes(b"not a png")


@pytest.mark.parametrize("setup,extra,message", [
    (_write_empty, ["{d}/empty"], "no images"),
    (_write_unreadable, ["{d}/empty"], "cannot read training image"),
    (_write_unreadable, ["{d}/empty", "--workers", "1"], "cannot read training image"),  # from a worker process
    (None, ["--resume", "{d}/nothing/last.pth"], "checkpoint not found"),
    (lambda d: torch.save(random_darklighter_state(), d / "official.pth"), ["--resume", "{d}/official.pth"],
     "not a train-enhancer training state"),
    (lambda d: torch.save({"x": torch.zeros(1)}, d / "other.pth"), ["--init", "{d}/other.pth"], "does not fit DarkLighter"),
    (None, ["--vgg16", "{d}/vgg.pth"], "checkpoint not found"),
    (None, ["--size", "8"], "image_size must be >= the exposure patch"),
    (None, ["--loss", "brightness=2"], "NAME one of"),
])
def test_bad_input_gives_one_clear_error(tmp_path, capsys, setup, extra, message):
    images = dark_images(tmp_path / "imgs", count=2)
    if setup is not None:
        setup(tmp_path)
    extra = [a.format(d=tmp_path) for a in extra]
    folder = extra.pop(0) if extra[0].endswith("empty") else images  # the images folder given, or a bad one
    assert main(_args(folder, tmp_path / "run", "--epochs", "1", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
