"""Counting the floating-point operations of a forward pass (convolutions and linear layers)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the convolutions run by ``fn()``, depthwise correlation included.

    ``F.conv2d`` is wrapped for the duration of the call so that functional convolutions (the
    depthwise cross-correlation) are counted as well as ``nn.Conv2d`` modules.
    """
    total = 0
    original = F.conv2d

    def counting_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        nonlocal total
        out = original(x, weight, bias, stride, padding, dilation, groups)
        total += 2 * out.numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]
        return out

    F.conv2d = counting_conv2d
    try:
        with torch.inference_mode():
            fn()
    finally:
        F.conv2d = original
    return total
