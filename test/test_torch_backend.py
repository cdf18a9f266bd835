"""The PyTorch backend, backend selection by file, and the torch-free tracker core."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.backends.torch_backend import TorchBackend
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import save_checkpoint


def random_bn_model(width=0.5, seed=0):
    torch.manual_seed(seed)
    model = SiamRPN(width).eval()
    for m in model.modules():  # non-trivial BN statistics so layouts and eval mode matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def test_backend_outputs_equal_a_direct_module_call():
    model = random_bn_model()
    backend = TorchBackend(random_bn_model(), "cpu", "fp32")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backend.model.modules())  # folded into convs
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, (127, 127, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (287, 287, 3), dtype=np.uint8)
    kernels = backend.template(z)
    cls, loc = backend.search(x, kernels)
    assert cls.shape == (1, 10, 21, 21) and loc.shape == (1, 20, 21, 21)
    assert cls.dtype == np.float32 and loc.dtype == np.float32
    with torch.no_grad():
        to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float()
        ref_cls, ref_loc = model.track(to(x), *model.template_kernels(to(z)))
    assert np.abs(cls - ref_cls.numpy()).max() < 1e-3 * max(1.0, np.abs(ref_cls.numpy()).max())
    assert np.abs(loc - ref_loc.numpy()).max() < 1e-3 * max(1.0, np.abs(ref_loc.numpy()).max())


def test_small_networks_run_on_one_cpu_thread_and_restore_the_callers_setting():
    """NanoTrack (under 0.5 GFLOP per search) runs single-threaded inside backend calls; SiamRPN keeps torch's
    setting; either way the caller's thread count is the same after the call."""
    from mlkd_tracker.backends.torch_backend import SINGLE_THREAD_FLOPS
    from mlkd_tracker.config import models_dir
    from mlkd_tracker.nets.flops import count_flops

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        small = load_model(models_dir() / "nanotrack_v2.yaml", "cpu", allow_random_weights=True)
        large = load_model(models_dir() / "mlkd_track_siamrpn.yaml", "cpu")  # the bundled SiamRPN reference model
        assert (small.backend.threads, large.backend.threads) == (1, None)
        for loaded in (small, large):
            seen = []
            loaded.backend.model.backbone.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
            c = loaded.config
            kernels = loaded.backend.template(np.zeros((c.exemplar_size, c.exemplar_size, 3), np.uint8))
            crop = np.zeros((c.instance_size, c.instance_size, 3), np.uint8)
            flops = count_flops(lambda: loaded.backend.search(crop, kernels))
            assert seen == [loaded.backend.threads or 2] * 2 and torch.get_num_threads() == 2
            assert (flops < SINGLE_THREAD_FLOPS) == (loaded is small)
    finally:
        torch.set_num_threads(previous)


def subnormals_survive() -> bool:
    return bool(np.float32(1e-38) * np.float32(0.5) != 0)


def test_denormals_are_flushed_only_inside_backend_calls():
    seen = []
    backend = TorchBackend(random_bn_model(0.25), "cpu", "fp32")
    backend.model.backbone.register_forward_pre_hook(lambda *_: seen.append(subnormals_survive()))
    rng = np.random.default_rng(0)
    kernels = backend.template(rng.integers(0, 256, (127, 127, 3), dtype=np.uint8))
    backend.search(rng.integers(0, 256, (287, 287, 3), dtype=np.uint8), kernels)
    assert seen == [False, False]  # flushed while the network runs
    assert subnormals_survive()  # the process's IEEE behaviour is left as it was (numpy, hypothesis)
    torch.set_flush_denormal(True)  # a caller that flushes on its own keeps doing so
    try:
        backend.search(rng.integers(0, 256, (287, 287, 3), dtype=np.uint8), kernels)
        assert not subnormals_survive()
    finally:
        torch.set_flush_denormal(False)
    assert subnormals_survive()


def test_training_forward_and_tracking_split_agree():
    model = random_bn_model(0.25)
    z, x = torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        full = model(z, x)
        cls, loc = model.track(x, *model.template_kernels(z))
    assert full["cls"].shape == (2, 10, 17, 17) and full["cls_feature"].shape == (2, 64, 17, 17)
    assert torch.allclose(full["cls"], cls, atol=1e-4) and torch.allclose(full["loc"], loc, atol=1e-4)


def test_backend_is_chosen_from_the_model_file(tmp_path):
    path = save_checkpoint(random_bn_model(0.25), tmp_path / "student.pth",
                           {"name": "student", "tracking": {"penalty_k": 0.2, "lost_frames": 7}})
    loaded = load_model(path, "cpu")
    assert loaded.info["backend"] == "torch" and loaded.name == "student"
    assert loaded.config.penalty_k == 0.2 and loaded.config.lost_frames == 7
    tracker, _ = create_tracker(path, "cpu", overrides={"window_influence": 0.3})
    assert tracker.config.window_influence == 0.3 and tracker.config.penalty_k == 0.2
    with pytest.raises(ModelFileError, match="unknown model file type"):
        load_model(tmp_path / "model.tflite")
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.pth")
    with pytest.raises(InputError, match="unknown tracking parameter"):
        create_tracker(path, "cpu", overrides={"penalty": 0.3})


def test_model_config_without_weights_needs_a_model(tmp_path):
    spec = tmp_path / "custom.yaml"
    spec.write_text("name: Custom\narch: {width: 0.25}\ntracking: {penalty_k: 0.2, lost_frames: 9}\n")
    with pytest.raises(ModelFileError, match="names no weights"):
        load_model(spec)
    loaded = load_model(spec, allow_random_weights=True, device="cpu")
    assert loaded.config == TrackerConfig(penalty_k=0.2, lost_frames=9) and loaded.info["width"] == 0.25


def test_fp16_on_cpu_is_a_clear_error():
    with pytest.raises(InputError, match="fp16 needs a CUDA device"):
        TorchBackend(SiamRPN(0.25), "cpu", "fp16")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_close_to_cpu_fp32():
    cpu = TorchBackend(random_bn_model(), "cpu", "fp32")
    gpu = TorchBackend(random_bn_model(), "cuda", "fp16")
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, (127, 127, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (287, 287, 3), dtype=np.uint8)
    a = cpu.search(x, cpu.template(z))[0]
    b = gpu.search(x, gpu.template(z))[0]
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_tracker_core_does_not_import_torch():
    code = ("import sys\n"
            "import mlkd_tracker.tracker, mlkd_tracker.anchors, mlkd_tracker.crop, mlkd_tracker.config\n"
            "import mlkd_tracker.frames, mlkd_tracker.sources, mlkd_tracker.backends, mlkd_tracker.draw\n"
            "import mlkd_tracker.cli, mlkd_tracker.cli.track\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "assert not any(m.startswith('mlkd_training') for m in sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
