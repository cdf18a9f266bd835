"""NanoTrack v1 / v2 / v3 (Chu et al.): MobileNetV3-small backbone (stride 16), BAN point head.

Module and parameter names follow the released checkpoints (``backbone.features.*``,
``neck.downsample.*``, ``ban_head.*``), so the official ``nanotrackvN.pth`` files load with
``strict=True``. The versions differ in the head:

- v1: one pixel-wise correlation (template positions as channels) with channel attention,
  shared by a cls tower of 3 and a box tower of 4 depthwise-separable layers.
- v2: a pixel-wise correlation per branch, each with 1x1 conv + BN adapters on the template and
  search features; towers of 6 depthwise-separable layers.
- v3: a wider backbone (one more block, 96 channels), per branch a pixel-wise correlation
  (attention + 2x2 conv, 15x15 map) concatenated with a depthwise correlation of the template's
  central 4x4, reduced by a 1x1 conv; towers of 6 layers with BN after both convs.

Every head predicts, per point of the score map, a (background, foreground) logit pair and the
left / top / right / bottom distances (crop pixels, already exponentiated) from the point to the
box sides. Pixels in are raw BGR 0..255 floats, NCHW, as pysot.

The released weights also hold a 1x1 ``AdjustLayer`` neck (``neck.downsample``). The authors'
model never applies it (their ``ModelBuilder`` feeds backbone features straight to the head, and
their ONNX exports take the 48 / 96-channel backbone output as head input), so it is loaded and
kept but not run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VERSIONS = (1, 2, 3)

# MobileNetV3-small blocks: kernel, expansion, output channels, squeeze-excite, hard-swish, stride
_SMALL_BLOCKS = ((3, 1, 16, True, False, 2), (3, 4.5, 24, False, False, 2), (3, 3.67, 24, False, False, 1),
                 (5, 4, 40, True, True, 2), (5, 6, 40, True, True, 1), (5, 6, 40, True, True, 1),
                 (5, 3, 48, True, True, 1), (5, 3, 48, True, True, 1))
_V3_EXTRA_BLOCK = (5, 6, 96, True, True, 1)
STRIDE = 16
CORRELATION_CHANNELS = 64   # template positions of an 8x8 template feature (127 px crop)
# the authors' published cost of each version (MFLOPs, HonglinChu/SiamTrackers, NanoTrack), for comparison
# with what ``nets.flops.count_flops`` counts for the search branch
PUBLISHED_MFLOPS = {1: 75.6, 2: 84.6, 3: 115.6}
_MARKER_KEYS = {1: "ban_head.corr_pw.CA_layer.fc1.weight", 2: "ban_head.cls_pw_tower.0.weight",
                3: "ban_head.down_cls.0.weight"}


def _divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10 % down (MobileNet channel rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _global_average(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) channel means, as a pooling over the whole (fixed) map: it exports as an AveragePool,
    where a mean exports as a ReduceMean that the opset 18 -> 17 conversion leaves invalid."""
    return F.avg_pool2d(x, tuple(x.shape[2:]))


def _activation(hard_swish: bool) -> nn.Module:
    return nn.Hardswish(inplace=True) if hard_swish else nn.ReLU(inplace=True)


class SqueezeExcite(nn.Module):
    """Channel gates from the global average: Linear -> ReLU -> Linear -> hard sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = _divisible(channels // 4)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                nn.Hardsigmoid(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.fc(_global_average(x).flatten(1))
        return x * gates[:, :, None, None]


class InvertedResidual(nn.Module):
    """MobileNetV3 block: (1x1 expand) -> depthwise kxk -> (squeeze-excite) -> 1x1 project, residual when shapes allow."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int, se: bool, hard_swish: bool):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        depthwise = [nn.Conv2d(hidden, hidden, kernel, stride, (kernel - 1) // 2, groups=hidden, bias=False),
                     nn.BatchNorm2d(hidden)]
        gate = SqueezeExcite(hidden) if se else nn.Identity()
        project = [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        if cin == hidden:  # no expansion: activation before the gate
            layers = [*depthwise, _activation(hard_swish), gate, *project]
        else:              # expansion: the gate sits between the depthwise BN and its activation
            layers = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), _activation(hard_swish),
                      *depthwise, gate, _activation(hard_swish), *project]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV3Small(nn.Module):
    """The NanoTrack backbone: stem + MobileNetV3-small blocks up to stride 16 (127 -> 8x8, 255 -> 16x16)."""

    def __init__(self, version: int = 2):
        super().__init__()
        blocks = _SMALL_BLOCKS + ((_V3_EXTRA_BLOCK,) if version == 3 else ())
        cin = _divisible(16)
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, cin, 3, 2, 1, bias=False), nn.BatchNorm2d(cin),
                                                 nn.Hardswish(inplace=True))]
        for kernel, expansion, channels, se, hard_swish, stride in blocks:
            cout = _divisible(channels)
            layers.append(InvertedResidual(cin, _divisible(cin * expansion), cout, kernel, stride, se, hard_swish))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class AdjustLayer(nn.Module):
    """The released checkpoints' 1x1 conv + BN neck; kept for their keys, never applied (see the module docstring)."""

    def __init__(self, channels: int):
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))


def pixelwise_xcorr(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(B, Hz*Wz, Hx, Wx): the dot product of every search position with every template position."""
    b, c, h, w = search.shape
    return torch.matmul(kernel.reshape(b, c, -1).transpose(1, 2), search.reshape(b, c, h * w)).reshape(b, -1, h, w)


def depthwise_xcorr(search: torch.Tensor, kernel: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """Correlate each channel of ``search`` (B,C,H,W) with the same channel of ``kernel`` (B,C,h,w)."""
    b, c = kernel.shape[:2]
    out = F.conv2d(search.reshape(1, b * c, *search.shape[2:]), kernel.reshape(b * c, 1, *kernel.shape[2:]),
                   padding=padding, groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


class ChannelAttention(nn.Module):
    """Channel gates from the global average: 1x1 conv -> ReLU -> 1x1 conv -> sigmoid."""

    def __init__(self, channels: int = CORRELATION_CHANNELS):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(_global_average(x)))))


def _pointwise_bn(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))


class PixelwiseCorrelation(nn.Module):
    """Pixel-wise correlation with channel attention; v2/v3 adapt both features with a 1x1 conv + BN first
    (``conv_kernel`` runs once per target, in the template branch), v3 adds a 2x2 depthwise + 1x1 conv after."""

    def __init__(self, channels: int | None = None, post_conv: bool = False):
        super().__init__()
        self.CA_layer = ChannelAttention()
        if channels is not None:
            self.conv_kernel = _pointwise_bn(channels)
            self.conv_search = _pointwise_bn(channels)
        if post_conv:
            c = CORRELATION_CHANNELS
            self.conv = nn.Sequential(nn.Conv2d(c, c, 2, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU6(inplace=True),
                                      nn.Conv2d(c, c, 1), nn.BatchNorm2d(c))

    def kernel(self, template_feature: torch.Tensor) -> torch.Tensor:
        adapt = getattr(self, "conv_kernel", None)
        return adapt(template_feature) if adapt is not None else template_feature

    def forward(self, kernel: torch.Tensor, search_feature: torch.Tensor) -> torch.Tensor:
        adapt = getattr(self, "conv_search", None)
        x = adapt(search_feature) if adapt is not None else search_feature
        x = self.CA_layer(pixelwise_xcorr(x, kernel))
        post = getattr(self, "conv", None)
        return post(x) if post is not None else x


class DepthwiseCorrelation(nn.Module):
    """v3's second correlation: 1x1 conv + BN adapters, then the search map correlated with the template's
    central 4x4 per channel (padding 1: 16x16 -> 15x15)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_kernel = _pointwise_bn(channels)
        self.conv_search = _pointwise_bn(channels)

    def forward(self, kernel: torch.Tensor, search_feature: torch.Tensor) -> torch.Tensor:
        return depthwise_xcorr(self.conv_search(search_feature), kernel[:, :, 2:6, 2:6], padding=1)


def _separable(cin: int, cout: int, kernel: int, bn_after_depthwise: bool) -> list[nn.Module]:
    """One tower layer: depthwise kxk (+ BN + ReLU6 in v3) then pointwise 1x1 + BN (+ ReLU6 in v1/v2)."""
    depthwise = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False)
    pointwise = nn.Conv2d(cin, cout, 1, bias=False)
    if bn_after_depthwise:
        return [depthwise, nn.BatchNorm2d(cin), nn.ReLU6(inplace=True), pointwise, nn.BatchNorm2d(cout)]
    return [depthwise, pointwise, nn.BatchNorm2d(cout), nn.ReLU6(inplace=True)]


def _tower(channels: list[int], kernels: list[int], bn_after_depthwise: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, k in zip(channels, channels[1:], kernels):
        layers += _separable(cin, cout, k, bn_after_depthwise)
    return nn.Sequential(*layers)


class BANHead(nn.Module):
    """The box-adaptive (point) head of one NanoTrack version.

    ``kernels(zf)`` is the template branch's share (run once per target): the cls and loc
    correlation kernels, each one tensor (v3 stacks its pixel-wise and depthwise kernels on the
    channel axis). ``correlate`` gives the features entering the towers (what distillation acts
    on), ``predict`` the logits and the exponentiated ltrb distances.
    """

    def __init__(self, version: int):
        super().__init__()
        self.version = version
        c = CORRELATION_CHANNELS
        if version == 1:
            self.corr_pw = PixelwiseCorrelation()
            self.cls_tower = _tower([c, 128, 128, 128], [5, 5, 3])
            self.bbox_tower = _tower([c, 96, 96, 96, 96], [3, 3, 5, 5])
            self.cls_logits = nn.Sequential(nn.Conv2d(128, 2, 1))
            self.bbox_pred = nn.Sequential(nn.Conv2d(96, 4, 1))
        elif version == 2:
            self.corr_pw_reg = PixelwiseCorrelation(48)
            self.corr_pw_cls = PixelwiseCorrelation(48)
            self.cls_pw_tower = _tower([c] + [96] * 6, [3] * 6)
            self.bbox_pw_tower = _tower([c] + [96] * 6, [3] * 6)
            self.cls_pred = nn.Sequential(nn.Conv2d(96, 2, 1))
            self.bbox_pred = nn.Sequential(nn.Conv2d(96, 4, 1))
        elif version == 3:
            self.corr_dw_reg = DepthwiseCorrelation(96)
            self.corr_pw_reg = PixelwiseCorrelation(96, post_conv=True)
            self.corr_dw_cls = DepthwiseCorrelation(96)
            self.corr_pw_cls = PixelwiseCorrelation(96, post_conv=True)
            self.cls_tower = _tower([96] * 7, [3] * 6, bn_after_depthwise=True)
            self.bbox_tower = _tower([96] * 7, [3] * 6, bn_after_depthwise=True)
            self.cls_logits = nn.Sequential(nn.Conv2d(96, 2, 1))
            self.bbox_pred = nn.Sequential(nn.Conv2d(96, 4, 1))
            self.down_reg = nn.Sequential(nn.Conv2d(96 + c, 96, 1))
            self.down_cls = nn.Sequential(nn.Conv2d(96 + c, 96, 1))
        else:
            raise ValueError(f"NanoTrack version must be one of {VERSIONS}, got {version}")

    def kernels(self, zf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.version == 1:
            return zf, zf
        if self.version == 2:
            return self.corr_pw_cls.kernel(zf), self.corr_pw_reg.kernel(zf)
        return (torch.cat([self.corr_pw_cls.kernel(zf), self.corr_dw_cls.conv_kernel(zf)], dim=1),
                torch.cat([self.corr_pw_reg.kernel(zf), self.corr_dw_reg.conv_kernel(zf)], dim=1))

    def correlate(self, kernel_cls: torch.Tensor, kernel_loc: torch.Tensor,
                  xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.version == 1:
            # one correlation feeds both towers in the released model; each branch computes it from its own
            # (identical) kernel so that both graph inputs are used
            return self.corr_pw(kernel_cls, xf), self.corr_pw(kernel_loc, xf)
        if self.version == 2:
            return self.corr_pw_cls(kernel_cls, xf), self.corr_pw_reg(kernel_loc, xf)
        split = kernel_cls.shape[1] // 2
        cls = self.down_cls(torch.cat([self.corr_pw_cls(kernel_cls[:, :split], xf),
                                       self.corr_dw_cls(kernel_cls[:, split:], xf)], dim=1))
        loc = self.down_reg(torch.cat([self.corr_pw_reg(kernel_loc[:, :split], xf),
                                       self.corr_dw_reg(kernel_loc[:, split:], xf)], dim=1))
        return cls, loc

    def predict(self, cls_feature: torch.Tensor, loc_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.version == 2:
            logits, distances = self.cls_pred(self.cls_pw_tower(cls_feature)), self.bbox_pred(self.bbox_pw_tower(loc_feature))
        else:
            logits, distances = self.cls_logits(self.cls_tower(cls_feature)), self.bbox_pred(self.bbox_tower(loc_feature))
        return logits, torch.exp(distances)


class NanoTrack(nn.Module):
    """NanoTrack of one version. ``enhancer`` (optional) runs on every crop first: the MLKD teacher."""

    def __init__(self, version: int = 2, enhancer: nn.Module | None = None):
        super().__init__()
        if version not in VERSIONS:
            raise ValueError(f"NanoTrack version must be one of {VERSIONS}, got {version}")
        self.version = version
        if enhancer is not None:
            self.enhancer = enhancer
        self.backbone = MobileNetV3Small(version)
        self.neck = AdjustLayer(96 if version == 3 else CORRELATION_CHANNELS)
        self.ban_head = BANHead(version)

    def arch(self) -> dict:
        """Architecture facts for checkpoint and export metadata."""
        enhancer = getattr(self, "enhancer", None)
        return {"type": "nanotrack", "version": self.version,
                "enhancer": type(enhancer).__name__ if enhancer is not None else None}

    def backbone_stages(self) -> dict[str, nn.Module]:
        """The backbone by the name training configs use (the authors' TRAIN_LAYERS ``features``)."""
        return {"features": self.backbone.features}

    def prediction_head(self) -> nn.Module:
        return self.ban_head

    def head_output_names(self) -> tuple[str, ...]:
        """The last 1x1 conv of each branch (MLKD students keep them frozen)."""
        return ("ban_head.cls_pred.0" if self.version == 2 else "ban_head.cls_logits.0"), "ban_head.bbox_pred.0"

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Backbone features of a crop batch, through the enhancer when there is one."""
        enhancer = getattr(self, "enhancer", None)
        return self.backbone(enhancer(image) if enhancer is not None else image)

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training forward: outputs and the features the distillation losses use.

        ``distill_feature`` is the search crop's backbone feature (the neck is not applied, see the
        module docstring): where the teacher's view through the enhancer differs from the student's.
        ``cls_feature`` (the correlation entering the cls tower) is what mutual learning compares.
        """
        xf = self.features(search)
        cls_feature, loc_feature = self.ban_head.correlate(*self.ban_head.kernels(self.features(template)), xf)
        cls, loc = self.ban_head.predict(cls_feature, loc_feature)
        return {"cls": cls, "loc": loc, "cls_feature": cls_feature, "loc_feature": loc_feature, "distill_feature": xf}

    def template_kernels(self, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Template branch, run once per target: the correlation kernels of both branches."""
        return self.ban_head.kernels(self.features(template))

    def track(self, search: torch.Tensor, kernel_cls: torch.Tensor,
              kernel_loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Search branch, run per frame: (cls logits, ltrb distances) for precomputed kernels."""
        return self.ban_head.predict(*self.ban_head.correlate(kernel_cls, kernel_loc, self.features(search)))


def nanotrack_version(state) -> int | None:
    """The NanoTrack version whose head a state dict holds, or None when it is no NanoTrack."""
    found = [v for v, key in _MARKER_KEYS.items() if key in state]
    return found[0] if len(found) == 1 else None
