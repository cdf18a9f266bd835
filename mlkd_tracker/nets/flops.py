"""Counting the floating-point operations of a forward pass: convolutions, matrix products and linear layers."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the convolutions, ``torch.matmul`` products and linear layers run by ``fn()``.

    The functional entry points are wrapped for the duration of the call, so functional
    convolutions (the depthwise cross-correlation), NanoTrack's pixel-wise correlation (a matmul)
    and the squeeze-excite layers are counted as well as ``nn.Conv2d`` modules. Element-wise
    operations (activations, BatchNorm, pooling) are not counted.
    """
    total = 0
    originals = (F.conv2d, torch.matmul, F.linear)

    def counting_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        nonlocal total
        out = originals[0](x, weight, bias, stride, padding, dilation, groups)
        total += 2 * out.numel() * weight.shape[1] * weight.shape[2] * weight.shape[3]
        return out

    def counting_matmul(a, b, **kwargs):
        nonlocal total
        out = originals[1](a, b, **kwargs)
        total += 2 * out.numel() * a.shape[-1]
        return out

    def counting_linear(x, weight, bias=None):
        nonlocal total
        out = originals[2](x, weight, bias)
        total += 2 * out.numel() * weight.shape[1]
        return out

    F.conv2d, torch.matmul, F.linear = counting_conv2d, counting_matmul, counting_linear
    try:
        with torch.inference_mode():
            fn()
    finally:
        F.conv2d, torch.matmul, F.linear = originals
    return total
