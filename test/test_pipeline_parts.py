"""Pieces of the default-model pipeline that need no trained model: split, verdict, result reuse."""
from mlkd_training.pipeline import _forget_stale_results, distillation_check, split_names


def test_split_is_deterministic_disjoint_and_complete():
    names = [f"s{i}" for i in range(20)]
    train, val, test = split_names(names, 0.15, 0.25, seed=3)
    assert (len(train), len(val), len(test)) == (12, 3, 5)
    assert sorted(train + val + test) == sorted(names)
    assert split_names(names, 0.15, 0.25, seed=3) == (train, val, test)


def test_distillation_verdict_names_the_likely_reason():
    assert distillation_check({"MLKD-Track": 0.42, "no-KD-student": 0.40, "teacher": 0.5}).startswith("**holds**")
    no_margin = distillation_check({"MLKD-Track": 0.40, "no-KD-student": 0.41, "teacher": 0.39})
    assert no_margin.startswith("**does not hold**") and "nothing to distil" in no_margin
    short = distillation_check({"MLKD-Track": 0.40, "no-KD-student": 0.41, "teacher": 0.55})
    assert "too short" in short and "0.400 vs 0.410" in short
    assert distillation_check({"teacher": 0.5}) == "not measured"


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
