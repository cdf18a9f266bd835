"""``mlkd demo``: generate a short night UAV clip, track it with the default MLKD-Track model, save an
annotated video and print the speed and accuracy. No input needed.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model file or models/*.yaml (default: the bundled MLKD-Track)")
    p.add_argument("--out", default="mlkd_demo.mp4", help="annotated video to write")
    p.add_argument("--frames", type=int, default=150, help="length of the generated clip")
    p.add_argument("--size", default="640x360", help="frame size WxH")
    p.add_argument("--seed", type=int, default=7, help="which clip: the same seed gives the same clip")
    p.add_argument("--keep", metavar="DIR", help="keep the generated clip (UAVDark135 layout) in DIR")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32 or fp16")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def make_clip(folder, frames: int, size: tuple[int, int], seed: int):
    """One synthetic night sequence (and its day twin) written under ``folder``; returns the night one."""
    from mlkd_training.data.readers import open_dataset
    from mlkd_training.data.synth import SynthConfig, SyntheticSequence, write_sequence

    config = SynthConfig(sequences=1, frames=(frames, frames), width=size[0], height=size[1], name="demo")
    write_sequence(SyntheticSequence(config, seed, 0), folder)
    return open_dataset(folder / "night")[0]


def run(args: argparse.Namespace) -> int:
    import tempfile
    import time
    from pathlib import Path

    import cv2
    import numpy as np
    from tqdm import tqdm

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.cli.track import VideoOut
    from mlkd_tracker.draw import draw_result
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.report import format_table, latency_stats
    from mlkd_tracker.tracker import Status, TrackResult
    from mlkd_training.commands.synth import parse_size
    from mlkd_training.evaluation.metrics import PRECISION_INDEX, sequence_curves

    if args.frames < 2:
        raise InputError(f"--frames must be at least 2, got {args.frames}")
    tracker, loaded = create_tracker(args.model, args.device, args.precision)  # a missing model fails first
    with tempfile.TemporaryDirectory(prefix="mlkd_demo_") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        t0 = time.perf_counter()
        seq = make_clip(folder, args.frames, parse_size(args.size), args.seed)
        generated_s = time.perf_counter() - t0
        first = seq.frame(0)
        tracker.init(first, seq.init_box)
        boxes, latencies = [seq.init_box], []
        video = VideoOut(args.out, 30.0, first.shape[1::-1])
        try:
            video.write(draw_result(first.copy(), TrackResult(seq.init_box, 1.0, Status.TRACKING)))
            for i in tqdm(range(1, len(seq)), unit="frame", desc="tracking", disable=args.quiet):
                frame = seq.frame(i)
                t1 = time.perf_counter()
                result = tracker.update(frame)
                latencies.append((time.perf_counter() - t1) * 1e3)
                boxes.append(result.box_xywh)
                shown = frame.copy()
                if seq.valid[i]:  # ground truth, thin white
                    x, y, w, h = (int(round(v)) for v in seq.gt[i])
                    cv2.rectangle(shown, (x, y), (x + w, y + h), (255, 255, 255), 1)
                video.write(draw_result(shown, result, 1e3 / latencies[-1]))
        finally:
            video.close()
    curves = sequence_curves(seq.gt, np.asarray(boxes), seq.absent)
    stats = latency_stats(latencies)
    print(f"model: {loaded.name} [{loaded.info.get('backend')}, {loaded.info.get('device')}, "
          f"{loaded.info.get('precision')}]  clip: {len(seq)} night frames {args.size} "
          f"(generated in {generated_s:.1f} s, seed {args.seed})")
    print(format_table(["frames", "mean FPS", "p50 ms", "p99 ms", "success AUC", "precision@20"],
                       [[len(seq), 1e3 / stats["mean"], stats["p50"], stats["p99"], float(np.mean(curves.success)),
                         float(curves.precision[PRECISION_INDEX])]], floatfmt=".3f"))
    print(f"video: {args.out} (white: ground truth; green: {loaded.name})")
    if args.keep:
        print(f"clip: {Path(args.keep) / 'night'}")
    return 0
