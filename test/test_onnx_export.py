"""ONNX export (template + search graphs, metadata) and the ONNX Runtime backend against torch."""
import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from export_helpers import tiny_export
from fakes import moving_square_frames
from mlkd_tracker.backends import create_tracker, load_model
from mlkd_tracker.backends.exported import ExportMeta, find_graph_pair
from mlkd_tracker.backends.torch_backend import TorchBackend
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.nets.checkpoint import save_checkpoint
from mlkd_tracker.tracker import SiameseTracker
from mlkd_training.export.onnx_export import export_onnx, parity


@pytest.mark.parametrize("kind", ["student", "teacher"])
def test_export_writes_two_checked_graphs_with_fixed_shapes_and_metadata(kind):
    _, paths, tracking = tiny_export(kind)
    for role, path in paths.items():
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        props = {p.key: p.value for p in model.metadata_props}
        assert props["mlkd.role"] == role and props["mlkd.name"] == f"tiny {kind}"
        assert json.loads(props["mlkd.tracking"])["penalty_k"] == 0.2
        assert props["mlkd.input_layout"].startswith("NCHW float32 BGR")
        assert props["mlkd.version"] and props["mlkd.precision"] == "fp32"
        shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in (*model.graph.input, *model.graph.output)}
        if role == "template":
            assert shapes == {"template": [1, 3, 127, 127], "kernel_cls": [1, 64, 4, 4], "kernel_loc": [1, 64, 4, 4]}
        else:
            assert shapes == {"search": [1, 3, 287, 287], "kernel_cls": [1, 64, 4, 4], "kernel_loc": [1, 64, 4, 4],
                              "cls": [1, 10, 21, 21], "loc": [1, 20, 21, 21]}
    enhancer = json.loads({p.key: p.value for p in onnx.load(str(paths["search"])).metadata_props}["mlkd.arch"])
    assert enhancer["enhancer"] == ("StandInEnhancer" if kind == "teacher" else None)


@pytest.mark.parametrize("kind", ["student", "teacher"])
def test_onnxruntime_outputs_match_torch_within_1e3(kind):
    model, paths, tracking = tiny_export(kind)
    diffs = parity(model, paths, tracking)
    assert diffs["cls"] < 1e-3 and diffs["loc"] < 1e-3, diffs
    assert diffs["kernel_cls"] < 1e-3 and diffs["kernel_loc"] < 1e-3, diffs


def test_teacher_graph_runs_the_enhancer():
    """The teacher's search graph must contain the enhancer's ops (its tanh), the student's must not."""
    ops = {kind: {n.op_type for n in onnx.load(str(tiny_export(kind)[1]["search"])).graph.node}
           for kind in ("student", "teacher")}
    assert "Tanh" in ops["teacher"] and "Tanh" not in ops["student"]


def test_onnxruntime_tracks_the_same_boxes_as_torch():
    model, paths, tracking = tiny_export("student")
    frames, boxes = moving_square_frames(20, size=(240, 320), step=(3.0, 2.0))
    results = {}
    for label, tracker in (("torch", SiameseTracker(TorchBackend(model, "cpu", "fp32"), tracking)),
                           ("onnxruntime", create_tracker(paths["search"], "cpu")[0])):
        tracker.init(frames[0], boxes[0])
        results[label] = np.array([(*r.box_xywh, r.score) for r in map(tracker.update, frames[1:])])
    torch_boxes, ort_boxes = results["torch"], results["onnxruntime"]
    assert np.ptp(torch_boxes[:, 0]) > 5  # the boxes do move: the comparison means something
    np.testing.assert_allclose(ort_boxes[:, :4], torch_boxes[:, :4], atol=1e-2, rtol=0)  # pixels
    np.testing.assert_allclose(ort_boxes[:, 4], torch_boxes[:, 4], atol=1e-4, rtol=0)     # scores


def test_the_onnx_file_alone_configures_the_tracker():
    _, paths, _ = tiny_export("student")
    for path in (paths["search"], paths["template"], paths["search"].with_name("tiny-student.onnx")):
        loaded = load_model(path)  # backend chosen by the suffix
        assert loaded.info["backend"] == "onnxruntime" and loaded.info["device"] == "cpu"
        assert loaded.name == "tiny student"
        assert loaded.config == TrackerConfig(penalty_k=0.2, lost_frames=7)
    tracker, _ = create_tracker(paths["search"], overrides={"window_influence": 0.3})
    assert tracker.config.window_influence == 0.3 and tracker.config.penalty_k == 0.2


def test_missing_or_mismatched_graph_pairs_are_clear_errors(tmp_path):
    _, paths, tracking = tiny_export("student")
    shutil.copy(paths["search"], tmp_path / "lone.search.onnx")
    with pytest.raises(ModelFileError, match=r"missing .*lone.template.onnx .*keep both together"):
        load_model(tmp_path / "lone.search.onnx")
    # a template graph from another export beside this search graph
    other = onnx.load(str(paths["template"]))
    next(p for p in other.metadata_props if p.key == "mlkd.export_id").value = "0123456789abcdef"
    onnx.save(other, str(tmp_path / "lone.template.onnx"))
    with pytest.raises(ModelFileError, match="come from different exports"):
        load_model(tmp_path / "lone.onnx")


def test_graphs_without_our_metadata_or_corrupt_files_are_rejected(tmp_path):
    _, paths, _ = tiny_export("student")
    for role, path in find_graph_pair(paths["search"]).items():
        model = onnx.load(str(path))
        del model.metadata_props[:]
        onnx.save(model, str(tmp_path / f"bare.{role}.onnx"))
    with pytest.raises(ModelFileError, match="carries no mlkd metadata: export it with 'mlkd export'"):
        load_model(tmp_path / "bare.onnx")
    (tmp_path / "junk.template.onnx").write_bytes(b"not a protobuf at all")
    (tmp_path / "junk.search.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFileError, match="onnxruntime cannot load .*junk"):
        load_model(tmp_path / "junk.onnx")


def test_metadata_errors_name_the_file():
    meta, _ = ExportMeta.from_props(
        {p.key: p.value for p in onnx.load(str(tiny_export("student")[1]["search"])).metadata_props}, "x.onnx")
    props = meta.to_props("search")
    with pytest.raises(ModelFileError, match="newer mlkd-tracker"):
        ExportMeta.from_props({**props, "mlkd.format": "99"}, "m.onnx")
    with pytest.raises(ModelFileError, match="m.onnx has malformed mlkd metadata"):
        ExportMeta.from_props({**props, "mlkd.tracking": "{not json"}, "m.onnx")
    with pytest.raises(ModelFileError, match="unknown tracking parameter"):
        ExportMeta.from_props({**props, "mlkd.tracking": json.dumps({"penalty": 1})}, "m.onnx")
    with pytest.raises(ModelFileError, match=r"do not fit its tracking values: search: graph \(1, 3, 287, 287\) "
                                             r"vs tracking config \(1, 3, 255, 255\)"):
        ExportMeta.from_props({**props, "mlkd.tracking": json.dumps({"instance_size": 255})}, "m.onnx")[0] \
            .validate("m.onnx")


def test_backend_and_device_requests_are_checked():
    _, paths, _ = tiny_export("student")
    with pytest.raises(InputError, match=r"device 'cuda' needs onnxruntime's CUDAExecutionProvider.*available: cpu"):
        load_model(paths["search"], device="cuda")
    with pytest.raises(InputError, match="fp16 with onnxruntime needs device tensorrt"):
        load_model(paths["search"], precision="fp16")
    with pytest.raises(ModelFileError, match=r"no int8 export beside .*mlkd export MODEL --int8"):
        load_model(paths["search"], precision="int8")
    with pytest.raises(ModelFileError, match="torch backend cannot open tiny-student.search.onnx"):
        load_model(paths["search"], backend="torch")
    with pytest.raises(InputError, match="unknown backend 'tflite'"):
        load_model(paths["search"], backend="tflite")
    backend = load_model(paths["search"]).backend
    with pytest.raises(InputError, match=r"search crop must be \(287, 287, 3\) uint8, got \(255, 255, 3\)"):
        backend.search(np.zeros((255, 255, 3), np.uint8), backend.template(np.zeros((127, 127, 3), np.uint8)))


def test_checkpoints_need_an_export_for_onnxruntime(tmp_path):
    from export_helpers import tiny_model
    ckpt = save_checkpoint(tiny_model(), tmp_path / "student.pth")
    with pytest.raises(ModelFileError, match=r"onnxruntime backend cannot open student.pth.*mlkd export"):
        load_model(ckpt, backend="onnxruntime")


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(InputError, match="opset must be >= 17"):
        export_onnx(tiny_export("student")[0], tmp_path / "m", TrackerConfig(), "m", opset=13)


def test_onnx_and_tensorrt_backends_run_without_torch():
    """A drone image may carry onnxruntime but no PyTorch: tracking an .onnx must not import torch."""
    _, paths, _ = tiny_export("student")
    code = ("import sys\n"
            "import numpy as np\n"
            "import mlkd_tracker.backends.tensorrt_backend\n"
            "from mlkd_tracker.backends import create_tracker\n"
            f"tracker, _ = create_tracker({str(paths['search'])!r})\n"
            "frame = np.zeros((240, 320, 3), np.uint8)\n"
            "tracker.init(frame, (100, 100, 30, 30))\n"
            "tracker.update(frame)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_teacher_export_with_the_real_darklighter(shared_data, tmp_path):
    """The teacher as trained: the official DarkLighter weights inside the exported graphs."""
    darklighter = pytest.importorskip("mlkd_tracker.nets.darklighter", reason="DarkLighter is not in this checkout")
    from export_helpers import tiny_model
    from mlkd_tracker.nets.checkpoint import load_state_strict, read_checkpoint
    weights = shared_data / "darklighter" / "darklighter_epoch193.pth"
    if not weights.is_file():
        pytest.skip(f"official DarkLighter weights not found at {weights}")
    enhancer = darklighter.DarkLighter()
    load_state_strict(enhancer, read_checkpoint(weights)[0], str(weights))
    model = tiny_model(enhancer=enhancer)
    paths = export_onnx(model, tmp_path / "teacher", TrackerConfig(), "teacher")
    diffs = parity(model, paths, TrackerConfig())
    assert diffs["cls"] < 1e-3 and diffs["loc"] < 1e-3, diffs
