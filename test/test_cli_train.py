"""``mlkd train`` and ``mlkd prepare`` from the command line: a real run, resume, and clear errors."""
import pytest
import torch

from mlkd_tracker.cli import main
from mlkd_tracker.nets import SiamRPN
from mlkd_tracker.nets.checkpoint import read_checkpoint, save_checkpoint
from mlkd_training.pairs import PairConfig, prepare_cache
from training_data import single_thread, write_dataset  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = ["--batch-size", "2", "--workers", "0", "--quiet",
         "--set", "pairs.pairs_per_epoch=4", "--set", "optim.warmup.epochs=0",
         "--set", "pairs.exemplar_size=103", "--set", "pairs.search_size=151", "--set", "pairs.canvas_size=303",
         "--set", "targets.search_size=151", "--set", "targets.output_size=7"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    dataset = write_dataset(tmp_path_factory.mktemp("data"), sequences=2, frames=6)
    return prepare_cache(dataset, tmp_path_factory.mktemp("cache") / "tiny511",
                         PairConfig(canvas_size=303, exemplar_size=103), progress=False)


def test_train_base_from_a_pysot_style_checkpoint_then_resume(cache, tmp_path, capsys):
    torch.manual_seed(0)
    init = tmp_path / "pysot_model.pth"  # a pysot-style file: {"state_dict": ...} with the module. prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in SiamRPN(0.25).state_dict().items()}}, init)
    out = tmp_path / "run"
    args = ["train", "base", "--data", str(cache), "--init", str(init), "--out", str(out), *SMALL]
    assert main(args + ["--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "base loss" in printed and "pairs/s" in printed and str(out / "base.pth") in printed
    state, meta = read_checkpoint(out / "base.pth")
    assert meta["arch"]["width"] == 0.25 and meta["training"]["epoch"] == 1
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert read_checkpoint(out / "base.pth")[1]["training"]["epoch"] == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]


def test_teacher_then_kd_chain(cache, tmp_path, capsys):
    """base weights -> teacher (DarkLighter frozen, tracker fine-tuned) -> one distilled student."""
    from mlkd_tracker.nets.darklighter import DarkLighter
    from mlkd_training.teacher import load_teacher

    torch.manual_seed(1)
    base = save_checkpoint(SiamRPN(0.25), tmp_path / "base.pth")
    enhancer = tmp_path / "darklighter.pth"
    torch.save(DarkLighter().state_dict(), enhancer)
    assert main(["train", "teacher", "--data", str(cache), "--init", str(base), "--enhancer", str(enhancer),
                 "--out", str(tmp_path / "teacher"), "--epochs", "1", *SMALL]) == 0
    teacher, meta = load_teacher(tmp_path / "teacher" / "teacher.pth")
    start = torch.load(enhancer, weights_only=True)
    assert all(torch.equal(v, teacher.enhancer.state_dict()[k]) for k, v in start.items())  # frozen
    before = read_checkpoint(base)[0]["rpn_head.cls.conv_search.0.weight"]
    assert not torch.equal(before, teacher.state_dict()["rpn_head.cls.conv_search.0.weight"])  # trained
    assert meta["arch"]["enhancer"] == "darklighter" and meta["training"]["mode"] == "teacher"
    assert main(["train", "kd", "--feature", "threshold", "--data", str(cache), "--init", str(base),
                 "--teacher", str(tmp_path / "teacher" / "teacher.pth"), "--out", str(tmp_path / "kd"),
                 "--epochs", "1", *SMALL]) == 0
    assert "student_threshold loss" in capsys.readouterr().out
    student = read_checkpoint(tmp_path / "kd" / "student_threshold.pth")[0]
    assert not any(k.startswith("enhancer.") for k in student)
    assert torch.equal(student["rpn_head.loc.head.3.weight"], read_checkpoint(base)[0]["rpn_head.loc.head.3.weight"])


@pytest.mark.parametrize("extra,message", [
    (["train", "base", "--out", "{tmp}/x"], "no training data: give --data"),
    (["train", "kd", "--data", "{cache}", "--out", "{tmp}/x"], "kd mode needs the students' starting weights"),
    (["train", "ml", "--data", "{cache}", "--init", "{plain}", "--teacher", "{plain}", "--out", "{tmp}/x"],
     "holds no enhancer (enhancer.e_conv* keys): it is a student tracker, not a teacher"),
    (["train", "teacher", "--data", "{cache}", "--init", "{plain}", "--out", "{tmp}/x"],
     "has no enhancer; give the DarkLighter weights with --enhancer"),
    (["train", "base", "--data", "{cache}", "--set", "optim.epoch=3"], r"unknown key(s) ['epoch']"),
    (["train", "base", "--data", "{tmp}/nowhere"], "dataset not found"),
    (["train", "base", "--data", "{cache}", "--out", "{tmp}/fresh", "--resume"], "nothing to resume"),
    (["train", "base", "--data", "{cache}", "--set", "pairs.canvas_size=511", "--out", "{tmp}/y"],
     "prepared with canvas_size=303, the training config wants 511"),
])
def test_train_errors_are_one_line_with_exit_code_2(cache, tmp_path, capsys, extra, message):
    plain = save_checkpoint(SiamRPN(0.25), tmp_path / "plain.pth")
    args = [a.format(tmp=tmp_path, cache=cache, plain=plain) for a in extra]
    small = SMALL if "canvas_size=511" not in " ".join(args) else SMALL[:5]
    assert main(args + small) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
