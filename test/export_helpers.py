"""Small exported models shared by the deployment tests: exported once per test process."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.nets import SiamRPN


class StandInEnhancer(nn.Module):
    """A small DarkLighter-shaped enhancer (convs, tanh maps, iterative refinement) for teacher exports."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / 255.0
        maps = torch.tanh(self.conv2(torch.relu(self.conv1(x))))
        r, n = maps[:, :3], maps[:, 3:]
        return ((x - n * 0.1) * (r * 0.5 + 1.0)) * 255.0


def tiny_model(seed: int = 0, enhancer: nn.Module | None = None) -> SiamRPN:
    """A width-0.25 SiamRPN with non-trivial BatchNorm statistics (so eval-mode folding matters)."""
    torch.manual_seed(seed)
    model = SiamRPN(0.25, enhancer=enhancer).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


@functools.lru_cache(maxsize=None)
def _export_dir() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mlkd-test-exports-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


@functools.lru_cache(maxsize=None)
def tiny_export(kind: str = "student") -> tuple[SiamRPN, dict[str, Path], TrackerConfig]:
    """``(model, {"template": path, "search": path}, tracking)`` of a tiny student or stand-in teacher."""
    from mlkd_training.export.onnx_export import export_onnx

    model = tiny_model(enhancer=StandInEnhancer() if kind == "teacher" else None)
    tracking = TrackerConfig(penalty_k=0.2, lost_frames=7)
    paths = export_onnx(model, _export_dir() / kind / f"tiny-{kind}", tracking, f"tiny {kind}")
    return model, paths, tracking


@functools.lru_cache(maxsize=None)
def nanotrack_export(version: int) -> tuple[nn.Module, dict[str, Path], TrackerConfig]:
    """``(model, graph paths, tracking)`` of the released NanoTrack ``version`` exported to ONNX."""
    from mlkd_tracker.backends import load_model
    from mlkd_training.export.onnx_export import export_onnx
    from nanotrack_reference import official

    loaded = load_model(official(version), "cpu", "fp32")
    model = loaded.backend.model  # BatchNorm already folded: the export folds it anyway
    paths = export_onnx(model, _export_dir() / f"nanotrack-v{version}" / "nanotrack", loaded.config, loaded.name)
    return model, paths, loaded.config
