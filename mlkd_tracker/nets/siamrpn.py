"""SiamRPN (BN-AlexNet backbone, depthwise-correlation RPN head) as in pysot / MLKD.

Module and parameter names mirror pysot's ``siamrpn_alex_dwxcorr`` so that its checkpoints
and MLKD-Track checkpoints load with ``strict=True``:
``backbone.layer{1..5}.*``, ``rpn_head.{cls,loc}.{conv_kernel,conv_search,head}.*``.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

ALEXNET_CHANNELS = (96, 256, 384, 384, 256)


def scaled_channels(width: float) -> tuple[int, ...]:
    """Backbone channels for a width multiplier (pysot rounds down with int())."""
    if not width > 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return tuple(int(c * width) for c in ALEXNET_CHANNELS)


class AlexNet(nn.Module):
    """BN-AlexNet, no padding, total stride 8: 127 -> 6x6, 255 -> 22x22, 287 -> 26x26."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4, c5 = scaled_channels(width)
        self.out_channels = c5
        self.layer1 = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=2), nn.BatchNorm2d(c1),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True))
        self.layer2 = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size=5), nn.BatchNorm2d(c2),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True))
        self.layer3 = nn.Sequential(nn.Conv2d(c2, c3, kernel_size=3), nn.BatchNorm2d(c3), nn.ReLU(inplace=True))
        self.layer4 = nn.Sequential(nn.Conv2d(c3, c4, kernel_size=3), nn.BatchNorm2d(c4), nn.ReLU(inplace=True))
        self.layer5 = nn.Sequential(nn.Conv2d(c4, c5, kernel_size=3), nn.BatchNorm2d(c5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))


def xcorr_depthwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each channel of ``search`` (B,C,H,W) with the same channel of ``kernel`` (B,C,h,w)."""
    b, c = kernel.shape[:2]
    x = search.reshape(1, b * c, search.shape[2], search.shape[3])
    k = kernel.reshape(b * c, 1, kernel.shape[2], kernel.shape[3])
    out = F.conv2d(x, k, groups=b * c)
    return out.reshape(b, c, out.shape[2], out.shape[3])


def _conv_bn_relu(cin: int, cout: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=kernel_size, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthwiseXCorr(nn.Module):
    """One RPN branch: adapt template and search features, correlate depthwise, 1x1 head."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.conv_kernel = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(in_channels, hidden, kernel_size)
        self.head = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, kernel_size=1))

    def correlate(self, kernel: torch.Tensor, search_feature: torch.Tensor) -> torch.Tensor:
        """The correlation map entering ``head``: the feature MLKD distils. ``kernel`` is conv_kernel's output."""
        return xcorr_depthwise(self.conv_search(search_feature), kernel)

    def forward(self, template_feature: torch.Tensor, search_feature: torch.Tensor) -> torch.Tensor:
        return self.head(self.correlate(self.conv_kernel(template_feature), search_feature))


class DepthwiseRPN(nn.Module):
    """Classification (2 per anchor) and regression (4 per anchor) branches."""

    def __init__(self, anchor_num: int = 5, in_channels: int = 256, hidden: int = 256):
        super().__init__()
        self.anchor_num = anchor_num
        self.cls = DepthwiseXCorr(in_channels, hidden, 2 * anchor_num)
        self.loc = DepthwiseXCorr(in_channels, hidden, 4 * anchor_num)


class SiamRPN(nn.Module):
    """SiamRPN-AlexNet-DW. Pixels in are raw BGR 0..255 floats, NCHW.

    ``enhancer`` (optional) is applied to every crop before the backbone: this makes the
    MLKD teacher (DarkLighter + SiamRPN). Students have none.
    """

    def __init__(self, width: float = 1.0, anchor_num: int = 5, enhancer: nn.Module | None = None):
        super().__init__()
        self.width = width
        if enhancer is not None:
            self.enhancer = enhancer
        self.backbone = AlexNet(width)
        channels = self.backbone.out_channels
        self.rpn_head = DepthwiseRPN(anchor_num, channels, channels)

    def arch(self) -> dict:
        """Architecture facts for checkpoint and export metadata."""
        enhancer = getattr(self, "enhancer", None)
        return {"type": "siamrpn", "width": float(self.width), "anchor_num": int(self.rpn_head.anchor_num),
                "enhancer": type(enhancer).__name__ if enhancer is not None else None}

    def backbone_stages(self) -> dict[str, nn.Module]:
        """The backbone's stages by the names training configs use (pysot's ``layer1`` ... ``layer5``)."""
        return {name: getattr(self.backbone, name) for name in ("layer1", "layer2", "layer3", "layer4", "layer5")}

    def prediction_head(self) -> nn.Module:
        return self.rpn_head

    def head_output_names(self) -> tuple[str, ...]:
        """The last 1x1 conv of each branch (MLKD students keep them frozen)."""
        return "rpn_head.cls.head.3", "rpn_head.loc.head.3"

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Backbone features of a crop batch, through the enhancer when there is one."""
        enhancer = getattr(self, "enhancer", None)
        if enhancer is not None:
            image = enhancer(image)
        return self.backbone(image)

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward: outputs and the features the distillation losses use.

        ``cls_feature`` (the cls correlation map) is both what the feature losses distil
        (``distill_feature``, as MLKD) and what mutual learning compares.
        """
        zf, xf = self.features(template), self.features(search)
        head = self.rpn_head
        cls_feature = head.cls.correlate(head.cls.conv_kernel(zf), xf)
        loc_feature = head.loc.correlate(head.loc.conv_kernel(zf), xf)
        return {"cls": head.cls.head(cls_feature), "loc": head.loc.head(loc_feature),
                "cls_feature": cls_feature, "loc_feature": loc_feature, "distill_feature": cls_feature}

    def template_kernels(self, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Template branch, run once per target: the correlation kernels of both branches."""
        zf = self.features(template)
        return self.rpn_head.cls.conv_kernel(zf), self.rpn_head.loc.conv_kernel(zf)

    def track(self, search: torch.Tensor, kernel_cls: torch.Tensor,
              kernel_loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Search branch, run per frame: (cls, loc) score maps for precomputed kernels."""
        xf = self.features(search)
        head = self.rpn_head
        return head.cls.head(head.cls.correlate(kernel_cls, xf)), head.loc.head(head.loc.correlate(kernel_loc, xf))


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode ``model`` with every Conv2d -> BatchNorm2d pair merged into one conv.

    Inference only: saves a full pass over every feature map per BN layer. Outputs equal the
    unfused model's up to float rounding.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = copy.deepcopy(model).eval()
    for seq in [m for m in folded.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for conv_name, bn_name in zip(names, names[1:]):
            conv, bn = seq._modules[conv_name], seq._modules[bn_name]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                seq._modules[bn_name] = nn.Identity()
    return folded
