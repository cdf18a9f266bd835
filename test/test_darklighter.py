"""DarkLighter: published formulas, official weights, the teacher's pixel convention, bad weight files."""
import math
import os
import pickle
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, shared_dir
from mlkd_tracker.cli import main
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets import DarkLighter, SiamRPN
from mlkd_tracker.nets.checkpoint import load_network, save_checkpoint
from mlkd_tracker.nets.darklighter import enhance_bgr_image, load_darklighter
from reference_darklighter import random_darklighter_state, reference_enhance

OFFICIAL = shared_dir() / "data" / "darklighter" / "darklighter_epoch193.pth"
needs_official = pytest.mark.skipif(not OFFICIAL.is_file(), reason=f"official DarkLighter weights absent ({OFFICIAL})")


def night_pixels(shape, seed=0):
    """0..255 images: mostly dark, some bright spots, the full range present."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) ** 3 * 255.0
    x[..., :4, :4] = 255.0
    x[..., -3:, -5:] = 0.0
    return x


def from_state(state, tile_size=None):
    model = DarkLighter(tile_size)
    model.load_state_dict(state)
    return model.eval()


@needs_official
@pytest.mark.parametrize("shape,tile_size", [((2, 3, 48, 64), None), ((1, 3, 200, 333), 160)])
def test_official_weights_equal_the_published_formulas(shape, tile_size):
    model, _ = load_darklighter(OFFICIAL, tile_size)
    state = torch.load(OFFICIAL, map_location="cpu", weights_only=True)
    pixels = night_pixels(shape)
    with torch.no_grad():
        out = model(pixels)
    expected = reference_enhance(state, pixels)
    assert out.dtype == torch.float32 and out.shape == shape
    assert (out - expected).abs().max().item() < 1e-4
    dark = pixels * 0.25  # mean grey level about 16
    with torch.no_grad():
        assert model(dark).mean() > 3 * dark.mean()  # it does light up a night image


@pytest.mark.parametrize("tile_size,tolerance", [(None, 1e-4), (20, 1e-3)])
def test_random_weights_equal_the_published_formulas(tile_size, tolerance):
    """Tiles of other shapes round differently in fp32 (both stay within 2e-4 of a float64 pass)."""
    state = random_darklighter_state(1, scale=0.03)
    model = from_state(state, tile_size)
    pixels = night_pixels((1, 3, 50, 73), seed=2)
    calls = []
    model.e_conv1.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        out = model(pixels)
    assert len(calls) == (1 if tile_size is None else 3 * 4)  # 50x73 in 20 px tiles: 3 rows, 4 columns
    assert (out - reference_enhance(state, pixels)).abs().max().item() < tolerance


def test_refinement_by_hand():
    """Constant maps (zero conv weights, biases only): x <- (x - n) * g eight times, in closed form."""
    state = {k: torch.zeros_like(v) for k, v in random_darklighter_state().items()}
    state["e_conv7.bias"] = torch.full((8,), math.atanh(0.5))  # r = 0.5: gain 1.5
    state["e_conv8.bias"] = torch.full((8,), math.atanh(0.1))  # n = 0.1
    model = from_state(state)
    pixels = torch.tensor([0.0, 51.0, 200.0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    x = pixels[0, :, 0, 0] / 255.0
    for _ in range(8):
        x = (x - 0.1) * 1.5
    with torch.no_grad():
        out = model(pixels)
        parts = model.enhance(pixels / 255.0)
    # 200/255 -> 1.5^8 * 0.7843 - 0.1 * (1.5 + 1.5^2 + ... + 1.5^8) = 12.7124, i.e. 3241.67: not clamped
    assert torch.allclose(out[0, :, 2, 2], x * 255.0, atol=1e-3)
    assert out[0, 2, 0, 0].item() == pytest.approx(3241.67, abs=0.05)
    assert torch.allclose(parts.illumination, torch.full_like(parts.illumination, 1.5))
    assert torch.allclose(parts.noise, torch.full_like(parts.noise, 0.1))


def test_teacher_feeds_bgr_crops_as_they_are_and_does_not_clamp():
    state = random_darklighter_state(3)
    torch.manual_seed(0)
    teacher = SiamRPN(width=0.25, enhancer=from_state(state)).eval()
    crop = night_pixels((1, 3, 127, 127), seed=4)
    with torch.no_grad():
        features = teacher.features(crop)
        as_reference = teacher.backbone(reference_enhance(state, crop))
        swapped = teacher.backbone(reference_enhance(state, crop.flip(1)).flip(1))
        enhanced = teacher.enhancer(crop)
    assert (features - as_reference).abs().max().item() < 1e-3
    assert (features - swapped).abs().max().item() > 1e-2  # channel order matters, and it is BGR as is
    assert enhanced.max().item() > 255.0 or enhanced.min().item() < 0.0  # the backbone sees unclamped values


def test_enhance_bgr_image_feeds_rgb_unless_as_teacher():
    state = random_darklighter_state(5)
    model = from_state(state)
    frame = np.random.default_rng(0).integers(0, 80, (30, 40, 3), dtype=np.uint8)
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()  # noqa: E731
    to_image = lambda t: t[0].clamp(0, 255).round().permute(1, 2, 0).to(torch.uint8).numpy()  # noqa: E731
    rgb = to_image(reference_enhance(state, as_tensor(frame[..., ::-1])))[..., ::-1]
    bgr = to_image(reference_enhance(state, as_tensor(frame)))
    out_rgb, out_bgr = enhance_bgr_image(model, frame), enhance_bgr_image(model, frame, as_teacher=True)
    assert out_rgb.dtype == np.uint8 and out_rgb.shape == frame.shape
    assert np.abs(out_rgb.astype(int) - rgb).max() <= 1 and np.abs(out_bgr.astype(int) - bgr).max() <= 1
    assert np.abs(out_rgb.astype(int) - out_bgr).max() > 5


def test_weights_load_from_teacher_files_and_mlkd_reference_layout(tmp_path):
    state = random_darklighter_state(6)
    torch.manual_seed(0)
    teacher = SiamRPN(width=0.25, enhancer=from_state(state))
    ours = save_checkpoint(teacher, tmp_path / "teacher.pth", {"name": "t"})
    reference_layout = {("module.backbone." + k if k.startswith("enhancer.") else "module." + k): v
                        for k, v in teacher.state_dict().items()}  # Enhance_AlexNet: enhancer inside the backbone
    torch.save({"state_dict": reference_layout, "epoch": 20}, tmp_path / "mlkd_teacher.pth")
    for path in (ours, tmp_path / "mlkd_teacher.pth"):
        model, _ = load_darklighter(path)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    loaded, _ = load_network(tmp_path / "mlkd_teacher.pth")
    assert isinstance(loaded.enhancer, DarkLighter)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in teacher.state_dict().items())


def _bad_files(d):
    good = random_darklighter_state()
    wrong_keys = {k: v for k, v in good.items() if not k.startswith("e_conv8")}
    wrong_keys["e_conv6.weight"] = torch.zeros(32, 64, 3, 3)
    torch.save(wrong_keys, d / "wrong_keys.pth")
    torch.save({**good, "e_conv1.weight": torch.zeros(32, 1, 3, 3)}, d / "misshaped.pth")
    save_checkpoint(SiamRPN(width=0.25), d / "student.pth")
    (d / "garbage.pth").write_bytes(b"\x00garbage" * 50)

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))
    torch.save({**good, "payload": Evil()}, d / "evil.pth", pickle_protocol=2)
    (d / "raw.pth").write_bytes(pickle.dumps(Evil(), protocol=2))


@pytest.mark.parametrize("name,messages", [
    ("wrong_keys.pth", ["does not fit DarkLighter", "missing keys: e_conv8.weight, e_conv8.bias",
                        "unexpected keys: e_conv6.weight"]),
    ("misshaped.pth", ["e_conv1.weight: file (32, 1, 3, 3) vs model (32, 3, 3, 3)"]),
    ("student.pth", ["SiamRPN checkpoint without an enhancer", "e_conv1 ... e_conv8"]),
    ("garbage.pth", ["not a PyTorch checkpoint"]),
    ("evil.pth", ["refusing to unpickle"]),
    ("raw.pth", ["raw.pth holds Python objects", "refusing to unpickle"]),
    ("absent.pth", ["checkpoint not found"]),
])
def test_bad_weight_files_are_rejected_clearly(tmp_path, capsys, name, messages):
    _bad_files(tmp_path)
    with pytest.raises(ModelFileError) as err:
        load_darklighter(tmp_path / name)
    for message in messages:
        assert message in str(err.value)
    image = tmp_path / "dark.png"
    import cv2
    cv2.imwrite(str(image), np.full((20, 20, 3), 10, np.uint8))
    assert main(["enhance", str(image), "--weights", str(tmp_path / name), "--quiet"]) == 2
    err_text = capsys.readouterr().err
    assert messages[0] in err_text and "Traceback" not in err_text and len(err_text.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_close_to_cpu_fp32():
    state = random_darklighter_state(7)
    pixels = night_pixels((1, 3, 287, 287))
    with torch.no_grad():
        cpu = from_state(state)(pixels)
        gpu = from_state(state).cuda().half()(pixels.cuda().half()).float().cpu()
    assert gpu.dtype == torch.float32 and (gpu - cpu).abs().max().item() < 0.02 * cpu.abs().max().item()


def test_tiles_only_for_inference_never_in_exported_graphs(monkeypatch):
    """Tiling bounds inference memory; training graphs and exported (ONNX / compiled) graphs run one pass."""
    model = DarkLighter(tile_size=16).eval()
    calls = []
    model.e_conv1.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(torch.rand(1, 3, 40, 40))
        assert len(calls) == 9  # 3 x 3 tiles
        calls.clear()
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # torch.export / ONNX dynamo
        model(torch.rand(1, 3, 40, 40))
        assert len(calls) == 1
    calls.clear()
    model(torch.rand(1, 3, 40, 40))  # parameters need gradients: one differentiable pass
    assert len(calls) == 1
    frozen = DarkLighter(tile_size=16).requires_grad_(False)
    calls.clear()
    monkeypatch.undo()
    frozen.e_conv1.register_forward_hook(lambda *a: calls.append(1))
    frozen(torch.rand(1, 3, 40, 40))  # autograd on, but nothing needs a gradient: tiled
    assert len(calls) == 9


@pytest.mark.parametrize("tile_size", [7, 20, 33])
def test_tiles_equal_one_pass_exactly_in_float64(tile_size):
    """The halo is the receptive radius: in float64 (no rounding to hide behind) tiled and one-pass agree."""
    state = random_darklighter_state(8, scale=0.1)
    one_pass = from_state(state).double()
    tiled = from_state(state, tile_size).double()
    pixels = night_pixels((2, 3, 45, 71), seed=3).double()
    with torch.no_grad():
        assert (tiled(pixels) - one_pass(pixels)).abs().max().item() < 1e-9


REPEATED_PASSES = """
import resource, torch
from mlkd_tracker.memory import retain_freed_memory
from mlkd_tracker.nets.darklighter import DarkLighter
torch.set_num_threads(1)
model, pixels = DarkLighter().eval(), torch.rand(1, 3, 256, 256) * 60
with torch.inference_mode():
    for _ in range(3):  # the heap grows to one pass's working set
        model(pixels)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        model(pixels)
print(retain_freed_memory(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 2)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc tuning applies to glibc only")
def test_repeated_passes_reuse_freed_memory_instead_of_faulting_it_in():
    """Each 256x256 pass frees ~100 MB of feature maps; the next pass must reuse them, not fault in new pages."""
    def faults_per_pass(**env):
        out = subprocess.run([sys.executable, "-c", REPEATED_PASSES], capture_output=True, text=True, check=True,
                             env={**os.environ, **env}, cwd=REPO).stdout.split()
        return out[0] == "True", float(out[1])

    retained, faults = faults_per_pass()
    left_alone, default_faults = faults_per_pass(MALLOC_MMAP_MAX_="65536")  # the user's own malloc setting wins
    assert retained and not left_alone
    assert default_faults > 5000  # glibc's defaults hand the buffers back every pass: ~50 MB faulted in again
    assert faults < 2500 and faults * 10 < default_faults  # a few MB at most (Python's own arenas, thread stacks)
