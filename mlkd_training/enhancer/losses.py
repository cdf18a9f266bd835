"""DarkLighter's non-reference losses (Ye et al., IROS 2021), as its official training script uses them.

No well-lit reference image is needed: the losses judge the enhanced image (0..1 scale) and the
illumination / noise maps the enhancer returns. Weights of the official script: 1600 illumination
smoothness, 50 colour constancy, 10 exposure control, 50 noise energy and, only when VGG16 weights
are supplied, 0.001 perceptual.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mlkd_tracker.nets.darklighter import Enhanced


def _check_4d(name: str, x: torch.Tensor, min_side: int = 1) -> tuple[int, int, int, int]:
    if x.dim() != 4 or x.shape[2] < min_side or x.shape[3] < min_side:
        raise ValueError(f"{name} expects a (B, C, H, W) tensor with H, W >= {min_side}, got shape {tuple(x.shape)}")
    return tuple(x.shape)  # type: ignore[return-value]


def illumination_smoothness(illumination: torch.Tensor) -> torch.Tensor:
    """Total variation of the illumination maps: squared neighbour differences per direction.

    Each direction's sum (over all maps) is divided by its number of pixel pairs in one map,
    ``(H-1)*W`` or ``H*(W-1)``; the two are added and divided by the batch size.
    """
    b, _, h, w = _check_4d("illumination_smoothness", illumination, 2)
    vertical = (illumination[:, :, 1:, :] - illumination[:, :, :-1, :]).pow(2).sum() / ((h - 1) * w)
    horizontal = (illumination[:, :, :, 1:] - illumination[:, :, :, :-1]).pow(2).sum() / (h * (w - 1))
    return (vertical + horizontal) / b


def colour_constancy(image: torch.Tensor) -> torch.Tensor:
    """Grey-world prior on channel energies: ``sum over channel pairs (|c_i| - |c_j|)^2 / (H*W)``, batch mean.

    ``|c|`` is the L2 norm of one colour channel over the image, so the loss is symmetric in the
    channel order (RGB or BGR alike).
    """
    _, c, h, w = _check_4d("colour_constancy", image)
    if c != 3:
        raise ValueError(f"colour_constancy expects 3 colour channels, got {c}")
    norms = torch.linalg.vector_norm(image, dim=(2, 3))  # (B, 3)
    a, b_, c_ = norms.unbind(1)
    return (((a - b_) ** 2 + (a - c_) ** 2 + (b_ - c_) ** 2) / (h * w)).mean()


def centre_weights(rows: int, cols: int, device: torch.device | None = None) -> torch.Tensor:
    """``log(e + sqrt(dr^2 + dc^2))`` per patch, ``dr``/``dc`` = patches to the nearest edge: 1 at the corners.

    For the official 256x256 training crops (16x16 patches of 16 px) this is the official map.
    """
    dr = torch.tensor([min(i, rows - 1 - i) for i in range(rows)], dtype=torch.float32, device=device)
    dc = torch.tensor([min(j, cols - 1 - j) for j in range(cols)], dtype=torch.float32, device=device)
    return torch.log(math.e + torch.sqrt(dr[:, None] ** 2 + dc[None, :] ** 2))


def exposure_control(image: torch.Tensor, target: float = 0.6, patch: int = 16) -> torch.Tensor:
    """Centre-weighted exposure: mean over patches of ``((patch mean - target) * weight)^2``.

    The channel-averaged image is cut into ``patch`` x ``patch`` squares (a remainder at the
    right / bottom is dropped, as average pooling does); central patches weigh more
    (:func:`centre_weights`).
    """
    _check_4d("exposure_control", image, patch)
    means = F.avg_pool2d(image.mean(dim=1, keepdim=True), patch)  # (B, 1, rows, cols)
    weights = centre_weights(means.shape[2], means.shape[3], image.device).to(image.dtype)
    return ((means - target) * weights).pow(2).mean()


def noise_energy(noise: torch.Tensor) -> torch.Tensor:
    """Energy of the noise maps: squared L2 norm of each map over its pixels, mean over maps and batch."""
    _check_4d("noise_energy", noise)
    return noise.pow(2).sum(dim=(2, 3)).mean()


# torchvision's vgg16().features layout up to relu4_3 (index 22): conv widths and max-pools
_VGG16_TO_RELU4_3 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)


class VGG16Features(nn.Module):
    """Frozen VGG16 convolutions up to relu4_3, keyed like torchvision (``features.0`` ... ``features.21``)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_TO_RELU4_3:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.features(image)


def load_vgg16_features(path: str | os.PathLike) -> VGG16Features:
    """VGG16 (torchvision ``vgg16`` state dict, classifier and deeper layers ignored) for the perceptual term."""
    from mlkd_tracker.nets.checkpoint import load_state_strict, read_checkpoint

    state, _ = read_checkpoint(path)
    model = VGG16Features()
    depth = len(model.features)

    def beyond_relu4_3(key: str) -> bool:
        parts = key.split(".")
        return parts[0] == "classifier" or (parts[0] == "features" and parts[1].isdigit() and int(parts[1]) >= depth)

    load_state_strict(model, {k: v for k, v in state.items() if not beyond_relu4_3(k)},
                      f"{path} (expected torchvision VGG16 weights)")
    return model.eval()


def perceptual_distance(vgg: VGG16Features, enhanced: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """L2 norm, over the whole batch, of the relu4_3 feature difference between enhanced and input."""
    return torch.linalg.vector_norm(vgg(enhanced) - vgg(original))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms in the total loss (the official script's values) and the exposure settings."""

    illumination: float = 1600.0
    colour: float = 50.0
    exposure: float = 10.0
    noise: float = 50.0
    perceptual: float = 0.001
    exposure_target: float = 0.6
    exposure_patch: int = 16


def darklighter_loss(out: Enhanced, original: torch.Tensor, weights: LossWeights = LossWeights(),
                     vgg: VGG16Features | None = None) -> dict[str, torch.Tensor]:
    """Every weighted term and ``total``; the perceptual term only when ``vgg`` is given."""
    terms = {
        "illumination": weights.illumination * illumination_smoothness(out.illumination),
        "colour": weights.colour * colour_constancy(out.image),
        "exposure": weights.exposure * exposure_control(out.image, weights.exposure_target, weights.exposure_patch),
        "noise": weights.noise * noise_energy(out.noise),
    }
    if vgg is not None:
        terms["perceptual"] = weights.perceptual * perceptual_distance(vgg, out.image, original)
    terms["total"] = sum(terms.values())
    return terms
