"""The training loop of every ``mlkd train`` mode, for SiamRPN or NanoTrack networks: data loading,
DDP, AMP, LR schedule, atomic per-epoch checkpoints, exact resume, TensorBoard and a progress bar.

Modes (see :mod:`mlkd_training.room` for the per-batch step):

- ``base``: the plain tracker (SiamRPN from scratch or a checkpoint; NanoTrack from a checkpoint);
- ``teacher``: the tracker behind the frozen DarkLighter enhancer, fine-tuned (normally on night data);
- ``kd``: one student distilled from the frozen teacher with one feature loss;
- ``ml``: three students in the mutual-learning room.

Run under ``torchrun --nproc_per_node N`` for DDP (NCCL on GPUs, gloo on the CPU); each process
trains on its share of every global batch. Only rank 0 writes files.
"""
from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlkd_tracker.errors import InputError, ModelFileError
from mlkd_tracker.nets.checkpoint import infer_width, load_network, read_checkpoint, save_checkpoint
from mlkd_tracker.nets.nanotrack import NanoTrack, nanotrack_version
from mlkd_tracker.nets.siamrpn import SiamRPN, fold_batchnorm
from mlkd_tracker.report import atomic_output, write_json_atomic
from mlkd_training.pairs import PairDataset, PairSource
from mlkd_training.room import Learner, Room
from mlkd_training.train_config import RESUMABLE_CHANGES, TrainConfig, config_differences

STATE_FORMAT = "mlkd-train-state/1"
Network = SiamRPN | NanoTrack


# ----------------------------------------------------------------------------- processes and devices

@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[Dist, torch.device]:
    """Join the process group ``torchrun`` describes in the environment (if any) and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return Dist(rank, world, local), dev


# ----------------------------------------------------------------------------- networks

def build_models(config: TrainConfig) -> tuple[dict[str, Network], Network | None]:
    """The trained networks of a mode (by learner name) and the frozen teacher (kd / ml)."""
    width = config.width
    if config.init is not None and nanotrack_version(read_checkpoint(config.init)[0]) is None:
        init_width = infer_width(read_checkpoint(config.init)[0])
        if width is not None and abs(width - init_width) > 1e-6:
            raise InputError(f"config width {width} but {config.init} has width {init_width:g}")
        width = init_width
    width = width or 1.0
    if config.mode in ("teacher", "kd", "ml") and config.init is None:
        what = "the tracker the teacher starts from" if config.mode == "teacher" else "the students' starting weights"
        raise InputError(f"{config.mode} mode needs {what} (--init, the daytime tracker)")
    if config.mode == "teacher":
        from mlkd_training.teacher import build_teacher, load_teacher

        if config.enhancer is not None:  # DarkLighter in front of the tracker (replacing any enhancer in it)
            return {"teacher": build_teacher(config.enhancer, config.init)[0]}, None
        if not any(k.startswith("enhancer.") for k in read_checkpoint(config.init)[0]):
            raise InputError(f"{config.init} has no enhancer; give the DarkLighter weights with --enhancer")
        return {"teacher": load_teacher(config.init)[0]}, None
    names = {"base": ["base"], "kd": [f"student_{config.feature}"],
             "ml": [f"student_{f}" for f in config.students]}[config.mode]
    if "kd" in config.baselines:
        names += [f"kd_{f}" for f in config.students]
    if "nokd" in config.baselines:
        names.append("nokd")
    models = {}
    for name in names:
        if config.init is None:
            model = SiamRPN(width=width)
        else:
            model, _ = load_network(config.init)
            if getattr(model, "enhancer", None) is not None:
                raise ModelFileError(f"{config.init} is a teacher (it has an enhancer); students start from a "
                                     f"plain tracker such as the daytime one")
        models[name] = model
    teacher = None
    if config.mode in ("kd", "ml"):
        from mlkd_training.teacher import load_teacher

        if config.teacher is None:
            raise InputError(f"{config.mode} mode needs a teacher checkpoint (--teacher)")
        teacher, _ = load_teacher(config.teacher)
    kinds = {type(m).__name__ for m in [*models.values(), *([teacher] if teacher is not None else [])]}
    if len(kinds) > 1:
        raise InputError(f"the students and the teacher must share an architecture, got {sorted(kinds)}")
    return models, teacher


def check_architecture(model: Network, config: TrainConfig) -> None:
    """The config's targets and backbone stages must be the network's (a NanoTrack learns point targets)."""
    decoder = "points" if isinstance(model, NanoTrack) else "anchors"
    if config.targets.decoder != decoder:
        raise InputError(f"{type(model).__name__} predicts {decoder}, but the training config's targets are "
                         f"{config.targets.decoder}; use the {type(model).__name__} training values "
                         f"(models/train_nanotrack.yaml is applied automatically for a NanoTrack --init)")
    unknown = sorted(set(config.optim.backbone.layers) - set(model.backbone_stages()))
    if unknown:
        raise InputError(f"optim.backbone.layers {unknown} are not stages of {type(model).__name__} "
                         f"({sorted(model.backbone_stages())})")


def set_trainable(model: Network, config: TrainConfig, epoch: int) -> None:
    """Freeze what the mode keeps fixed this epoch and put frozen BatchNorms in eval mode."""
    o = config.optim
    model.train()
    model.requires_grad_(True)
    if getattr(model, "enhancer", None) is not None:  # DarkLighter is never trained here
        from mlkd_training.teacher import freeze_enhancer

        freeze_enhancer(model)
    for name, stage in model.backbone_stages().items():
        if name not in o.backbone.layers or epoch < o.backbone.train_epoch:
            stage.requires_grad_(False)
            for m in stage.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
    if o.freeze_head_output:
        for name in model.head_output_names():
            model.get_submodule(name).requires_grad_(False)


def make_optimizer(model: Network, config: TrainConfig) -> torch.optim.SGD:
    """SGD with a backbone group (LR x ``lr_mult``) and a head group; frozen-forever parameters left out."""
    o = config.optim
    backbone = [p for name, stage in model.backbone_stages().items() if name in o.backbone.layers
                for p in stage.parameters()]
    head_fixed = {id(p) for name in model.head_output_names() for p in model.get_submodule(name).parameters()} \
        if o.freeze_head_output else set()
    head = [p for p in model.prediction_head().parameters() if id(p) not in head_fixed]
    groups = [{"params": backbone, "lr": o.base_lr * o.backbone.lr_mult, "base_lr": o.base_lr * o.backbone.lr_mult},
              {"params": head, "lr": o.base_lr, "base_lr": o.base_lr}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=o.base_lr, momentum=o.momentum,
                           weight_decay=o.weight_decay)


def model_meta(name: str, model: Network, config: TrainConfig, epoch: int, **extra: Any) -> dict[str, Any]:
    """The meta block of an exported model file: architecture, tracking values, provenance."""
    from mlkd_tracker.config import architecture_tracker_config

    arch = {**model.arch(), "enhancer": "darklighter" if getattr(model, "enhancer", None) is not None else False}
    return {"name": name, "arch": arch,
            "tracking": config.tracking or architecture_tracker_config(arch).to_dict(),
            "training": {"mode": config.mode, "epoch": epoch, **extra}}


# ----------------------------------------------------------------------------- data

class EpochSampler(torch.utils.data.Sampler):
    """Global pair indices of one epoch for one process: ``rank, rank + world, ...`` in whole batches."""

    def __init__(self, pairs_per_epoch: int, batch_size: int, dist: Dist):
        self.pairs_per_epoch, self.batch_size, self.dist = pairs_per_epoch, batch_size, dist
        self.steps = pairs_per_epoch // (batch_size * dist.world)
        if self.steps < 1:
            raise InputError(f"pairs_per_epoch {pairs_per_epoch} is less than one global batch "
                             f"({batch_size} x {dist.world} processes)")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self):
        start = self.epoch * self.pairs_per_epoch + self.dist.rank
        return iter(range(start, start + len(self) * self.dist.world, self.dist.world))


def _worker_init(_: int) -> None:
    import cv2

    cv2.setNumThreads(1)


# ----------------------------------------------------------------------------- the trainer

def fingerprint(model: nn.Module | None) -> str:
    """A short hash of a network's weights and buffers (the teacher a run was started with)."""
    if model is None:
        return ""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def latest_state(out_dir: str | os.PathLike) -> Path | None:
    """The newest ``checkpoints/epoch_NNN.pt`` of a run folder (None if there is none)."""
    found = sorted((Path(out_dir) / "checkpoints").glob("epoch_*.pt"),
                   key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    return found[-1] if found else None


class Trainer:
    """One training run. ``fit()`` trains from the current epoch to ``optim.epochs``."""

    def __init__(self, config: TrainConfig, out_dir: str | os.PathLike, sources: list[PairSource], *,
                 models: dict[str, Network] | None = None, teacher: nn.Module | None = None,
                 device: str = "auto", progress: bool = True, label: str | None = None):
        self.config = config
        self.label = label or config.mode  # what the progress bar calls this run
        self.out = Path(out_dir)
        self.progress = progress
        self.dist, self.device = init_distributed(device)
        torch.manual_seed(config.seed)
        if models is None:
            models, built_teacher = build_models(config)
            teacher = teacher if teacher is not None else built_teacher
        # on the CPU, channels-last convolutions train these small networks 2-3x faster (NanoTrack's depthwise
        # convolutions most of all); inputs follow in the loop
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
        self.models = {name: m.to(self.device, memory_format=self.memory_format) for name, m in models.items()}
        for model in self.models.values():
            check_architecture(model, config)
        self.teacher = None
        if teacher is not None:
            self.teacher = teacher.to(self.device, memory_format=self.memory_format).eval().requires_grad_(False)
        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []
        for model in self.models.values():
            set_trainable(model, config, 0)
        self.optimizers = {name: make_optimizer(m, config) for name, m in self.models.items()}
        self._trainable = self._trainable_signature()
        # the frozen teacher runs with its BatchNorms folded into the convolutions (one pass less per layer)
        frozen = fold_batchnorm(self.teacher) if self.teacher is not None else None
        self.room = Room(self._learners(), frozen, config.losses, mutual=config.mode == "ml",
                         grad_clip=config.optim.grad_clip, decoder=config.targets.decoder)
        self.dataset = PairDataset(sources, config.pairs, config.targets, seed=config.seed)
        self.sampler = EpochSampler(config.pairs.pairs_per_epoch, config.optim.batch_size, self.dist)
        cuda = self.device.type == "cuda"
        self.amp = bool(config.amp and cuda)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.lr_spaces = config.lr_spaces()
        self._writer = None

    # -- wiring ---------------------------------------------------------------------------

    def _trainable_signature(self) -> tuple:
        return tuple(p.requires_grad for m in self.models.values() for p in m.parameters())

    def _learners(self) -> list[Learner]:
        learners = []
        for name, model in self.models.items():
            forward = model
            if self.dist.world > 1:
                ids = [self.device.index] if self.device.type == "cuda" else None
                forward = nn.parallel.DistributedDataParallel(model, device_ids=ids)
            distilled = self.config.mode in ("kd", "ml") and name != "nokd"
            feature = name.split("_", 1)[1] if distilled else None
            learners.append(Learner(name, forward, self.optimizers[name], feature,
                                    mutual=self.config.mode == "ml" and name.startswith("student_"),
                                    distill=distilled))
        return learners

    def _loader(self) -> torch.utils.data.DataLoader:
        workers = self.config.workers
        # workers start from a fresh interpreter: a fork of a process whose OpenCV / OpenMP thread
        # pools are running can deadlock
        context = None
        if workers:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["torch", "cv2", "mlkd_training.pairs"])  # imported once
            else:
                context = multiprocessing.get_context("spawn")
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=self.config.optim.batch_size, sampler=self.sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", drop_last=True, worker_init_fn=_worker_init if workers else None,
            persistent_workers=workers > 0, multiprocessing_context=context)

    def _begin_epoch(self, epoch: int) -> float:
        for model in self.models.values():
            set_trainable(model, self.config, epoch)
        signature = self._trainable_signature()
        if signature != self._trainable:  # the backbone starts training: DDP must know the new parameter set
            self._trainable = signature
            elections, skipped = self.room.elections, self.room.skipped
            self.room.learners = self._learners()
            self.room.elections, self.room.skipped = elections, skipped
        reference = float(self.lr_spaces[epoch])
        start = self.config.optim.lr.start  # pysot scales each group by its initial LR / the decay's start
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = reference * group["base_lr"] / start
        self.sampler.set_epoch(epoch)
        return reference * self.config.optim.base_lr / start

    @property
    def writer(self):
        if self._writer is None and self.dist.main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=self.step or None)
        return self._writer

    # -- state ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this run stands (tensors and plain values only)."""
        return {
            "format": STATE_FORMAT, "config": self.config.to_dict(), "epoch": self.epoch, "step": self.step,
            "world_size": self.dist.world, "teacher": fingerprint(self.teacher),
            "models": {n: m.state_dict() for n, m in self.models.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "elections": list(self.room.elections), "skipped": list(self.room.skipped),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "history": self.history,
        }

    def resume(self, path: str | os.PathLike | None = None) -> Path:
        """Continue from a training state (default: the newest one in the run folder)."""
        path = Path(path) if path is not None else latest_state(self.out)
        if path is None or not path.is_file():
            raise InputError(f"nothing to resume: no training state in {self.out / 'checkpoints'}")
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated / foreign files
            raise ModelFileError(f"{path} is not a readable training state: {str(exc).splitlines()[0][:200]}") from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ModelFileError(f"{path} is not an mlkd training state ({STATE_FORMAT})")
        changed = [k for k in config_differences(state["config"], self.config.to_dict())
                   if k not in RESUMABLE_CHANGES]
        if changed:
            raise InputError(f"cannot resume {path}: the config differs from the interrupted run's in {changed}")
        if state["teacher"] != fingerprint(self.teacher):
            raise InputError(f"cannot resume {path}: the teacher's weights differ from the interrupted run's")
        if sorted(state["models"]) != sorted(self.models):
            raise ModelFileError(f"{path} holds networks {sorted(state['models'])}, this run trains {sorted(self.models)}")
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name])
            self.optimizers[name].load_state_dict(state["optimizers"][name])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.room.elections, self.room.skipped = list(state["elections"]), list(state["skipped"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        if state["world_size"] != self.dist.world and self.dist.main:
            print(f"note: {path} was written by {state['world_size']} process(es), this run has {self.dist.world}; "
                  f"the pair order per process differs from an uninterrupted run")
        return path

    def save(self) -> Path | None:
        """Write the training state of the finished epoch and the exported model files (rank 0)."""
        if not self.dist.main:
            return None
        path = self.out / "checkpoints" / f"epoch_{self.epoch:03d}.pt"
        with atomic_output(path) as tmp:
            torch.save(self.state(), tmp)
        for old in sorted(path.parent.glob("epoch_*.pt"))[:-self.config.keep_checkpoints]:
            old.unlink()
        for name, model in self.models.items():
            save_checkpoint(model, self.out / f"{name}.pth",
                            model_meta(name, model, self.config, self.epoch, elections=self._elections()))
        write_json_atomic(self.out / "history.json", self.history)
        return path

    def _elections(self) -> dict[str, int]:
        return dict(zip(self.models, self.room.elections))

    # -- the loop -------------------------------------------------------------------------

    def fit(self, until_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train the remaining epochs (or stop after ``until_epoch``); returns the per-epoch history."""
        from tqdm import tqdm

        c = self.config
        if self.dist.main:
            write_json_atomic(self.out / "config.json", c.to_dict())
        loader = self._loader()
        steps = self.sampler.steps
        pairs_per_step = c.optim.batch_size * self.dist.world
        last = c.optim.epochs if until_epoch is None else min(until_epoch, c.optim.epochs)
        bar = tqdm(total=steps * max(last - self.epoch, 0), unit="step", dynamic_ncols=True,
                   disable=not (self.progress and self.dist.main), desc=self.label)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        try:
            while self.epoch < last:
                lr = self._begin_epoch(self.epoch)
                bar.set_description(f"{self.label} epoch {self.epoch + 1}/{c.optim.epochs}")
                sums: dict[str, float] = {}
                counts: dict[str, int] = {}
                elections_before = list(self.room.elections)
                t_epoch = t_last = time.perf_counter()
                for i, batch in enumerate(loader):
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()
                             if k in ("template", "search", "label_cls", "label_loc", "label_loc_weight")}
                    for k in ("template", "search"):
                        batch[k] = batch[k].contiguous(memory_format=self.memory_format)
                    logs = self.room.step(batch, autocast, self.scaler)
                    self.step += 1
                    for k, v in logs.items():
                        if np.isfinite(v):
                            sums[k] = sums.get(k, 0.0) + v
                            counts[k] = counts.get(k, 0) + 1
                    bar.update(1)
                    if self.step % c.log_every == 0 or i == steps - 1:
                        now = time.perf_counter()
                        speed = pairs_per_step * ((i % c.log_every) + 1) / max(now - t_last, 1e-9)
                        t_last = now
                        self._log(logs, lr, speed)
                        bar.set_postfix_str(self._postfix(logs, speed))
                self.epoch += 1
                seconds = time.perf_counter() - t_epoch
                self.history.append({
                    "epoch": self.epoch, "lr": lr, "steps": steps, "seconds": round(seconds, 3),
                    "pairs_per_s": round(steps * pairs_per_step / max(seconds, 1e-9), 3),
                    "losses": {k: sums[k] / counts[k] for k in sorted(sums) if k != "elected"},
                    "elections": {n: b - a for n, a, b in zip(self.models, elections_before, self.room.elections)},
                    "skipped": dict(zip(self.models, self.room.skipped)), "compute": self.compute_label()})
                self.save()
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.flush()
        if self.dist.main:
            self._plot_curves()
        return self.history

    def compute_label(self) -> str:
        """What this run trains on, e.g. ``cpu (2 threads)`` or ``4 x NVIDIA H100 (cuda, amp)``."""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
            return f"{self.dist.world} x {name} (cuda{', amp' if self.amp else ''})"
        procs = f"{self.dist.world} processes x " if self.dist.world > 1 else ""
        return f"cpu ({procs}{torch.get_num_threads()} threads)"

    def _log(self, logs: dict[str, float], lr: float, speed: float) -> None:
        if self.writer is None:
            return
        for key, value in logs.items():
            if key == "elected":
                continue
            group = "kd_case" if key.endswith("/kd_case") else "loss"
            self.writer.add_scalar(f"{group}/{key}", value, self.step)
        for name, count in self._elections().items():
            self.writer.add_scalar(f"elections/{name}", count, self.step)
        self.writer.add_scalar("lr", lr, self.step)
        self.writer.add_scalar("speed/pairs_per_s", speed, self.step)

    def _postfix(self, logs: dict[str, float], speed: float) -> str:
        totals = " ".join(f"{n}={logs[f'{n}/total']:.3f}" for n in self.models if f"{n}/total" in logs)
        won = " won " + "/".join(str(v) for v in self.room.elections) if self.config.mode == "ml" else ""
        return f"{totals}{won} {speed:.1f} pairs/s"

    def _plot_curves(self) -> None:
        """``training_curves.png``: each network's total loss per epoch (and elections for ml)."""
        if not self.history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [h["epoch"] for h in self.history]
        panels = 2 if self.config.mode == "ml" else 1
        fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
        for name in self.models:
            axes[0][0].plot(epochs, [h["losses"].get(f"{name}/total", np.nan) for h in self.history], "o-", label=name)
        if self.teacher is not None:
            axes[0][0].plot(epochs, [h["losses"].get("teacher/cls", np.nan) + self.config.losses.loc_weight *
                                     h["losses"].get("teacher/loc", np.nan) for h in self.history], "k--",
                            label="teacher (base loss)")
        axes[0][0].set(xlabel="epoch", ylabel="loss (epoch mean)", title=f"mlkd train {self.config.mode}")
        axes[0][0].legend()
        if panels == 2:
            for name in self.models:
                axes[0][1].plot(epochs, [h["elections"][name] / h["steps"] for h in self.history], "o-", label=name)
            axes[0][1].set(xlabel="epoch", ylabel="share of batches elected", ylim=(0, 1), title="elections")
            axes[0][1].legend()
        fig.tight_layout()
        with atomic_output(self.out / "training_curves.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)

