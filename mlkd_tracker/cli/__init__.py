"""``mlkd``: one console command, one subcommand per job.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so ``mlkd --help`` stays fast and the
runtime commands work on a drone image without the training dependencies.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mlkd_tracker import __version__
from mlkd_tracker.errors import MLKDError

# name -> (module, one-line help). Modules must not import heavy packages at import time.
COMMANDS: dict[str, tuple[str, str]] = {
    "track": ("mlkd_tracker.cli.track", "track a target in a video, a frame folder or a camera"),
    "bench": ("mlkd_tracker.cli.bench", "time every available backend per stage (crop, template, search, post)"),
    "export": ("mlkd_training.commands.export", "export a checkpoint to ONNX, int8 ONNX and TensorRT engines"),
    "enhance": ("mlkd_tracker.cli.enhance", "brighten an image, folder, video or camera with DarkLighter"),
    "train-enhancer": ("mlkd_training.commands.train_enhancer",
                       "train or fine-tune DarkLighter on low-light images (non-reference losses)"),
    "build-teacher": ("mlkd_training.commands.build_teacher",
                      "assemble the MLKD teacher (DarkLighter + SiamRPN) into one model file"),
    "synth": ("mlkd_training.commands.synth", "generate synthetic night UAV tracking sequences with daylight twins"),
    "darken": ("mlkd_training.commands.darken", "turn daytime video or frames into low-light night footage"),
    "test": ("mlkd_training.commands.test", "run trackers (model files or OpenCV peers) over a dataset"),
    "eval": ("mlkd_training.commands.eval", "one-pass evaluation: success, precision, plots, per attribute"),
    "train": ("mlkd_training.commands.train", "train SiamRPN, the teacher and MLKD students; select MLKD-Track"),
    "prepare": ("mlkd_training.commands.prepare", "cache 511 crops of a dataset so training skips full frames"),
    "demo": ("mlkd_training.commands.demo", "generate a night clip, track it with MLKD-Track, save an annotated video"),
}


def _build_parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlkd", description="MLKD-Track: nighttime UAV tracking, from training to the drone.",
        epilog="Run 'mlkd COMMAND --help' for the options of one command.")
    parser.add_argument("--version", action="version", version=f"mlkd-tracker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlkd`` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = _build_parser(chosen if chosen in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except MLKDError as exc:
        print(f"mlkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mlkd {args.command}: interrupted", file=sys.stderr)
        return 130
