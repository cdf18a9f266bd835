"""The training loop: resume equals an uninterrupted run, exports, checkpoints, schedule, errors."""
import copy
import json

import numpy as np
import pytest
import torch

from mlkd_tracker.backends import load_model
from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.nets import SiamRPN
from mlkd_training.pairs import FrameCanvases, PairSource
from mlkd_training.train_config import load_train_config
from mlkd_training.trainer import Trainer, latest_state
from training_data import TinyEnhancer, write_dataset, single_thread  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

# small crops (103 / 151 -> a 7x7 score map) keep these runs to seconds
SMALL = {"optim.epochs": 2, "optim.batch_size": 2, "optim.warmup.epochs": 1, "pairs.pairs_per_epoch": 4,
         "pairs.exemplar_size": 103, "pairs.search_size": 151, "pairs.canvas_size": 303,
         "targets.search_size": 151, "targets.output_size": 7, "workers": 0, "log_every": 1}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), sequences=2, frames=6)


def ml_parts(seed=0):
    torch.manual_seed(seed)
    teacher = SiamRPN(0.25, enhancer=TinyEnhancer())
    students = {f"student_{f}": SiamRPN(0.25) for f in ("l2", "spatial", "threshold")}
    return students, teacher


def ml_trainer(tiny, out, parts, **overrides):
    config = load_train_config(overrides={**SMALL, **overrides}, mode="ml")
    students, teacher = parts
    sources = [PairSource(FrameCanvases(tiny, config.pairs))]
    return Trainer(config, out, sources, models=copy.deepcopy(students), teacher=copy.deepcopy(teacher),
                   device="cpu", progress=False)


def test_resumed_run_equals_the_uninterrupted_one(tiny, tmp_path):
    parts = ml_parts()
    whole = ml_trainer(tiny, tmp_path / "whole", parts)
    whole.fit()
    first = ml_trainer(tiny, tmp_path / "split", parts)
    first.fit(until_epoch=1)
    assert latest_state(tmp_path / "split").name == "epoch_001.pt"
    students, teacher = ml_parts(seed=99)  # other starting weights: they all come from the state
    second = ml_trainer(tiny, tmp_path / "split", (students, parts[1]))
    second.resume()
    assert second.epoch == 1 and second.step == 2
    second.fit()
    for name, model in whole.models.items():
        for (key, a), b in zip(model.state_dict().items(), second.models[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{key}"
        sa, sb = whole.optimizers[name].state_dict(), second.optimizers[name].state_dict()
        assert all(torch.equal(sa["state"][i]["momentum_buffer"], sb["state"][i]["momentum_buffer"]) for i in sa["state"])
    assert whole.room.elections == second.room.elections and sum(whole.room.elections) == 4
    assert [h["losses"] for h in whole.history] == [h["losses"] for h in second.history]


def test_run_folder_holds_states_exports_history_and_curves(tiny, tmp_path):
    trainer = ml_trainer(tiny, tmp_path, ml_parts(), keep_checkpoints=1)
    history = trainer.fit()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch_002.pt"]  # older states pruned
    assert len(history) == 2 and history[1]["lr"] > history[0]["lr"]  # warm-up epoch, then the decay's start
    assert sum(history[1]["elections"].values()) == 2
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved[0]["losses"]["student_l2/total"] > 0
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"lr", "speed/pairs_per_s", "elections/student_threshold", "loss/student_spatial/kd",
            "loss/student_l2/feature_l2", "loss/student_threshold/total", "loss/teacher/cls"} <= tags
    assert len(events.Scalars("loss/student_l2/total")) == 4  # every step (log_every 1)
    loaded = load_model(tmp_path / "student_spatial.pth", "cpu")  # an exported student tracks as it is
    assert loaded.info["width"] == 0.25 and loaded.name == "student_spatial"
    assert not list(tmp_path.rglob("*.partial*"))


def test_lr_schedule_mirrors_pysot():
    config = load_train_config(overrides={"optim.epochs": 50})
    spaces = config.lr_spaces()
    assert len(spaces) == 50
    assert spaces[0] == pytest.approx(0.005) and spaces[4] == pytest.approx(0.005 * 2 ** 0.8)
    assert spaces[5] == pytest.approx(0.01) and spaces[-1] == pytest.approx(0.0005)
    assert np.allclose(np.diff(np.log(spaces[5:])), np.log(0.05) / 44)


def test_base_lr_scales_the_schedule_which_only_shapes_it(tiny, tmp_path):
    """pysot semantics: a group's LR is schedule * base_lr * lr_mult / lr.start."""
    def group_lrs(**overrides):
        trainer = ml_trainer(tiny, tmp_path / str(len(overrides)), ml_parts(), **overrides)
        trainer._begin_epoch(0)
        return sorted({g["lr"] for o in trainer.optimizers.values() for g in o.param_groups})

    reference = group_lrs()
    assert reference[-1] == pytest.approx(load_train_config(overrides=SMALL).lr_spaces()[0] * 0.005 / 0.01)
    schedule_lowered = {"optim.lr.start": 0.0025, "optim.lr.end": 0.000125, "optim.warmup.start": 0.00125,
                        "optim.warmup.end": 0.0025}
    assert group_lrs(**schedule_lowered) == pytest.approx(reference)  # the same shape: the same LRs
    assert group_lrs(**schedule_lowered, **{"optim.base_lr": 0.00125}) == pytest.approx([lr / 4 for lr in reference])


def test_resume_refuses_a_changed_config_and_foreign_files(tiny, tmp_path):
    trainer = ml_trainer(tiny, tmp_path, ml_parts())
    trainer.fit(until_epoch=1)
    changed = ml_trainer(tiny, tmp_path, ml_parts(), **{"losses.kd_weight": 5.0})
    with pytest.raises(InputError, match=r"config differs .*losses.kd_weight"):
        changed.resume()
    longer = ml_trainer(tiny, tmp_path, ml_parts(), **{"optim.epochs": 3})  # more epochs may be asked for
    longer.resume()
    other_teacher = ml_trainer(tiny, tmp_path, (ml_parts()[0], ml_parts(seed=5)[1]))
    with pytest.raises(InputError, match="teacher's weights differ"):
        other_teacher.resume()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="junk.pt is not a readable training state"):
        longer.resume(junk)
    with pytest.raises(InputError, match="nothing to resume"):
        ml_trainer(tiny, tmp_path / "empty", ml_parts()).resume()


def test_config_errors_are_named():
    with pytest.raises(InputError, match=r"unknown key\(s\) \['epoch'\]"):
        load_train_config(overrides={"optim.epoch": 3})
    with pytest.raises(InputError, match="mode must be one of"):
        load_train_config(mode="distill")
    with pytest.raises(InputError, match="unknown feature loss 'cosine'"):
        load_train_config(mode="kd", feature="cosine")
    with pytest.raises(InputError, match="pairs .* and targets .* disagree"):
        load_train_config(overrides={"pairs.search_size": 271})


def test_worker_processes_load_the_same_batches(tiny, tmp_path):
    single = ml_trainer(tiny, tmp_path / "a", ml_parts(), workers=0)
    multi = ml_trainer(tiny, tmp_path / "b", ml_parts(), workers=2)
    for trainer in (single, multi):
        trainer.sampler.set_epoch(1)
    for a, b in zip(single._loader(), multi._loader()):
        assert all(torch.equal(a[k], b[k]) for k in ("template", "search", "label_cls", "label_loc"))


def test_baselines_share_the_room_but_not_the_election(tiny, tmp_path):
    config = load_train_config(overrides={**SMALL, "optim.epochs": 1, "optim.warmup.epochs": 0,
                                          "baselines": ["kd", "nokd"]}, mode="ml")
    students, teacher = ml_parts()
    models = {**copy.deepcopy(students), **{n.replace("student_", "kd_"): copy.deepcopy(m) for n, m in students.items()},
              "nokd": SiamRPN(0.25)}
    trainer = Trainer(config, tmp_path / "run", [PairSource(FrameCanvases(tiny, config.pairs))], models=models,
                      teacher=copy.deepcopy(teacher), device="cpu", progress=False)
    losses = trainer.fit()[0]["losses"]
    elected = dict(zip(trainer.models, trainer.room.elections))
    assert sum(elected[n] for n in students) == 2 and all(elected[n] == 0 for n in elected if n not in students)
    assert "kd_spatial/feature_spatial" in losses and "kd_spatial/mutual" not in losses
    assert "kd_spatial/peak_ratio" not in losses and "student_spatial/peak_ratio" in losses
    assert not any(k.startswith("nokd/") and ("kd" in k.split("/")[1] or "feature" in k) for k in losses)
    assert np.isfinite(losses["nokd/total"])
    assert (tmp_path / "run" / "kd_l2.pth").is_file() and (tmp_path / "run" / "nokd.pth").is_file()
    with pytest.raises(InputError, match="baselines"):
        load_train_config(overrides={**SMALL, "baselines": ["kd"]}, mode="kd")
