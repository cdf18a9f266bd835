"""``mlkd synth``: semi-synthetic night UAV tracking sequences with exact boxes and daylight twins."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Generate night UAV tracking sequences from real photos (scikit-image's sample photos and "
                     "any --images folders): aerial camera motion, moving target with occlusion, out-of-view and "
                     "look-alikes, and a low-light camera (exposure, gamma, photon and read noise, street-light "
                     "colour casts, lamps with bloom, JPEG). Writes <out>/night and <out>/day (same geometry) in "
                     "the UAVDark135 layout plus a pysot JSON: every night frame has a daylight twin. Parameter "
                     "ranges: docs/synthetic_data.md.")
    p.add_argument("out", help="output folder")
    p.add_argument("--sequences", type=int, default=20, help="number of sequences")
    p.add_argument("--frames", default="150,300", metavar="MIN,MAX", help="frames per sequence (drawn uniformly)")
    p.add_argument("--size", default="640x360", help="frame size WxH")
    p.add_argument("--images", action="append", default=[], metavar="DIR",
                   help="extra folder of photos or videos to cut backgrounds and targets from (repeatable)")
    p.add_argument("--no-builtin-images", action="store_true", help="use only the --images folders")
    p.add_argument("--name", default="MLKDSynth", help="dataset name (JSON file name, sequence prefix)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same set")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=LOW,HIGH",
                   help="change a randomisation range, e.g. --set mean_level=0.03,0.08 --set target_speed=1,3 "
                        "(names in docs/synthetic_data.md; repeatable)")
    p.add_argument("--force", action="store_true", help="regenerate everything instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_range_overrides(items: list[str]) -> dict[str, object]:
    """``["mean_level=0.03,0.08", "head_visible=0.5"]`` -> {name: (low, high) or number}."""
    from mlkd_tracker.errors import InputError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            numbers = tuple(float(v) for v in value.replace(" ", "").split(",") if v)
        except ValueError:
            numbers = ()
        if not sep or not key or not numbers:
            raise InputError(f"--set expects NAME=LOW,HIGH or NAME=VALUE with numbers, got {item!r}")
        out[key.strip()] = numbers if len(numbers) > 1 else numbers[0]
    return out


def parse_size(text: str) -> tuple[int, int]:
    """``"640x360"`` -> (640, 360)."""
    from mlkd_tracker.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"expected a size WxH such as 640x360, got {text!r}") from None
    return w, h


def run(args: argparse.Namespace) -> int:
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.report import format_table
    from mlkd_training.data.synth import SynthConfig, config_with, generate_dataset

    try:
        lo, hi = (int(v) for v in args.frames.split(","))
    except ValueError:
        raise InputError(f"--frames expects MIN,MAX, got {args.frames!r}") from None
    width, height = parse_size(args.size)
    config = SynthConfig(sequences=args.sequences, frames=(lo, hi), width=width, height=height,
                         image_dirs=tuple(args.images), builtin_images=not args.no_builtin_images, name=args.name)
    config = config_with(config, **parse_range_overrides(args.overrides))
    summary = generate_dataset(args.out, config, args.seed, args.workers, not args.quiet, not args.force)
    fps = summary.frames / summary.seconds if summary.seconds > 0 and summary.frames else float("nan")
    print(format_table(["sequences", "generated now", "frames generated", "seconds", "frames/s", "workers"],
                       [[len(summary.sequences), len(summary.generated), summary.frames, summary.seconds, fps,
                         args.workers]], ".1f"))
    print(f"night: {summary.out_dir / 'night'}  day: {summary.out_dir / 'day'}  "
          f"(read with mlkd test {summary.out_dir / 'night'} ...)")
    return 0
