"""Pieces of the default-model pipeline that need no trained model: split, verdict, result reuse."""
import pytest

from mlkd_tracker.errors import InputError
from mlkd_training.pipeline import (_forget_stale_results, portable_paths, read_split, split_names, target_checks,
                                    training_losses_table)
from mlkd_training.room import LossConfig


def test_split_is_deterministic_disjoint_and_complete():
    names = [f"s{i}" for i in range(20)]
    train, val, test = split_names(names, 0.15, 0.25, seed=3)
    assert (len(train), len(val), len(test)) == (12, 3, 5)
    assert sorted(train + val + test) == sorted(names)
    assert split_names(names, 0.15, 0.25, seed=3) == (train, val, test)


def test_target_checks_say_met_missed_or_not_measured():
    night = {"MLKD-Track": 0.50, "start": 0.44, "no-KD": 0.49, "teacher": 0.53, "KD-l2": 0.48, "KD-spatial": 0.51}
    rows = {r[0]: r for r in target_checks(night, {"MLKD-Track": 0.70, "start": 0.73})}
    assert rows["MLKD-Track >= start + 0.05 (night)"][1:] == ["0.500", "0.440", "met"]
    assert rows["MLKD-Track >= no-KD student (night)"][3] == "met"
    assert rows["MLKD-Track within 0.02 of the teacher (night)"][3] == "missed"  # 0.03 below
    assert rows["ML student >= best single-KD (KD-spatial, night)"][1:] == ["0.500", "0.510", "missed"]
    assert rows["MLKD-Track >= start - 0.02 (day)"][3] == "missed"
    assert target_checks(night, {})[-1][3] == "not measured"


def test_fixed_split_files_are_checked(tmp_path):
    good = tmp_path / "split.yaml"
    good.write_text("train: [a, b]\nval: [c]\ntest: [d]\n")
    assert read_split(good, ["a", "b", "c", "d", "e"]) == (["a", "b"], ["c"], ["d"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [a, b]\nval: [b, x]\ntest: []\n")
    with pytest.raises(InputError, match=r"not in the data: \['x'\]; listed twice: \['b'\]"):
        read_split(bad, ["a", "b", "c"])


def test_results_of_a_changed_model_are_not_reused(tmp_path):
    from mlkd_training.pipeline import _forget_stale_results

    model, folder = tmp_path / "m.pth", tmp_path / "results" / "seq-set" / "MLKD-Track"
    model.write_bytes(b"weights v1")
    _forget_stale_results(folder, str(model))
    (folder / "seq1.txt").write_text("1,2,3,4\n")
    _forget_stale_results(folder, str(model))
    assert (folder / "seq1.txt").is_file()  # same model: tracking resumes from these
    model.write_bytes(b"weights v2")
    _forget_stale_results(folder, str(model))
    assert not (folder / "seq1.txt").exists() and (folder / "model.sha256").is_file()


def test_training_losses_table_compares_teacher_and_students():
    history = [{"losses": {"teacher/cls": 9.0, "teacher/loc": 9.0}},
               {"losses": {"teacher/cls": 0.3, "teacher/loc": 0.5, "student_l2/cls": 0.2, "student_l2/loc": 0.25,
                           "student_l2/total": 7.0, "student_l2/kd": 1.0}}]
    lines = training_losses_table(history, LossConfig()).splitlines()
    assert lines[0].split() == ["network", "cls", "loc", "1", "cls", "+", "1.2", "loc"]
    assert lines[2].split() == ["student_l2", "0.200", "0.250", "0.500"]
    assert lines[3].split() == ["teacher", "0.300", "0.500", "0.900"]
    other = training_losses_table(history, LossConfig(cls_weight=2.0, loc_weight=1.0)).splitlines()
    assert other[0].split()[-4:] == ["cls", "+", "1", "loc"] and other[3].split()[-1] == "1.100"
    assert training_losses_table([], LossConfig()) == ""


def test_portable_paths_keep_only_the_last_component_of_absolute_paths():
    text = "mlkd train pipeline --data /home/ana/data/synth --out /tmp/run (`/srv/x/enh.pth`)"
    assert portable_paths(text) == "mlkd train pipeline --data synth --out run (`enh.pth`)"
    kept = "`plots/success.png`, runs/default, ~/data/x, https://example.org/a/b, 1/2, /"
    assert portable_paths(kept) == kept


@pytest.mark.parametrize("config", ["pipeline_nanotrack_cpu.yaml", "pipeline_nanotrack_gpu.yaml"])
def test_nanotrack_pipelines_fine_tune_at_the_authors_learning_rates(config, tmp_path):
    """Both stages start from the released v2 at its authors' schedule: peak 0.005, down to 0.0005."""
    from mlkd_tracker.config import models_dir
    from mlkd_training.pipeline import load_pipeline_config, stage_configs
    from nanotrack_reference import official

    p = load_pipeline_config(models_dir() / config)
    configs = stage_configs(p, tmp_path, "darklighter.pth", str(official(2)), {"night": "night"})
    assert list(configs) == ["teacher", "ml"]
    for c in configs.values():
        effective = c.lr_spaces() * c.optim.base_lr / c.optim.lr.start
        assert effective.max() == pytest.approx(0.005) and effective[-1] == pytest.approx(0.0005)
        assert c.targets.decoder == "points" and c.optim.backbone.lr_mult == 0.1
