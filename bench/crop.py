"""Search-crop time per 1280x720 frame: the fast crop (one warp) against ``crop: pysot`` (exact).

Real UAV sequences (``../shared/data/uav_real`` layout: ``anno/<seq>.txt`` + ``data_seq/<seq>.mp4``)
are scaled to the frame size with their boxes; each frame's search window is the one the tracker
cuts around the ground-truth box (context 0.5, 287 px crop), so windows leave the frame and
enlarge as often as they do in those flights. Both modes crop every frame, alternating which goes
first; also printed: how often and by how much the two crops differ, and the load average. The
last row is the worst case of ``crop: pysot``: the largest window the tracker can cut (a target
as large as the frame, clipped as the tracker clips it), which it pads to about 4500 px square.

    python bench/crop.py --json crop_bench.json
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mlkd_tracker.config import TrackerConfig  # noqa: E402
from mlkd_tracker.crop import CROP_MODES, crop_subwindow  # noqa: E402
from mlkd_tracker.errors import InputError  # noqa: E402
from mlkd_tracker.report import format_table, latency_stats, write_json_atomic  # noqa: E402
from mlkd_training.commands.synth import parse_size  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "uav_real"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="UAV123-style folder with videos (anno/, data_seq/)")
    p.add_argument("--sequences", type=int, default=6, help="sequences used (sorted by name)")
    p.add_argument("--frames", type=int, default=100, help="frames per sequence")
    p.add_argument("--size", default="1280x720", help="frame size WxH the sequences are scaled to")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    try:
        args.size = parse_size(args.size)
    except InputError as exc:
        p.error(str(exc))
    args.videos = sorted((args.data / "data_seq").glob("*.mp4"))[:args.sequences]
    if not args.videos:
        p.error(f"no videos in {args.data / 'data_seq'} (expected the uav_real layout: anno/, data_seq/)")
    return args


def scaled_sequence(video: Path, anno: Path, size: tuple[int, int], frames: int):
    """Frames scaled to ``size`` and their boxes (x, y, w, h) scaled alike; frames without a box are left out."""
    boxes = np.loadtxt(anno, delimiter=",", ndmin=2)
    cap = cv2.VideoCapture(str(video))
    out = []
    try:
        for box in boxes[:frames]:
            ok, frame = cap.read()
            if not ok:
                break
            if not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
                continue
            sx, sy = size[0] / frame.shape[1], size[1] / frame.shape[0]
            out.append((cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR),
                        (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)))
    finally:
        cap.release()
    return out


def search_window(box, config: TrackerConfig) -> tuple[tuple[float, float], int]:
    """Centre and side of the tracker's search window around ``box`` (as ``SiameseTracker.update``)."""
    x, y, w, h = box
    context = config.context_amount * (w + h)
    s_z = math.sqrt((w + context) * (h + context))
    return (x + (w - 1) / 2, y + (h - 1) / 2), round(s_z * config.instance_size / config.exemplar_size)


def time_crops(frame, centre, side, config: TrackerConfig, order) -> dict[str, tuple[float, object]]:
    """Milliseconds and crop of each mode, in ``order``."""
    pad = frame.mean(axis=(0, 1))
    out = {}
    for mode in order:
        t0 = time.perf_counter()
        crop = crop_subwindow(frame, centre, config.instance_size, side, pad, mode)
        out[mode] = ((time.perf_counter() - t0) * 1e3, crop)
    return out


def rows_for(label: str, times: dict[str, list[float]]) -> list[list]:
    extra = latency_stats([p - f for p, f in zip(times["pysot"], times["fast"])])
    stats = {mode: latency_stats(t) for mode, t in times.items()}
    return [[label, len(times["fast"]), stats["fast"]["mean"], stats["fast"]["p50"], stats["pysot"]["mean"],
             stats["pysot"]["p50"], extra["mean"], extra["p50"], extra["p99"]]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size, videos = args.size, args.videos
    config = TrackerConfig()
    times = {group: {mode: [] for mode in CROP_MODES} for group in ("all", "leaving", "largest")}
    enlarging = differing = values = worst = 0
    frame = None
    for video in videos:
        for index, (frame, box) in enumerate(scaled_sequence(video, args.data / "anno" / f"{video.stem}.txt",
                                                             size, args.frames)):
            centre, side = search_window(box, config)
            result = time_crops(frame, centre, side, config, CROP_MODES if index % 2 else CROP_MODES[::-1])
            x0, y0 = centre[0] - side / 2, centre[1] - side / 2
            leaving = x0 < 0 or y0 < 0 or x0 + side > size[0] or y0 + side > size[1]
            for group in ("all", "leaving") if leaving else ("all",):
                for mode, (ms, _) in result.items():
                    times[group][mode].append(ms)
            enlarging += side < config.instance_size
            diff = np.abs(result["fast"][1].astype(np.int16) - result["pysot"][1])
            worst, differing, values = max(worst, int(diff.max())), differing + int((diff > 0).sum()), values + diff.size
    n = len(times["all"]["fast"])
    if n == 0:
        raise SystemExit(f"bench/crop.py: error: no annotated frames read from {args.data}")
    largest = search_window((0.0, 0.0, float(size[0]), float(size[1])), config)  # the tracker clips w, h to the frame
    for index in range(50):
        for mode, (ms, _) in time_crops(frame, largest[0], largest[1], config,
                                        CROP_MODES if index % 2 else CROP_MODES[::-1]).items():
            times["largest"][mode].append(ms)
    load = os.getloadavg()
    leaving_n = len(times["leaving"]["fast"])
    print(f"\nsearch crop ({config.instance_size}x{config.instance_size}) per {size[0]}x{size[1]} frame: {n} frames of "
          f"{len(videos)} real UAV sequences; {leaving_n / n:.0%} of the windows leave the frame, "
          f"{enlarging / n:.0%} are enlarged; load average {load[0]:.2f} on {os.cpu_count()} cores")
    labels = {"all": "real sequences, all frames", "leaving": "real sequences, window leaves the frame",
              "largest": f"largest window ({largest[1]} px, frame-sized target)"}
    rows = [row for group, label in labels.items() if times[group]["fast"] for row in rows_for(label, times[group])]
    print(format_table(["windows", "crops", "fast mean ms", "fast p50 ms", "pysot mean ms", "pysot p50 ms",
                        "pysot - fast mean ms", "p50", "p99"], rows, ".3f"))
    print(f"fast vs pysot crops: {differing / values:.1%} of the values differ, by at most {worst} grey level(s)")
    if args.json:
        write_json_atomic(args.json, {
            "frame_size": list(size), "frames": n, "sequences": [v.stem for v in videos], "leaving_frame": leaving_n / n,
            "enlarged": enlarging / n, "largest_window": largest[1],
            "crops": {group: len(modes["fast"]) for group, modes in times.items()},
            "crop_ms": {group: {mode: latency_stats(t) for mode, t in modes.items() if t} for group, modes in times.items()},
            "pysot_minus_fast_ms": {group: latency_stats([p - f for p, f in zip(modes["pysot"], modes["fast"])])
                                    for group, modes in times.items() if modes["fast"]},
            "differing_values": differing / values, "max_difference": worst, "load_average": list(load)})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
