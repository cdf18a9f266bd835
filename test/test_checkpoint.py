"""Loading pysot / MLKD-format checkpoints, and rejecting everything else clearly."""
import pickle

import pytest
import torch

from torch import nn

from mlkd_tracker.backends import create_tracker
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import load_network, read_checkpoint, save_checkpoint

# pysot's backbone layer list: (in, out, kernel) of the five convs, full width
PYSOT_CONVS = [(3, 96, 11), (96, 256, 5), (256, 384, 3), (384, 384, 3), (384, 256, 3)]
# AlexNetLegacy's one Sequential: conv, BN, max-pool, ReLU | conv, BN, max-pool, ReLU | conv, BN, ReLU |
# conv, BN, ReLU | conv, BN. Index of each conv in it (its BN follows at the next index).
PYSOT_LEGACY_CONV_INDEX = [0, 4, 8, 11, 14]


def pysot_layout(backbone="alexnet"):
    """Every key and shape of a full-width pysot ``siamrpn_alex_dwxcorr`` state dict, from pysot's layer list.

    ``alexnet``: ``backbone.layer{1..5}``; ``alexnetlegacy`` (the model-zoo file): ``backbone.features.N``.
    """
    keys = {}

    def conv(name, out, inp, k, bias=True):
        keys[f"{name}.weight"] = (out, inp, k, k)
        if bias:
            keys[f"{name}.bias"] = (out,)

    def bn(name, c):
        keys.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
                     f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})

    for i, ((inp, out, k), index) in enumerate(zip(PYSOT_CONVS, PYSOT_LEGACY_CONV_INDEX), 1):
        if backbone == "alexnet":
            conv(f"backbone.layer{i}.0", out, inp, k)
            bn(f"backbone.layer{i}.1", out)
        else:
            conv(f"backbone.features.{index}", out, inp, k)
            bn(f"backbone.features.{index + 1}", out)
    for branch, outputs in (("cls", 10), ("loc", 20)):
        for part in ("conv_kernel", "conv_search"):
            conv(f"rpn_head.{branch}.{part}.0", 256, 256, 3, bias=False)
            bn(f"rpn_head.{branch}.{part}.1", 256)
        conv(f"rpn_head.{branch}.head.0", 256, 256, 1, bias=False)
        bn(f"rpn_head.{branch}.head.1", 256)
        conv(f"rpn_head.{branch}.head.3", outputs, 256, 1)
    return keys


def pysot_state(width=1.0, seed=0):
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in SiamRPN(width).state_dict().items()}


def test_model_parameter_names_and_shapes_are_pysots():
    assert {k: tuple(v.shape) for k, v in SiamRPN().state_dict().items()} == pysot_layout()


def legacy_state(seed=0, batches_tracked=True):
    """A pysot model-zoo (alexnetlegacy) state dict: random values, non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in pysot_layout("alexnetlegacy").items():
        if key.endswith("num_batches_tracked"):
            if batches_tracked:
                state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def legacy_backbone(state):
    """pysot's AlexNetLegacy written out as its one Sequential, loaded with the file's own keys."""
    layers = []
    for i, (inp, out, k) in enumerate(PYSOT_CONVS):
        layers += [nn.Conv2d(inp, out, k, stride=2 if i == 0 else 1), nn.BatchNorm2d(out)]
        if i < 2:
            layers += [nn.MaxPool2d(3, 2)]
        if i < 4:
            layers += [nn.ReLU()]
    features = nn.Sequential(*layers)
    assert [j for j, m in enumerate(features) if isinstance(m, nn.Conv2d)] == PYSOT_LEGACY_CONV_INDEX
    features.load_state_dict({k[len("backbone.features."):]: v for k, v in state.items()
                              if k.startswith("backbone.features.")}, strict=True)
    return features.eval()


@pytest.mark.parametrize("wrapped,batches_tracked", [(False, True), (True, False)])
def test_pysot_model_zoo_alexnetlegacy_loads_strictly_and_computes_the_same(tmp_path, wrapped, batches_tracked):
    state = legacy_state(batches_tracked=batches_tracked)
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}} if wrapped else state, path)
    model, meta = load_network(path)
    assert meta["layout"] == "pysot-alexnetlegacy" and model.width == 1.0
    ours = model.state_dict()
    for i, index in enumerate(PYSOT_LEGACY_CONV_INDEX, 1):
        for part, legacy in (("0", index), ("1", index + 1)):
            for name in ("weight", "bias", "running_mean", "running_var"):
                if f"backbone.features.{legacy}.{name}" in state:
                    assert torch.equal(ours[f"backbone.layer{i}.{part}.{name}"], state[f"backbone.features.{legacy}.{name}"])
    assert all(torch.equal(ours[k], v) for k, v in state.items() if k.startswith("rpn_head."))
    crop = torch.rand(1, 3, 127, 127, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        assert torch.allclose(model.backbone(crop), legacy_backbone(state)(crop), rtol=1e-4, atol=1e-4)


def test_tracking_values_follow_the_file_layout(tmp_path):
    """pysot's own values for its model-zoo layout, the SiamRPN reference model's for ours, the file's own when it has them."""
    legacy, ours = tmp_path / "model.pth", tmp_path / "mlkd_layout.pth"
    torch.save(legacy_state(), legacy)
    torch.save(pysot_state(), ours)
    pysot_config = create_tracker(legacy, "cpu")[0].config
    assert (pysot_config.penalty_k, pysot_config.window_influence, pysot_config.lr) == (0.16, 0.40, 0.30)
    assert (pysot_config.exemplar_size, pysot_config.instance_size, pysot_config.context_amount) == (127, 287, 0.5)
    mlkd_config = create_tracker(ours, "cpu")[0].config
    assert (mlkd_config.penalty_k, mlkd_config.window_influence, mlkd_config.lr) == (0.14, 0.428, 0.30)
    torch.save({"state_dict": legacy_state(), "meta": {"tracking": {"penalty_k": 0.2}}}, legacy)
    assert create_tracker(legacy, "cpu")[0].config.penalty_k == 0.2


def test_legacy_files_with_foreign_keys_are_listed(tmp_path):
    state = legacy_state()
    state["backbone.features.2.weight"] = torch.zeros(1)  # a max-pool has no parameters
    del state["backbone.features.15.running_var"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ModelFileError) as err:
        load_network(tmp_path / "bad.pth")
    assert "missing keys: backbone.layer5.1.running_var" in str(err.value)
    assert "unexpected keys: backbone.features.2.weight" in str(err.value)


@pytest.mark.parametrize("width", [0.25, 0.3, 0.35, 0.5, 0.6, 0.75, 1.0])
def test_width_is_inferred_from_a_plain_state_dict(tmp_path, width):
    path = tmp_path / "plain.pth"
    torch.save(pysot_state(width), path)  # no meta: the width comes from the tensor shapes
    model, _ = load_network(path)
    assert model.width == width


@pytest.mark.parametrize("layout", ["plain", "state_dict", "module_prefix", "wrapped_prefixed"])
def test_pysot_layouts_load_strictly(tmp_path, layout):
    state = pysot_state()
    if layout in ("module_prefix", "wrapped_prefixed"):
        state = {"module." + k: v for k, v in state.items()}
    obj = {"state_dict": state, "epoch": 19} if layout in ("state_dict", "wrapped_prefixed") else state
    path = tmp_path / "model.pth"
    torch.save(obj, path)
    model, _ = load_network(path)
    reference = pysot_state()
    for k, v in model.state_dict().items():
        assert torch.equal(v, reference[k]), k


def test_width_is_inferred_and_meta_round_trips(tmp_path):
    torch.manual_seed(3)
    model = SiamRPN(width=0.5)
    path = save_checkpoint(model, tmp_path / "half.pth", {"name": "half", "tracking": {"penalty_k": 0.2}}, half=True)
    loaded, meta = load_network(path)
    assert loaded.width == 0.5 and meta["name"] == "half"
    assert loaded.state_dict()["backbone.layer1.0.weight"].dtype == torch.float32
    assert torch.allclose(loaded.state_dict()["backbone.layer1.0.weight"], model.state_dict()["backbone.layer1.0.weight"],
                          atol=1e-3)
    assert not list(tmp_path.glob("*.partial"))


def test_safetensors_round_trip(tmp_path):
    model = SiamRPN(width=0.25)
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"name": "st"})
    loaded, meta = load_network(path)
    assert meta == {"name": "st"}
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_missing_unexpected_and_misshaped_keys_are_listed(tmp_path):
    state = pysot_state()
    del state["rpn_head.cls.head.3.bias"]
    state["neck.downsample.0.weight"] = torch.zeros(1)
    state["rpn_head.loc.head.3.weight"] = torch.zeros(16, 256, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ModelFileError) as err:
        load_network(tmp_path / "bad.pth")
    text = str(err.value)
    assert "missing keys: rpn_head.cls.head.3.bias" in text
    assert "unexpected keys: neck.downsample.0.weight" in text
    assert "rpn_head.loc.head.3.weight: file (16, 256, 1, 1) vs model (20, 256, 1, 1)" in text


def test_files_that_are_not_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    with pytest.raises(ModelFileError, match="not a PyTorch checkpoint"):
        read_checkpoint(garbage)
    truncated = tmp_path / "truncated.pth"
    torch.save(pysot_state(0.25), truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(ModelFileError, match="not a PyTorch checkpoint"):
        read_checkpoint(truncated)
    with pytest.raises(ModelFileError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")
    not_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_state)
    with pytest.raises(ModelFileError, match="does not contain a state dict"):
        read_checkpoint(not_state)


class Evil:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_pickles_with_code_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": pysot_state(0.25), "payload": Evil()}, path, pickle_protocol=2)
    with pytest.raises(ModelFileError, match=r"\(print\); refusing .*weights_only"):
        read_checkpoint(path)
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelFileError):
        read_checkpoint(raw)
