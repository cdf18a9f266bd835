"""Training or fine-tuning DarkLighter on a folder of low-light images (no references needed).

Defaults follow the official training script: 256x256 resized images, batch 32, Adam (lr 1e-4,
weight decay 1e-4), gradient norm clipped at 0.1, 200 epochs, conv weights drawn from
N(0, 0.02) when starting from scratch. Every epoch rewrites ``last.pth`` (weights plus optimizer
state: resumable, and loadable as enhancer weights); ``epoch_NNN.pth`` snapshots, the final
``darklighter.pth``, ``history.json``, ``losses.png`` and ``preview.png`` go to the same folder.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from mlkd_tracker.errors import InputError, ModelFileError, SourceError
from mlkd_tracker.nets.checkpoint import read_checkpoint, save_checkpoint
from mlkd_tracker.nets.darklighter import DarkLighter, load_darklighter
from mlkd_tracker.report import write_bytes_atomic, write_json_atomic
from mlkd_tracker.sources import IMAGE_SUFFIXES, natural_key, read_image
from mlkd_training.enhancer.losses import LossWeights, VGG16Features, darklighter_loss, load_vgg16_features

LAST = "last.pth"
FINAL = "darklighter.pth"


@dataclass(frozen=True)
class EnhancerTrainConfig:
    """Options of one training run (official values by default)."""

    epochs: int = 200
    batch_size: int = 32
    image_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    workers: int = 2
    seed: int = 0
    channel_order: str = "rgb"   # what the network sees; the MLKD teacher feeds BGR
    save_every: int = 10         # epochs between epoch_NNN.pth snapshots
    device: str = "auto"
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1 or self.batch_size < 1 or self.save_every < 1 or self.workers < 0:
            problems.append("epochs, batch_size and save_every must be >= 1, workers >= 0")
        if self.image_size < self.weights.exposure_patch:
            problems.append(f"image_size must be >= the exposure patch ({self.weights.exposure_patch})")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            problems.append("lr and grad_clip must be > 0, weight_decay >= 0")
        if self.channel_order not in ("rgb", "bgr"):
            problems.append(f"channel_order must be rgb or bgr, got {self.channel_order!r}")
        if problems:
            raise InputError("invalid enhancer training options: " + "; ".join(problems))


class LowLightImages(torch.utils.data.Dataset):
    """Every image under a folder (recursively), resized to a square, as (3, S, S) floats in 0..1."""

    def __init__(self, folder: str | os.PathLike, size: int = 256, channel_order: str = "rgb"):
        folder = Path(folder)
        if not folder.is_dir():
            raise SourceError(f"training images: {folder} is not a folder")
        self.paths = sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: natural_key(str(p.relative_to(folder))))
        if not self.paths:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
        self.size = size
        self.channel_order = channel_order

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Image ``index`` resized, HxWx3 uint8 BGR."""
        image = read_image(self.paths[index], "training image")
        return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.read(index)
        if self.channel_order == "rgb":
            image = image[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def official_init(model: DarkLighter, seed: int) -> DarkLighter:
    """The official script's start: conv weights ~ N(0, 0.02), biases as PyTorch initialises them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
    return model


def train_step(model: DarkLighter, batch: torch.Tensor, optimizer: torch.optim.Optimizer,
               weights: LossWeights = LossWeights(), vgg: VGG16Features | None = None,
               grad_clip: float = 0.1) -> dict[str, float] | None:
    """One optimisation step on a 0..1 batch; the loss terms, or None (no step) when the loss is not finite."""
    terms = darklighter_loss(model.enhance(batch), batch, weights, vgg)
    if not torch.isfinite(terms["total"]):
        return None
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return {k: float(v.detach()) for k, v in terms.items()}


@dataclass
class TrainSummary:
    """What a run produced: per-epoch mean losses and the files written."""

    history: list[dict[str, float]]
    final: Path
    last: Path
    out_dir: Path
    resumed_from_epoch: int = 0


def _meta(config: EnhancerTrainConfig, epoch: int, history: list[dict[str, float]]) -> dict[str, Any]:
    return {"name": "DarkLighter", "kind": "darklighter", "channel_order": config.channel_order,
            "epoch": epoch, "config": dataclasses.asdict(config), "losses": history[-1] if history else {}}


def _read_training_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and ``{optimizer, epoch, history}`` of a ``last.pth``; clear errors for anything else."""
    state, _ = read_checkpoint(path)  # validates the file and its weights
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or not {"optimizer", "epoch"} <= set(blob):
        raise ModelFileError(f"{path} is not a train-enhancer training state (no optimizer / epoch); "
                             f"to start from its weights use --init")
    return state, {"optimizer": blob["optimizer"], "epoch": int(blob["epoch"]), "history": blob.get("history", [])}


def save_plot(history: list[dict[str, float]], path: Path) -> Path:
    """Loss curves per term over epochs (log scale once a term spans a decade), as a PNG written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    names = [k for k in history[0] if k not in ("epoch", "skipped")]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        values = [h[name] for h in history]
        ax.plot(epochs, values, marker="o" if len(epochs) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if min(values) > 0 and max(values) > 10 * min(values):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    fig.suptitle("DarkLighter training losses (weighted)")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.8, wspace=0.45)  # tight_layout costs seconds
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def save_preview(model: DarkLighter, dataset: LowLightImages, path: Path, count: int = 4) -> Path:
    """A few training images next to their enhanced versions, stacked, as a PNG."""
    from mlkd_tracker.cli.enhance import side_by_side
    from mlkd_tracker.nets.darklighter import enhance_bgr_image

    cpu = DarkLighter(model.tile_size)
    cpu.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    rows = []
    for i in np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int):
        image = dataset.read(int(i))
        rows.append(side_by_side(image, enhance_bgr_image(cpu.eval(), image, dataset.channel_order == "bgr")))
    _, data = cv2.imencode(".png", np.concatenate(rows, axis=0))
    return write_bytes_atomic(path, data.tobytes())


def _batches(loader: DataLoader) -> Iterable[torch.Tensor]:
    """The loader's batches; an unreadable image reported from a worker process becomes one clear line."""
    try:
        yield from loader
    except SourceError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise SourceError(lines[-1].split("SourceError: ", 1)[-1]) from None


def train_enhancer(images: str | os.PathLike, out_dir: str | os.PathLike,
                   config: EnhancerTrainConfig = EnhancerTrainConfig(), init: str | os.PathLike | None = None,
                   resume: str | os.PathLike | None = None, vgg16: str | os.PathLike | None = None,
                   progress: bool = True) -> TrainSummary:
    """Train DarkLighter on the images under ``images``; see the module docstring for the outputs.

    ``init``: weights to fine-tune from (else the official random start). ``resume``: a
    ``last.pth`` (or the folder holding it) to continue from, with the options given now.
    ``vgg16``: torchvision VGG16 weights enabling the perceptual term.
    """
    from tqdm import tqdm

    from mlkd_tracker.backends.torch_backend import resolve_device

    if init is not None and resume is not None:
        raise InputError("give either init weights or a run to resume, not both")
    out_dir = Path(out_dir)
    device, _ = resolve_device(config.device, "fp32")
    dataset = LowLightImages(images, config.image_size, config.channel_order)
    vgg = load_vgg16_features(vgg16).to(device) if vgg16 is not None else None

    torch.manual_seed(config.seed)
    model = DarkLighter()
    history: list[dict[str, float]] = []
    start_epoch = 0
    optimizer_state = None
    if resume is not None:
        resume = Path(resume)
        resume = resume / LAST if resume.is_dir() else resume
        state, training = _read_training_state(resume)
        model.load_state_dict(state)
        optimizer_state, start_epoch, history = training["optimizer"], training["epoch"], list(training["history"])
    elif init is not None:
        model = load_darklighter(init)[0]
    else:
        official_init(model, config.seed)
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        for group in optimizer.param_groups:  # the options given now win over the saved ones
            group["lr"], group["weight_decay"] = config.lr, config.weight_decay

    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    remaining = max(config.epochs - start_epoch, 0)
    bar = tqdm(total=remaining * steps_per_epoch, unit="step", disable=not progress, desc="train-enhancer")
    last = out_dir / LAST
    try:
        for epoch in range(start_epoch, config.epochs):
            loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.workers,
                                generator=torch.Generator().manual_seed(config.seed + epoch))
            sums: dict[str, float] = {}
            steps = skipped = 0
            for batch in _batches(loader):
                terms = train_step(model, batch.to(device), optimizer, config.weights, vgg, config.grad_clip)
                bar.update(1)
                if terms is None:
                    skipped += 1
                    continue
                steps += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix(epoch=epoch + 1, loss=f"{terms['total']:.4g}")
            if steps == 0:
                raise InputError(f"epoch {epoch + 1}: the loss was not finite on any batch; lower --lr or check "
                                 f"the images")
            history.append({"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}, "skipped": skipped})
            meta = _meta(config, epoch + 1, history)
            save_checkpoint(model, last, meta,
                            extra={"optimizer": optimizer.state_dict(), "epoch": epoch + 1, "history": history})
            if (epoch + 1) % config.save_every == 0:
                save_checkpoint(model, out_dir / f"epoch_{epoch + 1:03d}.pth", meta)
            write_json_atomic(out_dir / "history.json", history)
            save_plot(history, out_dir / "losses.png")
    finally:
        bar.close()
    final = save_checkpoint(model, out_dir / FINAL, _meta(config, max(start_epoch, config.epochs), history))
    save_preview(model, dataset, out_dir / "preview.png")
    return TrainSummary(history, final, last, out_dir, start_epoch)


def parse_loss_weights(items: Iterable[str]) -> LossWeights:
    """``["illumination=800", "noise=0"]`` -> :class:`LossWeights` with those values changed."""
    known = {f.name for f in dataclasses.fields(LossWeights)}
    values: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise InputError(f"--loss expects NAME=VALUE with NAME one of {sorted(known)}, got {item!r}")
        try:
            values[key] = int(value) if key == "exposure_patch" else float(value)
        except ValueError:
            raise InputError(f"--loss {key}: {value!r} is not a number") from None
    return dataclasses.replace(LossWeights(), **values)
