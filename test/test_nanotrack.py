"""NanoTrack v1/v2/v3: the released checkpoints, parity with the authors' ONNX graphs and tracker, the point decoder."""
import pickle

import numpy as np
import pytest
import torch

from fakes import moving_square_frames
from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.backends.torch_backend import TorchBackend
from mlkd_tracker.config import TrackerConfig, load_model_spec, models_dir
from mlkd_tracker.decoders import decode_points, point_grid
from mlkd_tracker.errors import ModelFileError
from mlkd_tracker.nets.checkpoint import load_network, read_checkpoint
from mlkd_tracker.nets.nanotrack import NanoTrack
from mlkd_tracker.tracker import SiameseTracker
from nanotrack_reference import AuthorsNanoTracker, authors_sessions, official, real_clip, real_crops

# the authors' configs (config.yaml beside each release): WINDOW_INFLUENCE, PENALTY_K, LR, OUTPUT_SIZE
AUTHORS_TRACKING = {1: (0.462, 0.148, 0.390, 16), 2: (0.490, 0.150, 0.385, 16), 3: (0.455, 0.138, 0.348, 15)}
PUBLISHED_PARAMS_M = {1: 0.29, 2: 0.33, 3: 0.54}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_released_checkpoints_load_strictly_and_say_their_version(version):
    model, meta = load_network(official(version))  # {epoch, state_dict, optimizer with numpy scalars}
    assert isinstance(model, NanoTrack) and model.version == version and meta == {}
    head_and_backbone = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("neck."))
    assert round(head_and_backbone / 1e6, 2) == PUBLISHED_PARAMS_M[version]
    loaded = load_model(official(version))
    wi, pk, lr, size = AUTHORS_TRACKING[version]
    c = loaded.config
    assert (c.window_influence, c.penalty_k, c.lr, c.output_size) == (wi, pk, lr, size)
    assert (c.decoder, c.stride, c.exemplar_size, c.instance_size, c.context_amount) == ("points", 16, 127, 255, 0.5)
    assert loaded.info["version"] == version and loaded.info["type"] == "nanotrack"


def test_only_the_numpy_scalar_types_are_allowed(tmp_path):
    state = NanoTrack(1).state_dict()
    ok = tmp_path / "scalar.pth"
    torch.save({"state_dict": state, "optimizer": {"param_groups": [{"lr": np.float64(0.01)}]}}, ok)
    assert read_checkpoint(ok)[0].keys() == state.keys()
    array = tmp_path / "array.pth"  # a numpy array needs numpy's reconstruct function: still refused
    torch.save({"state_dict": state, "optimizer": {"buffer": np.zeros(3)}}, array)
    with pytest.raises(ModelFileError, match=r"refusing to unpickle it \(weights_only=True\)"):
        read_checkpoint(array)


def test_a_damaged_nanotrack_file_lists_its_keys(tmp_path):
    state = NanoTrack(2).state_dict()
    del state["ban_head.cls_pred.0.bias"]
    state["ban_head.bbox_pred.0.weight"] = torch.zeros(8, 96, 1, 1)
    torch.save(state, tmp_path / "damaged.pth")
    with pytest.raises(ModelFileError) as err:
        load_network(tmp_path / "damaged.pth")
    assert "does not fit NanoTrack: missing keys: ban_head.cls_pred.0.bias" in str(err.value)
    assert "ban_head.bbox_pred.0.weight: file (8, 96, 1, 1) vs model (4, 96, 1, 1)" in str(err.value)
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(ModelFileError, match="does not fit any supported architecture .*NanoTrack v1/v2/v3"):
        load_network(tmp_path / "foreign.pth")


@pytest.mark.parametrize("version", [1, 2, 3])
def test_torch_forward_matches_the_authors_onnx_on_real_crops(version):
    """Stage by stage (backbone on the 127 and 255 crops; head on the same features) within 1e-4, and end to
    end. The head's distances leave through exp: they are compared as logs (its last conv's output), which
    the float32 rounding of both pipelines keeps within 1e-4 where the distances themselves (~75 px) are not."""
    model, _ = load_network(official(version))
    backbone, head = authors_sessions(version)
    template, searches = real_crops()
    zf_onnx = backbone.run(None, {"input": template})[0]
    worst: dict[str, float] = {}

    def record(name, ours, theirs):
        worst[name] = max(worst.get(name, 0.0), float(np.abs(ours - theirs).max()))

    with torch.no_grad():
        zf = model.features(torch.from_numpy(template))
        record("template features", zf.numpy(), zf_onnx)
        kernels_from_onnx = model.ban_head.kernels(torch.from_numpy(zf_onnx))
        kernels = model.ban_head.kernels(zf)
        for search in searches:
            xf_onnx = backbone.run(None, {"input": search[None]})[0]
            cls_onnx, loc_onnx = head.run(None, {"input1": zf_onnx, "input2": xf_onnx})
            xf = model.features(torch.from_numpy(search[None]))
            record("search features", xf.numpy(), xf_onnx)
            cls, loc = model.ban_head.predict(*model.ban_head.correlate(*kernels_from_onnx, torch.from_numpy(xf_onnx)))
            record("head cls", cls.numpy(), cls_onnx)
            record("head log distances", np.log(loc.numpy()), np.log(loc_onnx))
            cls, loc = model.ban_head.predict(*model.ban_head.correlate(*kernels, xf))
            record("end-to-end cls", cls.numpy(), cls_onnx)
            record("end-to-end log distances", np.log(loc.numpy()), np.log(loc_onnx))
            assert cls_onnx.shape == (1, 2, AUTHORS_TRACKING[version][3], AUTHORS_TRACKING[version][3])
    assert max(worst.values()) <= 1e-4, worst


def test_point_decoding():
    points = point_grid(5, 16)
    assert points[:, 0].tolist() == [-32, -32] and points[:, 12].tolist() == [0, 0]
    loc = np.zeros((1, 4, 5, 5), np.float32)
    loc[0, :, 2, 3] = (10, 4, 30, 8)  # left, top, right, bottom of the point (16, 0)
    box = decode_points(loc, points)[:, 2 * 5 + 3]
    assert box.tolist() == [16 + 10, 2, 40, 12]  # centre shifts by (r - l) / 2, (b - t) / 2


class PlantedPointBackend:
    """Puts a foreground peak at the score-map point nearest to the brightest blob, with exact distances."""

    name = "planted-points"

    def __init__(self, config):
        self.config, self.points = config, point_grid(config.score_size, config.stride)

    def template(self, crop):
        return None

    def search(self, crop, kernels):
        c = self.config
        grey = crop.astype(np.float32).mean(axis=2)
        ys, xs = np.nonzero(grey >= grey.max() - 1)
        dx, dy = xs.mean() - (crop.shape[1] - 1) / 2, ys.mean() - (crop.shape[0] - 1) / 2
        half_w, half_h = (np.ptp(xs) + 1) / 2, (np.ptp(ys) + 1) / 2
        index = int(np.argmin((self.points[0] - dx) ** 2 + (self.points[1] - dy) ** 2))
        cls = np.zeros((1, 2, c.score_size, c.score_size), np.float32)
        cls[0, 1].flat[index] = 8.0
        px, py = self.points[:, index]
        loc = np.full((1, 4, c.score_size, c.score_size), 20.0, np.float32)
        loc[0, :, index // c.score_size, index % c.score_size] = (px - dx + half_w, py - dy + half_h,
                                                                   dx - px + half_w, dy - py + half_h)
        return cls, loc


def test_the_tracker_follows_a_target_through_the_point_decoder():
    config = load_model_spec(models_dir() / "nanotrack_v2.yaml").tracking
    frames, boxes = moving_square_frames(30, step=(5.0, 2.0))
    tracker = SiameseTracker(PlantedPointBackend(config), config)
    tracker.init(frames[0], boxes[0])
    for frame, (x, y, w, h) in zip(frames[1:], boxes[1:]):
        result = tracker.update(frame)
        bx, by, bw, bh = result.box_xywh
        assert abs(bx + bw / 2 - (x + w / 2)) < 3 and abs(by + bh / 2 - (y + h / 2)) < 3
        assert result.score > 0.99


def test_the_tracker_makes_the_authors_decisions_on_real_footage():
    """Same network, same crops: the project's tracker and a literal restatement of the authors'
    NanoTracker keep the same state (centre, size) over a real clip, frame by frame."""
    model, _ = load_network(official(2))
    config = load_model(official(2)).config
    backend = TorchBackend(model, "cpu", "fp32")
    frames, boxes = real_clip("wakeboard7", 40)
    ours, theirs = SiameseTracker(backend, config), AuthorsNanoTracker(backend, config)
    ours.init(frames[0], boxes[0])
    theirs.init(frames[0], boxes[0])
    moved = 0.0
    for frame in frames[1:]:
        ours.update(frame)
        theirs.track(frame)
        np.testing.assert_allclose(ours._center, theirs.center_pos, atol=1e-3)
        np.testing.assert_allclose(ours._size, theirs.size, atol=1e-3)
        moved = max(moved, float(np.abs(np.asarray(ours._center) - boxes[0][:2]).max()))
    assert moved > 20  # the target moved: the comparison is not of a standing box


@pytest.mark.parametrize("version", [1, 3])
def test_tracking_real_footage_with_the_released_weights(version):
    tracker, _ = create_tracker(official(version), "cpu")
    frames, boxes = real_clip("car16_1", 30)
    tracker.init(frames[0], boxes[0])
    ious = []
    for frame, (x, y, w, h) in zip(frames[1:], boxes[1:]):
        bx, by, bw, bh = tracker.update(frame).box_xywh
        inter = max(0.0, min(bx + bw, x + w) - max(bx, x)) * max(0.0, min(by + bh, y + h) - max(by, y))
        ious.append(inter / (bw * bh + w * h - inter))
    assert np.mean(ious) > 0.6


def test_points_config_validation():
    with pytest.raises(Exception, match="decoder must be one of"):
        TrackerConfig(decoder="boxes")
    assert TrackerConfig(instance_size=255, stride=16, decoder="points", output_size=16).score_size == 16
    assert TrackerConfig().score_size == 21
    assert TrackerConfig.from_dict({"anchor_stride": 8}).stride == 8  # files written before the rename
    assert pickle.loads(pickle.dumps(TrackerConfig(decoder="points"))).anchor_num == 1
