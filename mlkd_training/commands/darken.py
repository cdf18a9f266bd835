"""``mlkd darken``: daytime footage (a video or a frame folder) as a low-light camera would record it at night."""
from __future__ import annotations

import argparse

VIDEO_OUTPUTS = (".mp4", ".avi", ".mkv", ".mov")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Apply mlkd synth's low-light camera model to real footage: exposure cut to a dark level, "
                     "street-light colour casts and light pools, lamps with bloom, photon and read noise, camera "
                     "gamma, noise reduction and JPEG. Lighting is fixed in the image (no scene geometry is "
                     "known). Parameters are drawn from --seed within the ranges of docs/synthetic_data.md and "
                     "saved next to the output.")
    p.add_argument("input", help="video file or folder of frames (natural sort)")
    p.add_argument("output", help="output folder (JPEG frames 000001.jpg ...) or video file (.mp4, .avi, .mkv, .mov)")
    p.add_argument("--seed", type=int, default=0, help="random seed for the lighting, camera and noise")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=LOW,HIGH",
                   help="change a range, e.g. --set mean_level=0.03,0.06 --set full_well=200,400 (repeatable)")
    p.add_argument("--no-lights", action="store_true", help="ambient light only: no lamps, pools or point lights")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import itertools
    import os
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from mlkd_tracker.cli.track import VideoOut
    from mlkd_tracker.errors import InputError, SourceError
    from mlkd_tracker.frames import as_bgr_frame
    from mlkd_tracker.report import write_json_atomic
    from mlkd_tracker.sources import open_source, split_first
    from mlkd_training.commands.synth import parse_range_overrides
    from mlkd_training.data.degrade import NightCamera, NightRanges, decode_jpeg, encode_jpeg, sample_night_params

    ranges = NightRanges().replace(**parse_range_overrides(args.overrides))
    source = open_source(args.input)
    first, frames = split_first(source)
    height, width = first.shape[:2]
    rng = np.random.default_rng(args.seed)
    params = sample_night_params(rng, ranges, width * height / 1e6)
    if args.no_lights:
        params = dataclasses.replace(params, lamps=(), lights=(), ambient_share=1.0)
    camera = NightCamera(params, width, height, seed=int(rng.integers(2 ** 31)))
    camera.calibrate(first)

    out = Path(args.output)
    to_video = out.suffix.lower() in VIDEO_OUTPUTS
    if not to_video and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} exists and is not an empty folder; name a new folder or a video file "
                         f"({', '.join(VIDEO_OUTPUTS)})")
    partial = out.with_name(out.name + ".partial")
    video = VideoOut(str(out), source.fps or 30.0, (width, height)) if to_video else None
    if not to_video:
        partial.mkdir(parents=True, exist_ok=True)
    total = source.length if args.max_frames is None else min(source.length or args.max_frames, args.max_frames)
    bar = tqdm(total=total, unit="frame", desc="darken", disable=args.quiet)
    count = 0
    try:
        for frame in itertools.chain([first], frames):
            if args.max_frames is not None and count >= args.max_frames:
                break
            frame = as_bgr_frame(frame)
            if frame.shape[:2] != (height, width):
                raise SourceError(f"{source.name}: frame {count + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                                  f"expected {width}x{height} like the first")
            jpeg = encode_jpeg(camera.capture(camera.expose(frame), rng), params.jpeg_quality)
            count += 1
            if video:
                video.write(decode_jpeg(jpeg))
            else:
                (partial / f"{count:06d}.jpg").write_bytes(jpeg)
            bar.update(1)
    finally:
        bar.close()
        source.close()
    if video:
        video.close()
    else:
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(partial, out)
    meta_path = out.with_suffix(".json") if to_video else out / "darken.json"
    write_json_atomic(meta_path, {"input": str(args.input), "seed": args.seed, "frames": count,
                                  "size": [width, height], "exposure": camera.exposure, "params": params.to_dict()})
    print(f"darkened {count} frames of {source.name} -> {out}  (mean level {params.mean_level:.3f}, "
          f"full well {params.full_well:.0f} e-, read noise {params.read_noise:.1f} e-, "
          f"JPEG quality {params.jpeg_quality}, {len(params.lamps)} lamps)  parameters: {meta_path}")
    return 0
