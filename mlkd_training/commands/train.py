"""``mlkd train MODE``: train SiamRPN / the teacher / distilled students, select MLKD-Track, or
run the whole pipeline. Run any training mode under ``torchrun --nproc_per_node N`` for DDP.
"""
from __future__ import annotations

import argparse

MODES = {
    "base": "plain SiamRPN (the daytime tracker), from scratch or from a pysot checkpoint",
    "teacher": "fine-tune SiamRPN behind the frozen DarkLighter enhancer (the MLKD teacher)",
    "kd": "distil one student from the teacher (gated KL + one feature loss)",
    "ml": "three students in the mutual-learning room (the MLKD method)",
    "select": "pick the student with the best success AUC on held-out sequences as MLKD-Track",
    "pipeline": "base -> teacher -> ml -> selection, with baselines and a model card",
}
EXAMPLES = {
    "base": "mlkd train base --data day_cache --out runs/base",
    "teacher": "mlkd train teacher --data night_cache --init runs/base/base.pth "
               "--enhancer darklighter_epoch193.pth --out runs/teacher",
    "kd": "mlkd train kd --feature spatial --data night_cache --init runs/base/base.pth "
          "--teacher runs/teacher/teacher.pth --out runs/kd",
    "ml": "torchrun --nproc_per_node 4 -m mlkd_tracker train ml --data night_cache --init runs/base/base.pth "
          "--teacher runs/teacher/teacher.pth --out runs/ml",
}


def _training_arguments(p: argparse.ArgumentParser, mode: str) -> None:
    p.add_argument("--config", help=f"training config YAML (default: the bundled models/train_{mode}.yaml)")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="training data: a dataset folder or a crop cache from mlkd prepare (repeatable)")
    p.add_argument("--out", default=f"runs/{mode}", help="run folder: states, exported models, TensorBoard, curves")
    p.add_argument("--init", help="checkpoint to start from (pysot / MLKD / ours)"
                                  + (" [required]" if mode in ("kd", "ml") else ""))
    if mode in ("kd", "ml"):
        p.add_argument("--teacher", help="teacher checkpoint (DarkLighter + SiamRPN) [required]")
    if mode == "teacher":
        p.add_argument("--enhancer", help="DarkLighter weights (when --init is a plain SiamRPN)")
    if mode == "kd":
        p.add_argument("--feature", choices=["l2", "spatial", "threshold"], help="feature distillation loss")
    p.add_argument("--epochs", type=int, help="override optim.epochs")
    p.add_argument("--batch-size", type=int, help="override optim.batch_size (per process)")
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set pairs.pairs_per_epoch=20000 (repeatable)")
    p.add_argument("--resume", nargs="?", const="latest", metavar="STATE",
                   help="continue an interrupted run: from its newest state in --out, or from STATE")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode, text in MODES.items():
        example = EXAMPLES.get(mode)
        sp = sub.add_parser(mode, help=text, description=text[:1].upper() + text[1:] + ".",
                            epilog=f"example: {example}" if example else None,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if mode in ("base", "teacher", "kd", "ml"):
            _training_arguments(sp, mode)
        else:
            getattr(_pipeline_commands(), f"add_{mode}_arguments")(sp)


def _pipeline_commands():
    from mlkd_training import pipeline

    return pipeline


def training_config(args: argparse.Namespace):
    """The run's :class:`TrainConfig`: the YAML, then ``--set``, then the explicit flags."""
    from mlkd_tracker.cli.track import parse_overrides
    from mlkd_tracker.config import models_dir
    from mlkd_training.train_config import load_train_config

    overrides = parse_overrides(args.overrides)
    for flag, key in (("epochs", "optim.epochs"), ("batch_size", "optim.batch_size"), ("workers", "workers")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    if args.data:
        overrides["data"] = [{"path": d} for d in args.data]
    values = {k: getattr(args, k, None) for k in ("init", "teacher", "enhancer", "feature")}
    return load_train_config(args.config or models_dir() / f"train_{args.mode}.yaml", overrides, mode=args.mode,
                             **values)


def run_training(config, out: str, device: str = "auto", resume: str | None = None, progress: bool = True):
    """Train one mode to the end (resuming if asked); returns the finished :class:`Trainer`."""
    from mlkd_tracker.errors import InputError
    from mlkd_training.pairs import open_pair_source
    from mlkd_training.trainer import Trainer

    if not config.data:
        raise InputError("no training data: give --data (a dataset folder or a crop cache)")
    sources = [open_pair_source(d.path, config.pairs, d.num_use, d.frame_range) for d in config.data]
    trainer = Trainer(config, out, sources, device=device, progress=progress)
    if resume:
        path = trainer.resume(None if resume == "latest" else resume)
        if trainer.dist.main:
            print(f"resumed from {path} (epoch {trainer.epoch}, step {trainer.step})")
    trainer.fit()
    return trainer


def print_summary(trainer) -> None:
    """Per-epoch table, elections and the files a run wrote."""
    from mlkd_tracker.report import format_table

    names = list(trainer.models)
    rows = [[h["epoch"], h["lr"], h["pairs_per_s"], *(h["losses"].get(f"{n}/total", float("nan")) for n in names)]
            for h in trainer.history]
    print(format_table(["epoch", "lr", "pairs/s", *(f"{n} loss" for n in names)], rows, floatfmt=".4g"))
    if trainer.config.mode == "ml":
        print("elections: " + ", ".join(f"{n} {c}" for n, c in zip(names, trainer.room.elections)))
    for n in names:
        print(f"model: {trainer.out / (n + '.pth')}")
    print(f"run folder: {trainer.out} (tensorboard --logdir {trainer.out / 'tensorboard'})")


def run(args: argparse.Namespace) -> int:
    if args.mode in ("select", "pipeline"):
        return getattr(_pipeline_commands(), f"run_{args.mode}_command")(args)
    import torch

    trainer = run_training(training_config(args), args.out, args.device, args.resume, not args.quiet)
    if trainer.dist.main:
        print_summary(trainer)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0
