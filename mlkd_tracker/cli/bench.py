"""``mlkd bench``: per-frame crop / network / post-processing times and the compute floor."""
from __future__ import annotations

import argparse
import platform
import time

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model file (default: the bundled MLKD-Track architecture; random weights if it has "
                        "none, which is fine for timing)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", help="auto, fp32 or fp16")
    p.add_argument("--frames", type=int, default=60, help="timed frames")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first")
    p.add_argument("--size", default="1280x720", help="frame size WxH")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")

def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an n^3 ``torch.matmul`` (best of ``repeats``): the machine's compute ceiling."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9

def bench_frames(size: tuple[int, int], n: int):
    """A night-like 1280x720 sequence: dark noisy background, a bright target drifting across."""
    import numpy as np

    from mlkd_tracker.sources import IMAGE_SUFFIXES  # noqa: F401  (keeps the frame helpers in one place)

    w, h = size
    rng = np.random.default_rng(0)
    base = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = base.copy()
        x, y = int(w * 0.3 + 3 * i) % (w - 80), int(h * 0.4 + 1 * i) % (h - 60)
        f[y:y + 60, x:x + 80] = (200, 180, 150)
        frames.append(f)
    return frames, (float(int(w * 0.3)), float(int(h * 0.4)), 80.0, 60.0)

def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.nets.flops import count_flops
    from mlkd_tracker.report import format_table, latency_stats, write_json_atomic

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size expects WxH, e.g. 1280x720, got {args.size!r}") from None
    tracker, loaded = create_tracker(args.model, args.device, args.precision, allow_random_weights=True)
    frames, box = bench_frames((w, h), args.frames + args.warmup + 1)
    tracker.init(frames[0], box)
    stages = {"crop": [], "network": [], "post": [], "overhead": [], "total": []}
    for i, frame in enumerate(tqdm(frames[1:], desc="bench", unit="frame")):
        r = tracker.update(frame)
        if i >= args.warmup:
            t = r.times
            for key, value in (("crop", t.crop_ms), ("network", t.network_ms), ("post", t.post_ms),
                               ("overhead", t.crop_ms + t.post_ms), ("total", t.total_ms)):
                stages[key].append(value)
    stats = {k: latency_stats(v) for k, v in stages.items()}

    print(f"\nmodel: {loaded.name}  backend: {loaded.info}  frame: {w}x{h}  "
          f"CPU threads: {torch.get_num_threads()}  machine: {platform.processor() or platform.machine()}")
    print(format_table(["stage", "mean ms", "p50 ms", "p90 ms", "p99 ms"],
                       [[k, s["mean"], s["p50"], s["p90"], s["p99"]] for k, s in stats.items()], ".3f"))
    print(f"FPS (mean total): {1e3 / stats['total']['mean']:.1f}")
    result = {"model": loaded.name, "info": loaded.info, "frame_size": [w, h], "frames": args.frames,
              "stages_ms": stats, "fps": 1e3 / stats["total"]["mean"]}

    backend = loaded.backend
    if getattr(backend, "name", "") == "torch" and backend.device.type == "cpu":
        model = backend.model
        kernels = backend.template(frames[0][:127, :127])
        crop = frames[0][:tracker.config.instance_size, :tracker.config.instance_size]
        flops = count_flops(lambda: backend.search(crop, kernels))
        gflops = matmul_gflops()
        floor_ms = flops / (gflops * 1e9) * 1e3
        ratio = stats["network"]["p50"] / floor_ms
        print(format_table(["search GFLOP", "matmul GFLOP/s", "floor ms", "network p50 ms", "ratio"],
                           [[flops / 1e9, gflops, floor_ms, stats["network"]["p50"], ratio]], ".3f"))
        result["compute_floor"] = {"search_gflop": flops / 1e9, "matmul_gflops": gflops, "floor_ms": floor_ms,
                                   "network_p50_ms": stats["network"]["p50"], "ratio": ratio,
                                   "width": model.width}
    if args.json:
        write_json_atomic(args.json, result)
        print(f"JSON: {args.json}")
    return 0
