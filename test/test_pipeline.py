"""The default-model pipeline end to end at a tiny setting, ``mlkd train select`` and ``mlkd demo``."""
import json
import shutil

import pytest
import torch
import yaml

from conftest import REPO, shared_dir
from mlkd_tracker.backends import load_model
from mlkd_tracker.cli import main
from mlkd_tracker.nets.checkpoint import read_checkpoint
from training_data import single_thread  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

# every stage: one epoch of two steps on small crops (103 / 151)
TINY_PIPELINE = {
    "width": 0.25, "val_fraction": 0.2, "test_fraction": 0.2, "peers": ["csrt", "kcf"], "eval_workers": 1,
    "common": {"optim.epochs": 1, "optim.warmup.epochs": 0, "optim.batch_size": 2, "pairs.pairs_per_epoch": 4,
               "pairs.exemplar_size": 103, "pairs.search_size": 151, "pairs.canvas_size": 303,
               "targets.search_size": 151, "targets.output_size": 7, "workers": 0, "log_every": 1},
    "base": {"config": "train_base.yaml"}, "teacher": {"config": "train_teacher.yaml"},
    "ml": {"config": "train_ml.yaml"},
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mlkd_training.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(sequences=5, frames=(6, 7), width=128, height=96, name="Tiny"), seed=0,
                     progress=False)
    return out


@pytest.fixture(scope="module")
def enhancer(tmp_path_factory):
    official = shared_dir() / "data" / "darklighter" / "darklighter_epoch193.pth"
    if official.is_file():
        return official
    from mlkd_tracker.nets.darklighter import DarkLighter

    path = tmp_path_factory.mktemp("dl") / "darklighter.pth"
    torch.manual_seed(0)
    torch.save(DarkLighter().state_dict(), path)
    return path


def test_pipeline_end_to_end_then_rerun_and_publish(synth, enhancer, tmp_path, capsys):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(TINY_PIPELINE))
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(REPO / "models" / "mlkd_track.yaml", models / "mlkd_track.yaml")
    out = tmp_path / "run"
    args = ["train", "pipeline", "--data", str(synth), "--enhancer", str(enhancer), "--out", str(out),
            "--config", str(config), "--device", "cpu", "--quiet"]
    assert main(args + ["--publish", str(models)]) == 0
    printed = capsys.readouterr().out
    assert "[pipeline] selected student_" in printed

    split = json.loads((out / "split.json").read_text())
    assert [len(split[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    for stage in ("base", "teacher", "ml"):
        assert (out / stage / "history.json").is_file() and (out / stage / "config.json").is_file()
    teacher_config = json.loads((out / "teacher" / "config.json").read_text())
    assert teacher_config["init"].endswith("base/base.pth") and teacher_config["mode"] == "teacher"
    ml_config = json.loads((out / "ml" / "config.json").read_text())
    assert ml_config["baselines"] == ["kd", "nokd"] and ml_config["optim"]["freeze_head_output"] is True
    for name in ("kd_l2", "kd_spatial", "kd_threshold", "nokd"):  # baselines trained in the ML room
        assert (out / "ml" / f"{name}.pth").is_file()
    assert (out / "teacher0.pth").is_file()  # the teacher as built, before fine-tuning

    state, meta = read_checkpoint(out / "mlkd_track.pth")
    assert meta["name"] == "MLKD-Track" and meta["selection"]["from"].startswith("student_")
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    summary = json.loads((out / "pipeline.json").read_text())
    assert set(summary["test"]) == {"MLKD-Track", "no-KD", "KD-l2", "KD-spatial", "KD-threshold", "teacher",
                                    "teacher (no fine-tuning)", "start", "CSRT", "KCF"}
    assert all(0.0 <= s["success_auc"] <= 1.0 for s in summary["test"].values())
    assert summary["test_day"] == {}  # synthetic data: the night twins are the test set, no day run
    assert [row[0] for row in summary["targets"]][:2] == ["MLKD-Track >= start + 0.05 (night)",
                                                          "MLKD-Track >= no-KD student (night)"]
    card = (out / "MODEL_CARD.md").read_text()
    for text in ("MLKD-Track", "no-KD", "KD-spatial", "teacher (no fine-tuning)", "CSRT", "KCF", "## Targets",
                 "pairs/s", "the night twins written by `mlkd synth`", "Trained from scratch by this pipeline"):
        assert text in card
    assert "by `mlkd synth` (version 1): seed 0, 5 sequences of 6-7 frames at 128x96, from scikit-image's" in card
    assert (out / "plots" / "success.png").stat().st_size > 1000

    # published: models/mlkd_track.yaml now names the fp16 weights, and the default model loads from it
    spec = yaml.safe_load((models / "mlkd_track.yaml").read_text())
    assert spec["weights"] == "mlkd_track.pth" and spec["arch"]["width"] == 0.25
    loaded = load_model(models / "mlkd_track.yaml", "cpu")
    assert loaded.info["width"] == 0.25 and loaded.name == "MLKD-Track"
    assert (models / "mlkd_track_plots" / "success.png").is_file()
    published = (models / "MLKD_TRACK_CARD.md").read_text()
    assert str(synth) in card and str(synth) not in published  # no folder of this machine in the repo
    assert f"(`{synth.name}`)" in published and "`mlkd_track_plots/success.png`" in published

    # a second run keeps every finished stage; one with other settings for a finished stage is refused
    assert main(args) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 3
    assert main(args + ["--set", "ml.losses.kd_weight=5"]) == 2
    assert "was trained with other settings (losses.kd_weight)" in capsys.readouterr().err


def test_select_command_writes_the_best_student(synth, tmp_path, capsys):
    from mlkd_tracker.nets import SiamRPN
    from mlkd_tracker.nets.checkpoint import save_checkpoint

    for i, name in enumerate(("student_l2", "student_spatial")):
        torch.manual_seed(i)
        save_checkpoint(SiamRPN(0.25), tmp_path / "ml" / f"{name}.pth", {"name": name})
    out = tmp_path / "best.pth"
    assert main(["train", "select", str(tmp_path / "ml"), "--data", str(synth / "night"), "--out", str(out),
                 "--results", str(tmp_path / "results"), "--device", "cpu", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "selected student_" in printed and "success AUC" in printed
    meta = read_checkpoint(out)[1]
    assert set(meta["selection"]["val_success_auc"]) == {"student_l2", "student_spatial"}
    best = max(meta["selection"]["val_success_auc"], key=meta["selection"]["val_success_auc"].get)
    assert meta["selection"]["from"] == best


def test_demo_tracks_a_generated_night_clip(tmp_path, capsys):
    from mlkd_tracker.nets import SiamRPN
    from mlkd_tracker.nets.checkpoint import save_checkpoint

    model = save_checkpoint(SiamRPN(0.25), tmp_path / "m.pth", {"name": "tiny"})
    video = tmp_path / "demo.mp4"
    assert main(["demo", "--model", str(model), "--out", str(video), "--frames", "12", "--size", "160x120",
                 "--keep", str(tmp_path / "clip"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "mean FPS" in printed and "success AUC" in printed and str(video) in printed
    import cv2

    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert len(list((tmp_path / "clip" / "night" / "data_seq").iterdir())) == 1


def test_bundled_models_the_nanotrack_default_and_the_siamrpn_reference():
    from mlkd_tracker.config import SIAMRPN_MODEL_CONFIG, default_model_path

    default = load_model(None, "cpu")
    assert default.name == "MLKD-Track" and (default.info["type"], default.info["version"]) == ("nanotrack", 2)
    assert read_checkpoint(REPO / "models" / "mlkd_track.pth")[1]["selection"]["from"].startswith("student_")
    reference = load_model(default_model_path().with_name(SIAMRPN_MODEL_CONFIG), "cpu")
    assert reference.name == "MLKD-Track SiamRPN" and (reference.info["type"], reference.info["width"]) == ("siamrpn", 0.5)


def test_demo_runs_the_bundled_model_with_no_arguments_but_the_output(tmp_path, capsys):
    video = tmp_path / "demo.mp4"
    assert main(["demo", "--out", str(video), "--frames", "20", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "model: MLKD-Track [torch, " in printed and video.stat().st_size > 0
