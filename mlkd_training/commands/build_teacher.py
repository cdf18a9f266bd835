"""``mlkd build-teacher``: DarkLighter weights + a SiamRPN checkpoint -> one teacher model file."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--enhancer", required=True,
                   help="DarkLighter weights (official .pth, a train-enhancer output, or another teacher)")
    p.add_argument("--tracker", required=True,
                   help="SiamRPN checkpoint (pysot siamrpn_alex_dwxcorr / MLKD format, or ours)")
    p.add_argument("--output", required=True, help="teacher file to write (.pth or .safetensors)")
    p.add_argument("--name", default=None, help="model name stored in the file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="tracking value stored with the teacher, e.g. --set penalty_k=0.16 (repeatable)")
    p.add_argument("--half", action="store_true", help="store the weights as fp16 (half the size)")


def run(args: argparse.Namespace) -> int:
    from mlkd_tracker.cli.track import parse_overrides
    from mlkd_tracker.config import TrackerConfig
    from mlkd_tracker.report import format_table
    from mlkd_training.teacher import build_teacher, save_teacher

    teacher, meta = build_teacher(args.enhancer, args.tracker)
    overrides = parse_overrides(args.overrides)
    if overrides:
        meta["tracking"] = TrackerConfig.from_dict(meta["tracking"], "teacher").replace(**overrides).to_dict()
    if args.name:
        meta["name"] = args.name
    path = save_teacher(teacher, args.output, meta, half=args.half)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    print(format_table(["part", "parameters", "from"],
                       [["DarkLighter", count(teacher.enhancer), args.enhancer],
                        [f"SiamRPN (width {teacher.width:g})", count(teacher) - count(teacher.enhancer), args.tracker]]))
    print(f"teacher: {path}  (run it with: mlkd track SOURCE --model {path} --init x,y,w,h)")
    return 0
