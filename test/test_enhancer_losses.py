"""DarkLighter's non-reference losses on small tensors, against values worked out by hand."""
import math

import pytest
import torch

from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_tracker.nets.darklighter import Enhanced
from mlkd_training.enhancer.losses import (LossWeights, VGG16Features, centre_weights, colour_constancy,
                                           darklighter_loss, exposure_control, illumination_smoothness,
                                           load_vgg16_features, noise_energy, perceptual_distance)
from mlkd_training.enhancer.train import parse_loss_weights
from mlkd_tracker.errors import InputError


def test_illumination_smoothness_by_hand():
    # [[0, 1], [2, 4]]: vertical pairs (2-0)^2 + (4-1)^2 = 13 over (2-1)*2 = 2 pairs -> 6.5;
    # horizontal (1-0)^2 + (4-2)^2 = 5 over 2*(2-1) = 2 pairs -> 2.5; one image -> 9.0
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).reshape(1, 1, 2, 2)
    assert illumination_smoothness(x).item() == pytest.approx(9.0)
    # a second, flat image and a flat second map add no variation, but the batch mean halves it
    two = torch.cat([x, torch.ones_like(x)]).repeat(1, 2, 1, 1)
    two[:, 1] = 3.0
    assert illumination_smoothness(two).item() == pytest.approx(4.5)
    # a 2x3 map: [[0, 0, 3], [0, 0, 0]]: vertical 9 / (1*3) = 3; horizontal 9 / (2*2) = 2.25
    y = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]).reshape(1, 1, 2, 3)
    assert illumination_smoothness(y).item() == pytest.approx(5.25)
    with pytest.raises(ValueError, match="H, W >= 2"):
        illumination_smoothness(torch.zeros(1, 8, 1, 5))


def test_colour_constancy_by_hand():
    # 2x2 image, red channel all 1, green and blue 0: |R| = 2, |G| = |B| = 0
    # (2-0)^2 + (2-0)^2 + (0-0)^2 = 8, divided by H*W = 4 -> 2.0
    x = torch.zeros(1, 3, 2, 2)
    x[:, 0] = 1.0
    assert colour_constancy(x).item() == pytest.approx(2.0)
    # grey images cost nothing; the channel order does not matter; batch mean
    grey = torch.full((1, 3, 2, 2), 0.4)
    assert colour_constancy(grey).item() == pytest.approx(0.0)
    assert colour_constancy(x.flip(1)).item() == pytest.approx(2.0)
    assert colour_constancy(torch.cat([x, grey])).item() == pytest.approx(1.0)
    # G = 0.5 everywhere on 1x2: |R| = 0, |G| = sqrt(0.5), |B| = 0 -> 0.5 + 0 + 0.5 = 1.0, / 2 -> 0.5
    y = torch.zeros(1, 3, 1, 2)
    y[:, 1] = 0.5
    assert colour_constancy(y).item() == pytest.approx(0.5)


def test_centre_weights_are_the_official_map_for_256_crops():
    # the official script's 16x16 map: distances to the edge 0..7, 7..0; log(e + sqrt(dx^2 + dy^2))
    d = list(range(8)) + list(range(7, -1, -1))
    official = torch.tensor([[math.log(math.e + math.sqrt(d[i] ** 2 + d[j] ** 2)) for j in range(16)]
                             for i in range(16)])
    assert torch.allclose(centre_weights(16, 16), official)
    assert centre_weights(16, 16)[0, 0].item() == pytest.approx(1.0)       # corners weigh 1
    assert centre_weights(16, 16)[7, 8].item() == pytest.approx(math.log(math.e + math.sqrt(98)))  # centre most
    assert centre_weights(3, 5)[1].tolist() == pytest.approx(
        [math.log(math.e + 1), math.log(math.e + math.sqrt(2)), math.log(math.e + math.sqrt(5)),
         math.log(math.e + math.sqrt(2)), math.log(math.e + 1)])


def test_exposure_control_by_hand():
    # 48x48 image in 16 px patches: a 3x3 grid. Every patch at the target 0.6 except the centre at 0.2.
    x = torch.full((1, 3, 48, 48), 0.6)
    x[:, :, 16:32, 16:32] = 0.2
    centre = math.log(math.e + math.sqrt(2))  # 1 patch from the edge in both directions
    assert exposure_control(x).item() == pytest.approx(((0.2 - 0.6) * centre) ** 2 / 9, rel=1e-5)
    # the same dark patch in a corner weighs 1
    y = torch.full((1, 3, 48, 48), 0.6)
    y[:, :, :16, :16] = 0.2
    assert exposure_control(y).item() == pytest.approx(0.16 / 9, rel=1e-5)
    # the channel mean is what is exposed: (0, 0.9, 0.9) averages to 0.6 -> no loss
    z = torch.full((1, 3, 32, 32), 0.9)
    z[:, 0] = 0.0
    assert exposure_control(z).item() == pytest.approx(0.0, abs=1e-12)
    # another target, another patch size: a 2x2 grid of 4 px patches, all corners (weight 1)
    assert exposure_control(torch.full((1, 3, 8, 8), 0.5), target=0.3, patch=4).item() == pytest.approx(0.04)
    with pytest.raises(ValueError, match="H, W >= 16"):
        exposure_control(torch.zeros(1, 3, 8, 8))


def test_noise_energy_by_hand():
    # two 2x2 maps: all ones (energy 4) and all zeros (0) -> mean 2.0; add an image of twos (16, 16) -> 36 / 4 = 9
    n = torch.zeros(1, 2, 2, 2)
    n[:, 0] = 1.0
    assert noise_energy(n).item() == pytest.approx(2.0)
    m = torch.cat([n, torch.full((1, 2, 2, 2), 2.0)])
    assert noise_energy(m).item() == pytest.approx((4 + 0 + 16 + 16) / 4)


def test_total_is_the_weighted_sum_and_perceptual_only_with_vgg():
    g = torch.Generator().manual_seed(0)
    out = Enhanced(torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 8, 32, 32, generator=g) + 0.5,
                   torch.rand(2, 8, 32, 32, generator=g) - 0.5)
    low = out.image * 0.3
    terms = darklighter_loss(out, low)
    assert set(terms) == {"illumination", "colour", "exposure", "noise", "total"}
    assert terms["illumination"].item() == pytest.approx(1600 * illumination_smoothness(out.illumination).item())
    assert terms["colour"].item() == pytest.approx(50 * colour_constancy(out.image).item())
    assert terms["exposure"].item() == pytest.approx(10 * exposure_control(out.image).item())
    assert terms["noise"].item() == pytest.approx(50 * noise_energy(out.noise).item())
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in terms if k != "total"))
    custom = darklighter_loss(out, low, LossWeights(illumination=0.0, noise=1.0, exposure_target=0.3))
    assert custom["illumination"].item() == 0.0
    assert custom["noise"].item() == pytest.approx(noise_energy(out.noise).item())
    assert custom["exposure"].item() == pytest.approx(10 * exposure_control(out.image, 0.3).item())

    torch.manual_seed(0)
    vgg = VGG16Features()
    with_vgg = darklighter_loss(out, low, vgg=vgg)
    features = vgg.features
    expected = torch.sqrt(((features(out.image) - features(low)) ** 2).sum())
    assert with_vgg["perceptual"].item() == pytest.approx(0.001 * expected.item(), rel=1e-4)
    assert with_vgg["total"].item() == pytest.approx(terms["total"].item() + with_vgg["perceptual"].item(), rel=1e-6)
    assert perceptual_distance(vgg, low, low).item() == 0.0


def _torchvision_vgg16_file(path, seed=0):
    """A VGG16 state dict laid out like torchvision's (deeper layers and classifier kept small: ignored anyway)."""
    torch.manual_seed(seed)
    state = VGG16Features().state_dict()
    state.update({"features.24.weight": torch.zeros(1), "features.28.bias": torch.zeros(1),
                  "classifier.0.weight": torch.zeros(2, 2), "classifier.6.bias": torch.zeros(2)})
    torch.save(state, path)
    return state


def test_vgg16_weights_load_from_a_torchvision_layout(tmp_path):
    state = _torchvision_vgg16_file(tmp_path / "vgg16.pth")
    vgg = load_vgg16_features(tmp_path / "vgg16.pth")
    assert torch.equal(vgg.state_dict()["features.21.weight"], state["features.21.weight"])
    assert not any(p.requires_grad for p in vgg.parameters())
    assert vgg(torch.rand(1, 3, 32, 32)).shape == (1, 512, 4, 4)  # relu4_3: stride 8
    save_checkpoint(SiamRPN(width=0.25), tmp_path / "siamrpn.pth")
    with pytest.raises(ModelFileError, match=r"expected torchvision VGG16 weights.*missing keys: features\.0\.weight"):
        load_vgg16_features(tmp_path / "siamrpn.pth")
    broken = {k: v for k, v in state.items() if k != "features.10.bias"}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelFileError, match=r"missing keys: features\.10\.bias"):
        load_vgg16_features(tmp_path / "broken.pth")


def test_loss_weight_options():
    w = parse_loss_weights(["illumination=800", "exposure_patch=8", "noise=0"])
    assert (w.illumination, w.exposure_patch, w.noise, w.colour) == (800.0, 8, 0.0, 50.0)
    with pytest.raises(InputError, match="NAME one of"):
        parse_loss_weights(["smoothness=1"])
    with pytest.raises(InputError, match="not a number"):
        parse_loss_weights(["noise=lots"])
