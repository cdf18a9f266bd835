"""NanoTrack through the deployment path: ONNX export, ONNX Runtime fp32 and int8 against torch."""
import json

import numpy as np
import onnx
import pytest

from export_helpers import nanotrack_export
from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.backends.torch_backend import TorchBackend
from mlkd_tracker.tracker import SiameseTracker
from mlkd_training.export.int8 import dataset_sequences, quantize_int8, record_calibration_feeds
from mlkd_training.export.onnx_export import parity
from mlkd_training.data.readers import open_dataset
from nanotrack_reference import UAV_REAL, real_clip


@pytest.mark.parametrize("version", [1, 2, 3])
def test_export_carries_the_point_decoder_and_matches_torch(version):
    model, paths, tracking = nanotrack_export(version)
    search = onnx.load(str(paths["search"]))
    props = {p.key: p.value for p in search.metadata_props}
    assert json.loads(props["mlkd.arch"]) == {"type": "nanotrack", "version": version, "enhancer": None}
    assert json.loads(props["mlkd.tracking"])["decoder"] == "points"
    size = tracking.score_size
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*search.graph.input, *search.graph.output)}
    assert shapes["search"] == [1, 3, 255, 255] and shapes["cls"] == [1, 2, size, size] and shapes["loc"] == [1, 4, size, size]
    diffs = parity(model, paths, tracking)
    assert diffs["cls"] < 1e-4 and diffs["kernel_cls"] < 1e-4 and diffs["kernel_loc"] < 1e-4, diffs
    assert diffs["loc"] < 1e-3, diffs  # ltrb distances of tens of pixels, through exp


def test_onnxruntime_tracks_real_footage_like_torch():
    model, paths, tracking = nanotrack_export(2)
    frames, boxes = real_clip("car16_1", 40)
    results = {}
    for label, tracker in (("torch", SiameseTracker(TorchBackend(model, "cpu", "fp32"), tracking)),
                           ("onnxruntime", create_tracker(paths["search"], "cpu")[0])):
        tracker.init(frames[0], boxes[0])
        results[label] = np.array([(*r.box_xywh, r.score) for r in map(tracker.update, frames[1:])])
    assert np.ptp(results["torch"][:, 0]) > 10  # the target moves
    np.testing.assert_allclose(results["onnxruntime"][:, :4], results["torch"][:, :4], atol=1e-2, rtol=0)
    np.testing.assert_allclose(results["onnxruntime"][:, 4], results["torch"][:, 4], atol=1e-4, rtol=0)


def test_int8_nanotrack_stays_close_to_fp32(tmp_path):
    import shutil

    _, paths, _ = nanotrack_export(2)
    for path in paths.values():
        shutil.copy(path, tmp_path / path.name)
    fp32 = tmp_path / paths["search"].name
    night = open_dataset(UAV_REAL, sequences=["boat1", "S0601"])
    calibration = record_calibration_feeds(fp32, dataset_sequences(night, frames=6), quiet=True)
    int8 = quantize_int8(fp32, calibration)
    assert sum(n.op_type == "QLinearConv" for n in onnx.load(str(int8["search"])).graph.node) >= 20
    frames, boxes = real_clip("car16_1", 40)
    trajectories = {}
    for precision in ("fp32", "int8"):
        tracker, loaded = create_tracker(fp32, "cpu", precision)
        assert loaded.info["precision"] == precision
        tracker.init(frames[0], boxes[0])
        trajectories[precision] = np.array([r.box_xywh for r in map(tracker.update, frames[1:])])
    a, b = trajectories["fp32"], trajectories["int8"]
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]), np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iou = inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)
    assert iou.mean() > 0.85, iou  # int8 follows the fp32 trajectory on a real clip
    assert load_model(fp32, precision="int8").info["model_bytes"] < 0.5 * load_model(fp32).info["model_bytes"]
