"""``mlkd darken``: daytime footage (a video, a frame folder or a whole dataset) as a low-light camera would record it at night."""
from __future__ import annotations

import argparse

VIDEO_OUTPUTS = (".mp4", ".avi", ".mkv", ".mov")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Apply mlkd synth's low-light camera model to real footage: exposure cut to a dark level, "
                     "street-light colour casts and light pools, lamps with bloom, photon and read noise, camera "
                     "gamma, noise reduction and JPEG. Lighting is fixed in the image (no scene geometry is "
                     "known). Parameters are drawn from --seed within the ranges of docs/synthetic_data.md and "
                     "saved next to the output. A dataset in the anno/ + data_seq/ layout (UAV123-style, videos "
                     "or frame folders) becomes a night dataset in the same layout, each sequence's camera drawn "
                     "from --seed and its name (resumable: finished sequences are kept).")
    p.add_argument("input", help="video file, folder of frames (natural sort), or a dataset root with anno/ and "
                                 "data_seq/")
    p.add_argument("output", help="a clip: output folder (JPEG frames 000001.jpg ...) or video file (.mp4, .avi, "
                                  ".mkv, .mov); a dataset: the night dataset's root folder")
    p.add_argument("--seed", type=int, default=0, help="random seed for the lighting, camera and noise")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=LOW,HIGH",
                   help="change a range, e.g. --set mean_level=0.03,0.06 --set full_well=200,400 (repeatable)")
    p.add_argument("--no-lights", action="store_true", help="ambient light only: no lamps, pools or point lights")
    p.add_argument("--max-frames", type=int, default=None,
                   help="stop after this many frames (a dataset: per sequence, box files cut to match)")
    p.add_argument("--to", choices=["video", "jpeg"],
                   help="a dataset: store night sequences as videos (data_seq/<seq>.mp4) or as the camera's JPEG "
                        "frames (data_seq/<seq>/); default: as each input sequence is stored")
    p.add_argument("--sequences", metavar="A,B,...", help="a dataset: only these sequences")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlkd_tracker.errors import InputError, SourceError
    from mlkd_training.commands.synth import parse_range_overrides
    from mlkd_training.data.degrade import NightRanges
    from mlkd_training.data.readers import detect_kind

    ranges = NightRanges().replace(**parse_range_overrides(args.overrides))
    path = Path(args.input)
    try:
        kind = detect_kind(path) if path.is_dir() else None
    except SourceError:
        kind = None  # a folder of frames
    if kind is not None and kind != "uav":
        raise InputError(f"{path} is a {kind} dataset; mlkd darken writes datasets in the anno/ + data_seq/ layout "
                         f"and reads them in it (UAV123, UAVDark135 style)")
    if kind is None and (args.to or args.sequences):
        raise InputError("--to and --sequences apply to a dataset (a folder with anno/ and data_seq/)")
    return _darken_dataset(args, ranges) if kind else _darken_clip(args, ranges)


def _darken_dataset(args: argparse.Namespace, ranges) -> int:
    from mlkd_training.data.darken import DARKEN_INDEX, darken_dataset
    from mlkd_training.data.readers import open_dataset

    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    dataset = open_dataset(args.input, "uav", sequences)
    summary = darken_dataset(dataset, args.output, args.seed, ranges, args.no_lights, args.to, args.max_frames,
                             progress=not args.quiet)
    print(f"night dataset {summary.out_dir}: {len(summary.darkened)} sequences darkened ({summary.frames} frames), "
          f"{len(summary.skipped)} finished earlier kept; cameras: {summary.out_dir / DARKEN_INDEX}")
    return 0


def _darken_clip(args: argparse.Namespace, ranges) -> int:
    import itertools
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from mlkd_tracker.errors import InputError
    from mlkd_tracker.report import write_json_atomic
    from mlkd_tracker.sources import open_source
    from mlkd_training.data.darken import DEFAULT_FPS, NightWriter, night_clip

    out = Path(args.output)
    to_video = out.suffix.lower() in VIDEO_OUTPUTS
    if not to_video and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} exists and is not an empty folder; name a new folder or a video file "
                         f"({', '.join(VIDEO_OUTPUTS)})")
    source = open_source(args.input)
    rng = np.random.default_rng(args.seed)
    try:
        frames = itertools.islice(source, args.max_frames)
        camera, night = night_clip(frames, rng, ranges, args.no_lights, source.name)
        writer = NightWriter(out, "video" if to_video else "jpeg", source.fps or DEFAULT_FPS,
                             (camera.width, camera.height))
        total = source.length if args.max_frames is None else min(source.length or args.max_frames, args.max_frames)
        grey = []
        with tqdm(total=total, unit="frame", desc="darken", disable=args.quiet) as bar:
            for jpeg, mean in night:
                writer.write(jpeg)
                grey.append(mean)
                bar.update(1)
    finally:
        source.close()
    writer.commit()
    params = camera.params
    meta_path = out.with_suffix(".json") if to_video else out / "darken.json"
    write_json_atomic(meta_path, {"input": str(args.input), "seed": args.seed, "frames": writer.count,
                                  "size": [camera.width, camera.height], "mean_grey": float(np.mean(grey)),
                                  "exposure": camera.exposure, "params": params.to_dict()})
    print(f"darkened {writer.count} frames of {source.name} -> {out}  (mean level {params.mean_level:.3f}, "
          f"mean grey {np.mean(grey):.1f}, full well {params.full_well:.0f} e-, read noise {params.read_noise:.1f} "
          f"e-, JPEG quality {params.jpeg_quality}, {len(params.lamps)} lamps)  parameters: {meta_path}")
    return 0
