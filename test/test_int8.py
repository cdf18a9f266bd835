"""int8 static quantisation: calibration sources, the quantised graphs, and running them as a tracker."""
import shutil

import cv2
import numpy as np
import onnx
import pytest

from export_helpers import tiny_export
from fakes import moving_square_frames
from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.errors import InputError, ModelFileError, SourceError
from mlkd_training.data import Dataset, FrameFiles, Sequence
from mlkd_training.export.int8 import (NightCamera, QuantOptions, dataset_sequences, generated_night_sequences,
                                       layer_groups, quantize_int8, record_calibration_feeds, source_sequences)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A copy of the tiny fp32 export with its calibration feeds (3 generated night clips of 3 frames)."""
    folder = tmp_path_factory.mktemp("int8")
    for path in tiny_export("student")[1].values():
        shutil.copy(path, folder / path.name)
    fp32 = folder / "tiny-student.search.onnx"
    return fp32, record_calibration_feeds(fp32, generated_night_sequences(3, 3, size=(320, 240)), quiet=True)


def test_generated_night_frames_are_dark_and_noisy():
    clips = generated_night_sequences(4, 3, size=(160, 120), seed=1)
    assert len(clips) == 4 and all(len(frames) == 3 for frames, _ in clips)
    for frames, (x, y, w, h) in clips:
        assert frames[0].shape == (120, 160, 3) and frames[0].dtype == np.uint8
        assert frames[0].mean() < 90  # a low-light exposure
        assert 0 <= x and x + w <= 160 and 0 <= y and y + h <= 120
    flat = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    dark = NightCamera.sample(rng)(flat, rng)
    assert dark.mean() < 0.5 * flat.mean() and dark.std() > 1.0  # darker, and shot/read noise on a flat patch
    assert dark[..., 0].mean() < dark[..., 2].mean()  # street-light cast: weak in blue


def test_quantised_pair_runs_as_a_tracker_close_to_fp32(calibrated):
    fp32, calibration = calibrated
    assert len(calibration.template_feeds) == 3 and len(calibration.search_feeds) == 6
    paths = quantize_int8(fp32, calibration)
    assert sorted(p.name for p in paths.values()) == ["tiny-student.int8.search.onnx", "tiny-student.int8.template.onnx"]
    model = onnx.load(str(paths["search"]))
    onnx.checker.check_model(model)
    assert sum(n.op_type == "QLinearConv" for n in model.graph.node) >= 10
    props = {p.key: p.value for p in model.metadata_props}
    assert props["mlkd.precision"] == "int8" and props["mlkd.role"] == "search"
    assert '"search_crops": 6' in props["mlkd.quantization"]

    loaded = load_model(fp32, precision="int8")  # picks the .int8 sibling of the fp32 export
    assert loaded.info["precision"] == "int8" and loaded.info["file"] == str(paths["search"])
    assert loaded.config.penalty_k == 0.2  # tracking values travel with the int8 graphs too
    assert loaded.info["model_bytes"] < 0.5 * load_model(fp32).info["model_bytes"]
    # outputs near fp32 on held-out crops: documented tolerance, relative to the output range
    reference = load_model(fp32).backend
    held_out = record_calibration_feeds(fp32, generated_night_sequences(2, 3, size=(320, 240), seed=7), quiet=True)
    for feed in held_out.search_feeds:
        crop = feed["search"][0].transpose(1, 2, 0).astype(np.uint8)
        kernels_fp32 = reference.template(np.zeros((127, 127, 3), np.uint8))
        kernels_int8 = loaded.backend.template(np.zeros((127, 127, 3), np.uint8))
        for ref, got in zip(reference.search(crop, kernels_fp32), loaded.backend.search(crop, kernels_int8)):
            assert np.abs(got - ref).max() <= 0.1 * np.abs(ref).max()
    tracker, _ = create_tracker(fp32, precision="int8")
    frames, boxes = moving_square_frames(6, size=(240, 320))
    tracker.init(frames[0], boxes[0])
    for frame in frames[1:]:
        result = tracker.update(frame)
        assert np.isfinite(result.box_xywh).all() and 0.0 <= result.score <= 1.0


def test_options_select_format_and_fp32_layers(calibrated, tmp_path):
    fp32, calibration = calibrated
    groups = layer_groups(onnx.load(str(fp32)))
    assert len(groups["first"]) == 1 and len(groups["last"]) == 2 and len(groups["xcorr"]) == 2
    paths = quantize_int8(fp32, calibration, QuantOptions(quant_format="qdq", keep_fp32=("first", "last")),
                          out_prefix=tmp_path / "qdq")
    model = onnx.load(str(paths["search"]))
    ops = [n.op_type for n in model.graph.node]
    assert "QLinearConv" not in ops and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    kept = {n.name for n in model.graph.node if n.op_type == "Conv"} & set(groups["first"] + groups["last"])
    assert kept == set(groups["first"] + groups["last"])
    # the kept layers consume float tensors: no DequantizeLinear feeds their weights
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in model.graph.node:
        if node.name in kept:
            assert node.input[1] not in produced_by_dq


def test_bad_options_and_inputs_are_clear_errors(calibrated, tmp_path):
    fp32, calibration = calibrated
    with pytest.raises(InputError, match=r"quant_format 'int4'.*layer groups \['head'\]"):
        QuantOptions(quant_format="int4", keep_fp32=("head",))
    int8 = quantize_int8(fp32, calibration, out_prefix=tmp_path / "q.int8")
    with pytest.raises(ModelFileError, match="is already int8; quantise the fp32 export"):
        quantize_int8(int8["search"], calibration)
    with pytest.raises(InputError, match="is an int8 graph, not fp32"):
        load_model(int8["search"], precision="fp32")


def test_calibration_from_a_frames_folder_and_from_a_dataset(calibrated, tmp_path):
    fp32, _ = calibrated
    frames, boxes = moving_square_frames(9, size=(240, 320))
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i + 1:04d}.png"), frame)
    clips = source_sequences(folder, count=5, frames=3)
    assert len(clips) == 3 and all(len(c) == 3 for c, _ in clips)  # 9 frames -> 3 clips of 3
    assert record_calibration_feeds(fp32, clips, quiet=True).search_feeds
    seq = Sequence("square", FrameFiles(sorted(folder.iterdir())), np.array(boxes, float))
    clips = dataset_sequences(Dataset("tiny", [seq]), count=4, frames=4)
    assert len(clips) == 1 and clips[0][1] == tuple(float(v) for v in boxes[0])
    with pytest.raises(SourceError, match="fewer than 20 frames"):
        source_sequences(folder, frames=20)
    with pytest.raises(SourceError, match="at least 2 frames each"):
        record_calibration_feeds(fp32, [(frames[:1], boxes[0])], quiet=True)
