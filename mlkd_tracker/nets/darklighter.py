"""DarkLighter low-light enhancer (Ye et al., IROS 2021), the eyes of the MLKD teacher.

LE-Net, seven 3x3 convolutions with dense-style concatenations, estimates eight illumination
maps ``r_i`` and eight noise maps ``n_i`` (tanh) from the image scaled to 0..1; the image is then
refined eight times, ``x <- (x - n_i) * (r_i + 1)``. Parameter names are the official ones
(``e_conv1`` ... ``e_conv5``, ``e_conv7``, ``e_conv8``; there is no ``e_conv6``), so the
published weights load with strict key checks.

Pixel convention of the teacher (MLKD reference, ``Enhance_AlexNet``): the raw BGR 0..255 crop
is divided by 255 with its channels left in BGR order, enhanced, multiplied by 255 and handed to
the backbone unclamped. :meth:`DarkLighter.forward` does exactly that. DarkLighter itself was
trained and tested on RGB images in 0..1 with the result clamped for saving; ``mlkd enhance``
follows that convention (see :func:`enhance_bgr_image`).

An output pixel depends only on inputs within 6 px (six chained 3x3 convolutions), so an image
can be enhanced in overlapping tiles with the same result: this bounds the memory that one
4K frame would otherwise take (about 2 GB per 64-channel feature map).
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.memory import retain_freed_memory

ITERATIONS = 8          # refinement steps, one (r_i, n_i) pair each
FEATURES = 32           # LE-Net hidden channels
RECEPTIVE_RADIUS = 6    # six chained 3x3 convs: an output pixel depends on inputs within 6 px
# tiles overlap by the radius on every side: the zero padding at a tile's cut edge reaches 1 px further
# in per convolution, so outputs 6 px or more inside the cut are exact
_HALO = RECEPTIVE_RADIUS


class Enhanced(NamedTuple):
    """DarkLighter's outputs on the 0..1 scale (the non-reference losses act on these)."""

    image: torch.Tensor         # (B, 3, H, W) enhanced image, unclamped
    illumination: torch.Tensor  # (B, 8, H, W) per-step gains r_i + 1, in (0, 2)
    noise: torch.Tensor         # (B, 8, H, W) per-step noise maps n_i, in (-1, 1)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=1, padding=1, bias=True)


class DarkLighter(nn.Module):
    """LE-Net plus the iterative refinement. ``forward`` maps 0..255 pixels to 0..255 pixels.

    ``tile_size`` (default ``None``: one pass): when no gradient is needed (inference, or a
    frozen enhancer) and no graph is being exported, larger images are enhanced in overlapping
    tiles of this side to bound memory. The 6 px halo covers the 6 px receptive radius, so the
    result equals one pass up to float rounding. Tracker crops gain nothing from it (one
    channels-last pass was as fast on a 2-core x86 CPU); ``bench/enhancer.py`` times both ways
    on a full frame.
    """

    def __init__(self, tile_size: int | None = None):
        super().__init__()
        if tile_size is not None and tile_size < 1:
            raise ValueError(f"tile_size must be >= 1 or None, got {tile_size}")
        self.tile_size = tile_size
        f = FEATURES
        self.e_conv1 = _conv(3, f)
        self.e_conv2 = _conv(f, f)
        self.e_conv3 = _conv(2 * f, f)
        self.e_conv4 = _conv(2 * f, f)
        self.e_conv5 = _conv(2 * f, f)
        self.e_conv7 = _conv(2 * f, ITERATIONS)  # illumination maps
        self.e_conv8 = _conv(2 * f, ITERATIONS)  # noise maps

    def estimate(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LE-Net on a 0..1 image batch: ``(r, n)``, each (B, 8, H, W) in (-1, 1)."""
        # ReLU in place, each map dropped after its last use: a 1920x1080 frame peaks at 160 channels
        # of maps (1.3 GB) rather than 240, and stays under the 2 GiB that malloc keeps (memory.py)
        x1 = F.relu(self.e_conv1(image), inplace=True)
        x2 = F.relu(self.e_conv2(x1), inplace=True)
        x3 = F.relu(self.e_conv3(torch.cat([x1, x2], 1)), inplace=True)
        del x1
        x4 = F.relu(self.e_conv4(torch.cat([x2, x3], 1)), inplace=True)
        del x2
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)), inplace=True)
        del x3
        # e_conv7 and e_conv8 read the same input: one 16-channel convolution is ~40% cheaper than two
        weight = torch.cat([self.e_conv7.weight, self.e_conv8.weight])
        bias = torch.cat([self.e_conv7.bias, self.e_conv8.bias])
        maps = torch.tanh(F.conv2d(torch.cat([x4, x5], 1), weight, bias, padding=1))
        return maps[:, :ITERATIONS], maps[:, ITERATIONS:]

    def enhance(self, image: torch.Tensor) -> Enhanced:
        """Enhance a 0..1 image batch in one differentiable pass, with the maps the losses need."""
        r, n = self.estimate(image)
        gains = r + 1.0
        x = image
        for i in range(ITERATIONS):
            x = (x - n[:, i:i + 1]) * gains[:, i:i + 1]
        return Enhanced(x, gains, n)

    def enhance_image(self, image: torch.Tensor) -> torch.Tensor:
        """The enhanced 0..1 image only; tiled when no gradient is needed and it exceeds ``tile_size``.

        Without a graph to record (inference, a frozen teacher), freed buffers stay in the process
        for the next call (:func:`~mlkd_tracker.memory.retain_freed_memory`): a whole frame's feature
        maps are hundreds of MB each, and faulting them in afresh every frame cost more system time
        than the convolutions' compute.
        """
        tile = self.tile_size
        h, w = image.shape[-2:]
        needs_graph = torch.is_grad_enabled() and (
            image.requires_grad or any(p.requires_grad for p in self.parameters()))
        exporting = torch.jit.is_tracing() or torch.compiler.is_compiling()  # keep ONNX / compiled graphs whole
        if needs_graph or exporting:
            return self.enhance(image).image
        retain_freed_memory()
        if tile is None or (h <= tile and w <= tile):
            return self.enhance(image).image
        return self._enhance_tiled(image, tile)

    def _enhance_tiled(self, image: torch.Tensor, tile: int) -> torch.Tensor:
        h, w = image.shape[-2:]
        tile_h = math.ceil(h / math.ceil(h / tile))  # equal tiles, none a thin sliver
        tile_w = math.ceil(w / math.ceil(w / tile))
        fmt = torch.channels_last if image.dim() == 4 and image.is_contiguous(
            memory_format=torch.channels_last) and not image.is_contiguous() else torch.contiguous_format
        out = torch.empty_like(image, memory_format=fmt)
        for y0 in range(0, h, tile_h):
            y1 = min(y0 + tile_h, h)
            top, bottom = max(y0 - _HALO, 0), min(y1 + _HALO, h)
            for x0 in range(0, w, tile_w):
                x1 = min(x0 + tile_w, w)
                left, right = max(x0 - _HALO, 0), min(x1 + _HALO, w)
                part = image[..., top:bottom, left:right].contiguous(memory_format=fmt)
                enhanced = self.enhance(part).image
                out[..., y0:y1, x0:x1] = enhanced[..., y0 - top:y1 - top, x0 - left:x1 - left]
        return out

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Teacher convention: raw 0..255 crop (BGR as is) -> enhanced 0..255, unclamped."""
        return self.enhance_image(pixels / 255.0) * 255.0


def enhancer_state(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """DarkLighter's own keys from an enhancer file or a teacher checkpoint (``enhancer.*``)."""
    if any(k.startswith("enhancer.") for k in state):
        return {k[len("enhancer."):]: v for k, v in state.items() if k.startswith("enhancer.")}
    if not any(k.startswith("e_conv") for k in state) and any(
            k.startswith(("backbone.", "rpn_head.")) for k in state):
        raise ModelFileError(f"{source} is a SiamRPN checkpoint without an enhancer; expected DarkLighter "
                             f"weights (e_conv1 ... e_conv8) or a teacher checkpoint holding enhancer.*")
    return dict(state)


def load_darklighter(path: str | os.PathLike, tile_size: int | None = None) -> tuple[DarkLighter, dict[str, Any]]:
    """DarkLighter from the official weights, a ``train-enhancer`` checkpoint or a teacher; eval mode, CPU fp32."""
    from mlkd_tracker.nets.checkpoint import load_state_strict, read_checkpoint

    state, meta = read_checkpoint(path)
    model = DarkLighter(tile_size)
    load_state_strict(model, enhancer_state(state, str(path)), str(path))
    return model.eval(), meta


def enhance_bgr_image(model: DarkLighter, frame: np.ndarray, as_teacher: bool = False) -> np.ndarray:
    """Enhance one HxWx3 uint8 BGR image, returned as uint8 BGR (values clamped to 0..255).

    By default the network sees RGB, as DarkLighter was trained; ``as_teacher`` feeds the BGR
    channels as they are, which is what the MLKD teacher's backbone receives.
    """
    param = next(model.parameters())
    pixels = frame if as_teacher else frame[..., ::-1]
    t = torch.from_numpy(np.ascontiguousarray(pixels)).to(param.device).permute(2, 0, 1).unsqueeze(0)
    with torch.inference_mode():
        out = model(t.to(param.dtype)).clamp_(0.0, 255.0).round_()
    result = out[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(result if as_teacher else result[..., ::-1])
