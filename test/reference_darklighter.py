"""An independent, literal implementation of the published DarkLighter formulas, for tests only.

Written from the paper / method text, not from the module under test: LE-Net on the image in
0..1, then x <- (x - n_i) * (r_i + 1) for i = 1..8, output times 255. The teacher feeds the raw
BGR 0..255 crop as it is (no channel swap) and does not clamp the result.
"""
import torch
import torch.nn.functional as F


def reference_enhance(state: dict, pixels: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) 0..255 -> (B,3,H,W) 0..255 with the weights in ``state`` (official key names)."""
    def conv(name, x):
        return F.conv2d(x, state[name + ".weight"].float(), state[name + ".bias"].float(), padding=1)

    x = pixels.float().contiguous() / 255.0
    a1 = torch.relu(conv("e_conv1", x))
    a2 = torch.relu(conv("e_conv2", a1))
    a3 = torch.relu(conv("e_conv3", torch.cat([a1, a2], dim=1)))
    a4 = torch.relu(conv("e_conv4", torch.cat([a2, a3], dim=1)))
    a5 = torch.relu(conv("e_conv5", torch.cat([a3, a4], dim=1)))
    r = torch.tanh(conv("e_conv7", torch.cat([a4, a5], dim=1)))
    n = torch.tanh(conv("e_conv8", torch.cat([a4, a5], dim=1)))
    for i in range(8):
        x = (x - n[:, i:i + 1]) * (r[:, i:i + 1] + 1.0)
    return x * 255.0


def random_darklighter_state(seed: int = 0, scale: float = 0.1) -> dict:
    """Official-layout DarkLighter weights with enough spread that every map matters."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"e_conv1": (32, 3), "e_conv2": (32, 32), "e_conv3": (32, 64), "e_conv4": (32, 64),
              "e_conv5": (32, 64), "e_conv7": (8, 64), "e_conv8": (8, 64)}
    state = {}
    for name, (cout, cin) in shapes.items():
        state[name + ".weight"] = torch.randn(cout, cin, 3, 3, generator=g) * scale
        state[name + ".bias"] = torch.randn(cout, generator=g) * scale
    return state
