"""``mlkd synth`` throughput: frames per second at 640x360 with N workers (target: >= 150 with 2 workers).

Each frame counts once though two are written (night + daylight twin). Prints wall-clock frames/s
and, because a shared machine's wall clock says little, the CPU seconds per frame of the whole run
(parent + workers) and the frames/s those would give on as many idle cores as workers. Usage::

    python bench/synth_speed.py --sequences 10 --frames 225,225 --workers 2 --json bench_synth_speed.json
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.data.synth import SynthConfig, generate_dataset  # noqa: E402


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=10)
    p.add_argument("--frames", default="225,225", metavar="MIN,MAX", help="225 = the mean of mlkd synth's default")
    p.add_argument("--size", default="640x360")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: a temporary folder, removed afterwards)")
    p.add_argument("--json", default="bench_synth_speed.json")
    args = p.parse_args()

    lo, hi = (int(v) for v in args.frames.split(","))
    w, h = (int(v) for v in args.size.split("x"))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mlkd_synth_speed_"))
    config = SynthConfig(sequences=args.sequences, frames=(lo, hi), width=w, height=h, name="Speed")
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    summary = generate_dataset(out, config, args.seed, args.workers, progress=True, resume=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)
    fps = summary.frames / wall
    cpu_ms = cpu / summary.frames * 1e3
    capacity = args.workers * 1e3 / cpu_ms
    load = os.getloadavg()[0]
    print(f"\n{summary.frames} frames ({args.sequences} sequences, {w}x{h}, night + day twin each), "
          f"{args.workers} workers, load average {load:.1f} on {os.cpu_count()} cores")
    print(format_table(["frames", "wall s", "frames/s (wall)", "CPU ms / frame", f"frames/s on {args.workers} idle cores"],
                       [[summary.frames, wall, fps, cpu_ms, capacity]], ".1f"))
    write_json_atomic(args.json, {"frames": summary.frames, "sequences": args.sequences, "size": [w, h],
                                  "workers": args.workers, "wall_s": wall, "fps_wall": fps, "cpu_ms_per_frame": cpu_ms,
                                  "fps_idle_cores": capacity, "load_average": load, "cores": os.cpu_count(),
                                  "machine": platform.processor() or platform.machine()})
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
