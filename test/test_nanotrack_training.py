"""Training NanoTrack: point targets, the IoU loss, the architecture's training values, a KD run from the releases."""
import numpy as np
import pytest
import torch

from mlkd_tracker.backends import load_model
from mlkd_tracker.config import models_dir
from mlkd_tracker.errors import InputError
from mlkd_tracker.nets.checkpoint import load_network
from mlkd_training.losses import linear_iou, tracking_losses
from mlkd_training.pairs import FrameCanvases, PairDataset, PairSource
from mlkd_training.targets import PointTargets, TargetConfig
from mlkd_training.teacher import build_teacher
from mlkd_training.train_config import load_train_config
from mlkd_training.trainer import Trainer
from nanotrack_reference import NANOTRACK, official
from training_data import write_dataset, single_thread  # noqa: F401 (fixture)

POINTS = TargetConfig(decoder="points", search_size=255, output_size=16, stride=16)


def test_point_targets_label_the_inner_ellipse_and_measure_the_sides():
    box = (97.0, 107.0, 161.0, 147.0)  # 64 x 40 around (129, 127)
    labels = PointTargets(POINTS)(box, negative=False, rng=np.random.default_rng(0))
    assert labels.cls.shape == (1, 16, 16) and labels.delta.shape == (4, 1, 16, 16)
    positive = np.argwhere(labels.cls[0] == 1)
    points = (np.arange(16) - 8) * 16 + 127
    for row, col in positive:  # inside the w/4 x h/4 ellipse
        assert ((points[col] - 129) / 16) ** 2 + ((points[row] - 127) / 10) ** 2 < 1
    assert 0 < len(positive) <= 16 and (labels.weight[labels.cls == 1] == 1).all()
    row, col = 8, 8  # the point at (127, 127): its distances to the four sides
    assert labels.delta[:, 0, row, col].tolist() == [127 - 97, 127 - 107, 161 - 127, 147 - 127]
    negative = np.argwhere(labels.cls[0] == 0)
    assert len(negative) == 48
    for row, col in negative:  # outside the w/2 x h/2 ellipse
        assert ((points[col] - 129) / 32) ** 2 + ((points[row] - 127) / 20) ** 2 > 1
    neg_pair = PointTargets(POINTS)(box, negative=True, rng=np.random.default_rng(0))
    assert (neg_pair.cls == 1).sum() == 0 and 0 < (neg_pair.cls == 0).sum() <= 16


def test_linear_iou_loss():
    target = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, 4, 1, 1)
    positive = torch.ones(1, 1, 1, dtype=torch.int64)
    assert float(linear_iou(target.clone(), target, positive)) == pytest.approx(0.0, abs=1e-7)
    half = target.clone()
    half[0, 2:] = 0.0  # right and bottom at the point: a (10 x 20) box inside the (40 x 60) target
    assert float(linear_iou(half, target, positive)) == pytest.approx(1 - 201 / 2401, rel=1e-6)
    pred = torch.rand(2, 4, 3, 3, requires_grad=True) * 20
    loss = linear_iou(pred, pred.detach() + 1, torch.zeros(2, 1, 3, 3, dtype=torch.int64))
    assert loss.detach().item() == 0.0 and loss.requires_grad  # no positives: zero, still part of the graph


def test_a_nanotrack_init_brings_its_training_values():
    config = load_train_config(models_dir() / "train_ml.yaml", mode="ml", init=str(official(3)),
                               teacher=str(official(3)))
    assert config.targets.decoder == "points" and config.targets.output_size == 15 and config.targets.stride == 16
    assert (config.losses.cls_weight, config.losses.loc_weight) == (1.0, 1.0)
    assert config.optim.backbone.layers == ("features",) and config.pairs.neg == 0.2
    assert config.losses.kd_weight == 1e4  # the mode's own values stay
    siamrpn = load_train_config(models_dir() / "train_ml.yaml", mode="ml")
    assert siamrpn.targets.decoder == "anchors" and siamrpn.losses.loc_weight == 1.2


@pytest.mark.usefixtures("single_thread")
def test_kd_run_from_the_released_weights(tmp_path):
    """A NanoTrack student distilled from a DarkLighter + NanoTrack teacher, both from the releases."""
    darklighter = NANOTRACK.parent / "darklighter" / "darklighter_epoch193.pth"
    teacher, meta = build_teacher(darklighter, official(1))
    assert meta["arch"]["type"] == "nanotrack" and meta["tracking"]["decoder"] == "points"
    student, _ = load_network(official(1))
    dataset = write_dataset(tmp_path / "data", sequences=2, frames=5, size=(200, 240), brightness=120)
    config = load_train_config(models_dir() / "train_kd.yaml", mode="kd", feature="spatial", init=str(official(1)),
                               overrides={"optim.epochs": 1, "optim.batch_size": 2, "optim.warmup.epochs": 0,
                                          "pairs.pairs_per_epoch": 4, "workers": 0})
    trainer = Trainer(config, tmp_path / "run", [PairSource(FrameCanvases(dataset, config.pairs))],
                      models={"student_spatial": student}, teacher=teacher, device="cpu", progress=False)
    frozen_before = trainer.models["student_spatial"].ban_head.cls_logits[0].weight.clone()
    history = trainer.fit()
    losses = history[0]["losses"]
    for key in ("student_spatial/cls", "student_spatial/loc", "student_spatial/feature_spatial", "teacher/loc"):
        assert np.isfinite(losses[key]), key
    assert 0 < losses["student_spatial/loc"] < 1  # 1 - IoU
    assert torch.equal(trainer.models["student_spatial"].ban_head.cls_logits[0].weight, frozen_before)
    loaded = load_model(tmp_path / "run" / "student_spatial.pth")
    assert loaded.info["type"] == "nanotrack" and loaded.config.decoder == "points"
    assert loaded.config.output_size == 16 and loaded.config.penalty_k == 0.148  # the v1 authors' values


def test_point_pairs_and_anchor_configs_do_not_mix(tmp_path):
    dataset = write_dataset(tmp_path / "data", sequences=1, frames=4)
    config = load_train_config(models_dir() / "train_base.yaml", mode="base", init=str(official(2)),
                               overrides={"pairs.pairs_per_epoch": 2, "workers": 0})
    sample = PairDataset([PairSource(FrameCanvases(dataset, config.pairs))], config.pairs, config.targets)[0]
    assert sample["label_cls"].shape == (1, 16, 16) and sample["label_loc"].shape == (4, 1, 16, 16)
    model, _ = load_network(official(2))
    out = model(torch.from_numpy(sample["template"])[None], torch.from_numpy(sample["search"])[None])
    batch = {k: torch.as_tensor(np.asarray(v))[None] for k, v in sample.items() if k.startswith("label")}
    assert torch.isfinite(tracking_losses(out, batch, decoder="points")["total"])
    anchors = load_train_config(models_dir() / "train_base.yaml", mode="base",
                                overrides={"pairs.pairs_per_epoch": 2, "workers": 0})
    with pytest.raises(InputError, match="NanoTrack predicts points, but the training config's targets are anchors"):
        Trainer(anchors, tmp_path / "run", [PairSource(FrameCanvases(dataset, anchors.pairs))],
                models={"base": model}, device="cpu", progress=False)
