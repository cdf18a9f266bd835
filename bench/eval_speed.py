"""``mlkd eval`` speed: 5 trackers x 100 sequences x 1000 frames (target: under 10 s).

Writes a pysot-JSON dataset (all frame names point at one small image: evaluation never decodes
frames) and random result files in the pysot layout, then times ``mlkd eval`` as a user runs it
(a fresh process: imports, reading, metrics, table, JSON, plots). Usage::

    python bench/eval_speed.py --json bench_eval_speed.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.data.readers import format_boxes  # noqa: E402


def make_benchmark(folder: Path, trackers: int, sequences: int, frames: int, seed: int = 0) -> None:
    """Ground truth (smooth random walks, a few frames without boxes) and noisy tracker results."""
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(folder / "frame.jpg"), np.zeros((8, 8, 3), np.uint8))
    meta, results = {}, folder / "results" / "EvalSpeed"
    attrs = ["SV", "FM", "OV", "POC", "IV", "LR"]
    for s in range(sequences):
        name = f"seq{s + 1:03d}"
        centre = np.cumsum(rng.normal(0, 3, (frames, 2)), axis=0) + [640, 360]
        size = np.abs(40 + np.cumsum(rng.normal(0, 0.5, (frames, 2)), axis=0)) + 5
        gt = np.column_stack([centre - size / 2, size])
        gt[rng.random(frames) < 0.02] = np.nan
        meta[name] = {"video_dir": name, "init_rect": gt[0].tolist(), "img_names": ["frame.jpg"] * frames,
                      "gt_rect": [[] if np.isnan(b).any() else b.tolist() for b in gt],
                      "attr": list(rng.choice(attrs, size=2, replace=False))}
        for t in range(trackers):
            drift = np.cumsum(rng.normal(0, 0.3 * (t + 1), (frames, 4)), axis=0)
            pred = np.nan_to_num(gt, nan=0.0) + drift
            pred[0] = np.nan_to_num(gt[0])
            (results / f"tracker{t + 1}").mkdir(parents=True, exist_ok=True)
            (results / f"tracker{t + 1}" / f"{name}.txt").write_text(format_boxes(pred))
    (folder / "EvalSpeed.json").write_text(json.dumps(meta))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trackers", type=int, default=5)
    p.add_argument("--sequences", type=int, default=100)
    p.add_argument("--frames", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="timed runs (the best and the median are reported)")
    p.add_argument("--json", default="bench_eval_speed.json")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlkd_eval_speed_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        make_benchmark(folder, args.trackers, args.sequences, args.frames)
        setup_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "mlkd_tracker", "eval", str(folder / "EvalSpeed.json"),
               "--results", str(folder / "results"), "--out", str(folder / "eval")]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            times.append(time.perf_counter() - t0)
        plots = len(list((folder / "eval").glob("*.png")))
    load = os.getloadavg()[0]
    print(f"{args.trackers} trackers x {args.sequences} sequences x {args.frames} frames "
          f"(fixture written in {setup_s:.1f} s); load average {load:.1f} on {os.cpu_count()} cores")
    print(format_table(["runs", "best s", "median s", "PNG plots"],
                       [[len(times), min(times), float(np.median(times)), plots]], ".2f"))
    write_json_atomic(args.json, {"trackers": args.trackers, "sequences": args.sequences, "frames": args.frames,
                                  "seconds": times, "best_s": min(times), "median_s": float(np.median(times)),
                                  "plots": plots, "load_average": load,
                                  "machine": platform.processor() or platform.machine()})
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
