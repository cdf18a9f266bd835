"""Tiny tracking sequences written to disk in the ``Sequence`` shape, for the training tests.

Each sequence: a dark, noisy, textured background and a bright textured square moving across
it (a crude night scene), saved as JPEG frames with exact boxes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mlkd_training.data.sequence import Dataset, FrameFiles, Sequence


def write_sequence(folder: Path, name: str, frames: int = 8, size=(160, 200), side: int = 28,
                   seed: int = 0, brightness: int = 200) -> Sequence:
    """One sequence of ``frames`` JPEGs under ``folder/name`` and its ground truth."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    background = cv2.GaussianBlur(rng.integers(0, 60, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    target = np.clip(rng.integers(brightness - 50, brightness + 50, (side, side, 3)), 0, 255).astype(np.uint8)
    x, y = float(rng.integers(10, w - side - 10)), float(rng.integers(10, h - side - 10))
    vx, vy = rng.uniform(-3, 3, 2)
    paths, boxes = [], []
    for i in range(frames):
        frame = background.copy()
        xi, yi = int(round(x)), int(round(y))
        frame[yi:yi + side, xi:xi + side] = target
        path = out / f"{i + 1:06d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
        boxes.append((xi, yi, side, side))
        x = float(np.clip(x + vx, 2, w - side - 2))
        y = float(np.clip(y + vy, 2, h - side - 2))
    # the frames and groundtruth.txt make the folder a GOT-10k-style sequence the readers open
    (out / "groundtruth.txt").write_text("".join(f"{b[0]},{b[1]},{b[2]},{b[3]}\n" for b in boxes))
    return Sequence(name, FrameFiles(paths), np.array(boxes, np.float64))


def write_dataset(folder: Path, name: str = "tiny", sequences: int = 3, frames: int = 8, size=(160, 200),
                  seed: int = 0, brightness: int = 200) -> Dataset:
    """A dataset of ``sequences`` sequences written under ``folder``."""
    return Dataset(name, [write_sequence(folder, f"seq{i + 1}", frames, size, seed=seed * 100 + i,
                                         brightness=brightness) for i in range(sequences)])


class TinyEnhancer(torch.nn.Module):
    """A small stand-in for DarkLighter in front of a test teacher: brightens crops with one 3x3 conv."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.5 + self.conv(x / 255.0)


def tiny_batch(batch: int = 2, seed: int = 0, template: int = 103, search: int = 151) -> dict[str, torch.Tensor]:
    """A random batch with small crops (7x7 score map) and anchor targets for a target near the centre."""
    from mlkd_training.targets import AnchorTargets, TargetConfig

    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    targets = AnchorTargets(TargetConfig(search_size=search, output_size=(search - template) // 8 + 1))
    labels = [targets((search / 2 - 30 + d, search / 2 - 25, search / 2 + 34 + d, search / 2 + 35),
                      negative=False, rng=rng) for d in range(batch)]
    return {"template": torch.rand(batch, 3, template, template, generator=g) * 255,
            "search": torch.rand(batch, 3, search, search, generator=g) * 255,
            "label_cls": torch.from_numpy(np.stack([l.cls for l in labels])),
            "label_loc": torch.from_numpy(np.stack([l.delta for l in labels])),
            "label_loc_weight": torch.from_numpy(np.stack([l.weight for l in labels]))}


@pytest.fixture
def single_thread():
    """Run a test on one intra-op thread: small models on a shared 2-core machine are many times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
