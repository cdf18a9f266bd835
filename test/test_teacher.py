"""The MLKD teacher: enhancer-then-tracker forward, frozen enhancer, one file that ``mlkd track`` runs."""
import cv2
import numpy as np
import pytest
import torch

from fakes import moving_square_frames
from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.cli import main
from mlkd_tracker.config import default_model_path
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets import DarkLighter, SiamRPN
from mlkd_tracker.nets.checkpoint import load_network, save_checkpoint
from mlkd_training.teacher import build_teacher, freeze_enhancer, load_teacher, save_teacher
from reference_darklighter import random_darklighter_state, reference_enhance

SMALL = ["--set", "instance_size=159"]  # a 159 search crop keeps the enhancer cheap in tests


@pytest.fixture
def parts(tmp_path):
    """An official-layout DarkLighter file and a pysot-layout (module.-prefixed) student checkpoint."""
    enhancer_state = random_darklighter_state(0, scale=0.03)
    torch.save(enhancer_state, tmp_path / "darklighter.pth")
    torch.manual_seed(1)
    student = SiamRPN(width=0.25).eval()
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    torch.save({"state_dict": {"module." + k: v for k, v in student.state_dict().items()}}, tmp_path / "student.pth")
    return enhancer_state, student, tmp_path


def test_teacher_forward_is_enhancer_then_tracker(parts):
    enhancer_state, student, d = parts
    teacher, meta = build_teacher(d / "darklighter.pth", d / "student.pth")
    assert meta["name"] == "MLKD teacher (DarkLighter + SiamRPN)"
    assert meta["arch"] == {"type": "siamrpn", "width": 0.25, "anchor_num": 5, "enhancer": "darklighter"}
    assert meta["sources"] == {"enhancer": str(d / "darklighter.pth"), "tracker": str(d / "student.pth")}
    g = torch.Generator().manual_seed(0)
    z, x = torch.rand(2, 3, 127, 127, generator=g) * 90, torch.rand(2, 3, 143, 143, generator=g) * 90
    with torch.no_grad():
        out = teacher(z, x)
        expected = student(reference_enhance(enhancer_state, z), reference_enhance(enhancer_state, x))
        plain = student(z, x)
        cls, loc = teacher.track(x[:1], *teacher.template_kernels(z[:1]))
    for key in ("cls", "loc", "cls_feature", "loc_feature"):
        assert (out[key] - expected[key]).abs().max().item() < 1e-3 * max(1.0, expected[key].abs().max().item()), key
    assert (out["cls"] - plain["cls"]).abs().max().item() > 1e-2  # the enhancer does change what the tracker sees
    assert torch.allclose(cls, out["cls"][:1], atol=1e-4) and torch.allclose(loc, out["loc"][:1], atol=1e-4)


def test_enhancer_is_frozen_and_the_tracker_still_learns(parts):
    _, _, d = parts
    teacher, _ = build_teacher(d / "darklighter.pth", d / "student.pth")
    assert not any(p.requires_grad for p in teacher.enhancer.parameters())
    assert all(p.requires_grad for p in teacher.backbone.parameters())
    teacher.train()
    out = teacher(torch.rand(2, 3, 127, 127) * 60, torch.rand(2, 3, 143, 143) * 60)
    (out["cls"].square().mean() + out["loc"].abs().mean()).backward()
    assert all(p.grad is None for p in teacher.enhancer.parameters())
    assert teacher.backbone.layer1[0].weight.grad.abs().sum() > 0
    unfrozen, _ = build_teacher(d / "darklighter.pth", d / "student.pth", freeze=False)
    assert all(p.requires_grad for p in unfrozen.enhancer.parameters())
    with pytest.raises(ValueError, match="no enhancer"):
        freeze_enhancer(SiamRPN(width=0.25))


def test_saved_teacher_runs_in_the_tracker_with_the_enhancer_on_each_crop(parts):
    enhancer_state, student, d = parts
    save_checkpoint(student, d / "tuned.pth", {"tracking": {"penalty_k": 0.2}})
    teacher, meta = build_teacher(d / "darklighter.pth", d / "tuned.pth")
    path = save_teacher(teacher, d / "teacher.pth", meta)
    loaded, loaded_meta = load_teacher(path)
    assert isinstance(loaded.enhancer, DarkLighter) and not any(p.requires_grad for p in loaded.enhancer.parameters())
    assert loaded_meta["tracking"]["penalty_k"] == 0.2  # tracking values come along from the tracker file
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in teacher.state_dict().items())

    model = load_model(path, "cpu")  # what mlkd track uses
    assert model.config.penalty_k == 0.2
    rng = np.random.default_rng(0)
    z = rng.integers(0, 80, (127, 127, 3), dtype=np.uint8)
    x = rng.integers(0, 80, (159, 159, 3), dtype=np.uint8)
    cls, loc = model.backend.search(x, model.backend.template(z))
    as_tensor = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()  # noqa: E731
    with torch.no_grad():  # the student network on crops enhanced by the published formulas, BGR as is
        ref_cls, ref_loc = student.track(reference_enhance(enhancer_state, as_tensor(x)),
                                         *student.template_kernels(reference_enhance(enhancer_state, as_tensor(z))))
    assert np.abs(cls - ref_cls.numpy()).max() < 1e-3 * max(1.0, np.abs(ref_cls.numpy()).max())
    assert np.abs(loc - ref_loc.numpy()).max() < 1e-3 * max(1.0, np.abs(ref_loc.numpy()).max())


def test_build_teacher_command_then_mlkd_track(parts, tmp_path, capsys):
    _, _, d = parts
    out = tmp_path / "out" / "teacher.pth"
    assert main(["build-teacher", "--enhancer", str(d / "darklighter.pth"), "--tracker", str(d / "student.pth"),
                 "--output", str(out), "--name", "night teacher", "--set", "window_influence=0.4", "--half"]) == 0
    printed = capsys.readouterr().out
    assert "DarkLighter" in printed and "mlkd track" in printed
    _, meta = load_network(out)
    assert meta["name"] == "night teacher" and meta["tracking"]["window_influence"] == 0.4

    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    frames, _ = moving_square_frames(5, size=(100, 160), start=(40.0, 30.0), step=(3.0, 1.0))
    for i, f in enumerate(frames):
        cv2.imwrite(str(frames_dir / f"{i:04d}.png"), f)
    results = tmp_path / "res.txt"
    assert main(["track", str(frames_dir), "--model", str(out), "--init", "40,30,24,24", "--output", str(results),
                 "--quiet", *SMALL]) == 0
    assert "night teacher" in capsys.readouterr().out
    boxes = [list(map(float, line.split(","))) for line in results.read_text().splitlines()]
    assert len(boxes) == 5 and all(w > 0 and h > 0 and x + w <= 160 and y + h <= 100 for x, y, w, h in boxes)


def test_teacher_files_are_checked(parts, tmp_path, capsys):
    _, student, d = parts
    with pytest.raises(ModelFileError, match="holds no enhancer"):
        load_teacher(d / "student.pth")
    assert main(["build-teacher", "--enhancer", str(d / "student.pth"), "--tracker", str(d / "student.pth"),
                 "--output", str(tmp_path / "t.pth")]) == 2
    assert "SiamRPN checkpoint without an enhancer" in capsys.readouterr().err
    assert main(["build-teacher", "--enhancer", str(d / "darklighter.pth"), "--tracker", str(d / "darklighter.pth"),
                 "--output", str(tmp_path / "t.pth")]) == 2
    assert "does not fit any supported architecture" in capsys.readouterr().err
    assert not (tmp_path / "t.pth").exists()


@pytest.mark.parametrize("config, name, arch, instance_size", [
    ("mlkd_teacher.yaml", "MLKD teacher", "nanotrack", 255),  # the default MLKD-Track's teacher
    ("mlkd_teacher_siamrpn.yaml", "MLKD teacher (SiamRPN)", "siamrpn", 287),
])
def test_teacher_model_configs_for_bench(config, name, arch, instance_size):
    spec_path = default_model_path().with_name(config)
    loaded = load_model(spec_path, "cpu", allow_random_weights=True)
    assert isinstance(loaded.backend.model.enhancer, DarkLighter) and loaded.name == f"{name} (random weights)"
    assert loaded.backend.model.arch()["type"] == arch
    tracker, _ = create_tracker(spec_path, "cpu", allow_random_weights=True)
    assert tracker.config.instance_size == instance_size
