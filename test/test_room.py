"""The mutual-learning room: peak-ratio election, what one step changes, and what it leaves alone."""
import copy

import pytest
import torch

from mlkd_tracker.nets import SiamRPN
from mlkd_training.losses import feature_l2, feature_spatial, feature_threshold, gated_distillation, mutual_mse, \
    response_kl, tracking_losses
from mlkd_training.room import Learner, LossConfig, Room, elect, peak_ratio
from training_data import TinyEnhancer, tiny_batch, single_thread  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

FEATURES = ("l2", "spatial", "threshold")


def logits_for(fg: torch.Tensor) -> torch.Tensor:
    """(B, 2A, S, S) logits whose foreground softmax is ``fg`` (B, A, S, S)."""
    return torch.cat([torch.zeros_like(fg), torch.log(fg / (1 - fg))], dim=1)


def test_peak_ratio_uses_2d_local_maxima_per_sample():
    one = torch.full((5, 5), 0.1)
    one[1, 1], one[3, 3] = 0.9, 0.45    # two local maxima: 0.9 / 0.45
    one[1, 2] = 0.5                     # beside the main peak: not a local maximum
    yy, xx = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    two = 0.8 - 0.1 * torch.maximum((yy - 2).abs(), (xx - 2).abs())  # a cone: one peak, 0.8 / min 0.6
    ratios = peak_ratio(logits_for(torch.stack([one, two])[:, None]))
    assert ratios.tolist() == pytest.approx([2.0, 0.8 / 0.6], rel=1e-4)
    # with several anchor shapes the map is their per-position maximum
    other = torch.full((5, 5), 0.1)
    other[3, 3] = 0.6
    both = torch.stack([one, other])[None]
    assert peak_ratio(logits_for(both)).item() == pytest.approx(0.9 / 0.6, rel=1e-4)


def test_a_saturated_flat_topped_peak_counts_once():
    confident = torch.full((7, 7), float(torch.logit(torch.tensor(0.1))))
    confident[3, 3], confident[3, 4] = 20.0, 18.0  # both 1.0 in float32 after the softmax: one peak, not a tie
    confident[0, 0] = 0.0                           # a second peak at 0.5
    hesitant = torch.logit(torch.full((7, 7), 0.1))
    hesitant[2, 2], hesitant[5, 5] = float(torch.logit(torch.tensor(0.8))), float(torch.logit(torch.tensor(0.5)))
    ratios = peak_ratio(torch.cat([torch.zeros(2, 1, 7, 7), torch.stack([confident, hesitant])[:, None]], dim=1))
    assert ratios.tolist() == pytest.approx([2.0, 1.6], rel=1e-4)
    assert elect(ratios.tolist()) == 0


def test_election_picks_the_highest_ratio_and_breaks_ties_to_the_first():
    assert elect([1.0, 3.0, 2.0]) == 1
    assert elect([2.0, 2.0, 1.0]) == 0
    assert elect([1.0, 2.0, 2.0]) == 1


def make_student(seed: int) -> SiamRPN:
    torch.manual_seed(seed)
    model = SiamRPN(0.25).train()
    for head in (model.rpn_head.cls.head[3], model.rpn_head.loc.head[3]):
        head.requires_grad_(False)
    return model


def make_learner(name: str, model: SiamRPN, feature: str | None) -> Learner:
    params = [p for p in model.parameters() if p.requires_grad]
    return Learner(name, model, torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4), feature)


@pytest.fixture
def room_parts():
    torch.manual_seed(42)
    teacher = SiamRPN(0.25, enhancer=TinyEnhancer()).eval().requires_grad_(False)
    students = [make_student(i) for i in range(3)]
    return teacher, students


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_one_ml_step_changes_students_but_not_teacher_or_frozen_heads(room_parts):
    teacher, students = room_parts
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    before_t, before_s = snapshot(teacher), [snapshot(s) for s in students]
    room = Room([make_learner(f, s, f) for f, s in zip(FEATURES, students)], teacher)
    logs = room.step(tiny_batch(2))
    assert len(calls) == 1  # the teacher runs once per batch for all three students
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before_t.items())
    for student, before in zip(students, before_s):
        after = student.state_dict()
        for key in ("rpn_head.cls.head.3.weight", "rpn_head.cls.head.3.bias", "rpn_head.loc.head.3.weight",
                    "rpn_head.loc.head.3.bias"):
            assert torch.equal(before[key], after[key]), key
        for key in ("backbone.layer1.0.weight", "rpn_head.cls.conv_search.0.weight", "rpn_head.loc.head.0.weight"):
            assert not torch.equal(before[key], after[key]), key
    elected = int(logs["elected"])
    assert sum(room.elections) == 1 and room.elections[elected] == 1
    assert [f"{f}/mutual" in logs for f in FEATURES] == [i != elected for i in range(3)]
    assert {"teacher/cls", "l2/kd", "spatial/feature_spatial", "threshold/feature_threshold"} <= set(logs)


def test_elected_learns_from_its_own_loss_and_others_from_a_fixed_target(room_parts):
    teacher, students = room_parts
    copies = [copy.deepcopy(s) for s in students]
    batch = tiny_batch(2, seed=3)
    room = Room([make_learner(f, s, f) for f, s in zip(FEATURES, students)], teacher)
    elected = int(room.step(batch)["elected"])

    # redo the step by hand, one student at a time, from the copies
    c = LossConfig()
    with torch.no_grad():
        t_out = teacher(batch["template"], batch["search"])
    t_losses = tracking_losses(t_out, batch)
    fns = {"l2": feature_l2, "spatial": feature_spatial, "threshold": feature_threshold}
    outs = [m(batch["template"], batch["search"]) for m in copies]
    target = outs[elected]["cls_feature"].detach()
    for i, (model, out, feature) in enumerate(zip(copies, outs, FEATURES)):
        base = tracking_losses(out, batch)
        kd, _ = gated_distillation({k: base[k].detach() for k in ("cls", "loc")}, t_losses,
                                   *response_kl(out, t_out, c.temperature), c.kd_weight)
        loss = base["total"] + kd + fns[feature](out["cls_feature"], t_out["cls_feature"])
        if i != elected:
            loss = loss + mutual_mse(out["cls_feature"], target)
        learner = make_learner(feature, model, None)
        learner.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learner.params, 10.0)
        learner.optimizer.step()
    for manual, trained in zip(copies, students):
        for (k, a), b in zip(manual.state_dict().items(), trained.state_dict().values()):
            assert torch.allclose(a, b, atol=1e-6), k


def test_kd_room_has_no_election_and_base_room_no_teacher(room_parts):
    teacher, students = room_parts
    kd = Room([make_learner("student", students[0], "spatial")], teacher)
    logs = kd.step(tiny_batch(2))
    assert "elected" not in logs and "student/kd" in logs and "student/feature_spatial" in logs
    base = Room([make_learner("model", students[1], None)])
    logs = base.step(tiny_batch(2))
    assert set(logs) == {"model/cls", "model/loc", "model/total", "model/grad_norm"}
    with pytest.raises(ValueError, match="needs a teacher"):
        Room([make_learner("student", students[2], "l2")])


def test_unusable_losses_skip_the_update(room_parts):
    teacher, students = room_parts
    before = [snapshot(s) for s in students[:2]]
    room = Room([make_learner(f, s, f) for f, s in zip(FEATURES[:2], students[:2])], teacher,
                LossConfig(max_loss=-1.0))  # every loss counts as too large, as pysot's > 1e4 rule
    room.step(tiny_batch(2))
    assert room.skipped == [1, 1]
    for student, snap in zip(students[:2], before):
        params = dict(student.named_parameters())
        assert all(torch.equal(snap[k], p) for k, p in params.items())


def test_grad_scaler_survives_a_step_where_every_loss_is_rejected(room_parts):
    teacher, students = room_parts
    before = snapshot(students[0])
    room = Room([make_learner(f, s, f) for f, s in zip(FEATURES, students)], teacher, LossConfig(max_loss=-1.0))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    room.step(tiny_batch(2), scaler=scaler)  # GradScaler.update() with no step recorded would raise
    assert room.skipped == [1, 1, 1] and scaler.get_scale() == 1024.0
    assert all(torch.equal(before[k], p) for k, p in students[0].named_parameters())


def test_grad_scaler_path_steps_every_learner(room_parts):
    teacher, students = room_parts
    before = snapshot(students[0])
    room = Room([make_learner(f, s, f) for f, s in zip(FEATURES, students)], teacher)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    logs = room.step(tiny_batch(2), scaler=scaler)
    assert all(torch.isfinite(torch.tensor(logs[f"{f}/grad_norm"])) for f in FEATURES)
    assert not torch.equal(before["backbone.layer5.0.weight"], students[0].state_dict()["backbone.layer5.0.weight"])
