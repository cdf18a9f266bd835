"""DarkLighter's cost and the teacher-vs-student per-frame tracking time (why MLKD distils).

Times the enhancer per 127 template crop and per 287 search crop (as the teacher's backbone gets
them) and per whole frame at 960x540, 1280x720 and 1920x1080 (as ``mlkd enhance`` runs it, uint8
BGR in and out, in its default 512 px tiles and in one pass), each against its compute floor: its FLOPs over
this machine's matmul rate, measured right before (best of 5 runs of a 2048^3 ``torch.matmul``).
Also per call: the process's user and system CPU time (``getrusage``) and minor page faults,
which show whether buffers are faulted in afresh every frame. Then runs the real tracker (crop +
network + post-processing) on a generated night sequence with the full-width teacher
(DarkLighter + SiamRPN) and the plain student, and prints the teacher/student ratio.

    python bench/enhancer.py --json results/enhancer_bench.json
    MALLOC_MMAP_MAX_=65536 python bench/enhancer.py   # glibc's default malloc behaviour, for comparison
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an installed copy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", help="DarkLighter weights to time (default: random; timing does not depend on them)")
    p.add_argument("--teacher", help="teacher model file (default: models/mlkd_teacher.yaml, random weights)")
    p.add_argument("--student", help="student model file (default: the bundled MLKD-Track)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 gives steadier figures on a busy machine)")
    p.add_argument("--repeats", type=int, default=10, help="timed enhancer calls per crop size")
    p.add_argument("--frame-repeats", type=int, default=3, help="timed enhancer calls per whole-frame size")
    p.add_argument("--frames", type=int, default=20, help="timed tracking frames per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls / frames first")
    p.add_argument("--frame-sizes", nargs="+", default=["960x540", "1280x720", "1920x1080"], metavar="WxH",
                   help="whole-frame sizes the enhancer is timed on")
    p.add_argument("--size", default="1280x720", help="frame size WxH of the tracking runs")
    p.add_argument("--tile", type=int, default=512, help="tile side (px) of the tiled passes (mlkd enhance's default)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return p.parse_args(argv)


def cpu_seconds() -> tuple[float, float, int]:
    """The process's user and system CPU seconds so far (all threads) and its minor page faults."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def matmul_rates(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """fp32 GFLOP per wall second and per CPU second (all threads) of an n^3 ``torch.matmul``, best of
    ``repeats``: the compute ceiling. The CPU-time rate does not drop when other jobs take turns on
    the cores, so time / floor in CPU seconds stays meaningful on a busy machine."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    wall = cpu = float("inf")
    for _ in range(repeats):
        user, system, _ = cpu_seconds()
        t0 = time.perf_counter()
        a @ b
        wall = min(wall, time.perf_counter() - t0)
        user2, system2, _ = cpu_seconds()
        cpu = min(cpu, user2 + system2 - user - system)
    return 2 * n ** 3 / wall / 1e9, 2 * n ** 3 / max(cpu, 1e-9) / 1e9


def time_enhancer(fn, pixels, repeats: int, warmup: int) -> tuple[list[float], dict[str, float]]:
    """Milliseconds per call of ``fn(pixels)`` under inference mode (CUDA synchronised), and the
    process's CPU seconds (user, system) and minor page faults per timed call."""
    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if i == warmup:
                before = cpu_seconds()
            if pixels.is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(pixels)
            if pixels.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    user, system, faults = (b - a for a, b in zip(before, cpu_seconds()))
    return times, {"user_s": user / repeats, "system_s": system / repeats,
                   "system_share": system / max(user + system, 1e-9), "minor_faults": faults / repeats}


def reference_structure(state: dict, pixels):
    """DarkLighter run the way the MLKD reference code runs it, for comparison.

    A float64 NumPy round trip for the /255, NCHW tensors, out-of-place ReLUs, e_conv7 and
    e_conv8 as two convolutions (written here from that description, not copied).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    def conv(name, t):
        return F.conv2d(t, state[name + ".weight"], state[name + ".bias"], padding=1)

    x = torch.from_numpy(np.asarray(pixels.cpu()) / 255.0).float().to(pixels.device)
    x1 = F.relu(conv("e_conv1", x))
    x2 = F.relu(conv("e_conv2", x1))
    x3 = F.relu(conv("e_conv3", torch.cat([x1, x2], 1)))
    x4 = F.relu(conv("e_conv4", torch.cat([x2, x3], 1)))
    x5 = F.relu(conv("e_conv5", torch.cat([x3, x4], 1)))
    r = torch.tanh(conv("e_conv7", torch.cat([x4, x5], 1)))
    n = torch.tanh(conv("e_conv8", torch.cat([x4, x5], 1)))
    for i in range(8):
        x = (x - n[:, i:i + 1]) * (r[:, i:i + 1] + 1)
    return x * 255.0


def time_tracking(model_path, frames, box, device: str, warmup: int) -> tuple[str, dict[str, dict[str, float]]]:
    """Per-stage stats of ``tracker.update`` through the real tracker on ``frames``."""
    from tqdm import tqdm

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.report import latency_stats

    tracker, loaded = create_tracker(model_path, device, allow_random_weights=True)
    tracker.init(frames[0], box)
    stages: dict[str, list[float]] = {"crop": [], "network": [], "post": [], "total": []}
    for i, frame in enumerate(tqdm(frames[1:], desc=loaded.name, unit="frame", leave=False)):
        t = tracker.update(frame).times
        if i >= warmup:
            for key, value in (("crop", t.crop_ms), ("network", t.network_ms), ("post", t.post_ms),
                               ("total", t.total_ms)):
                stages[key].append(value)
    return loaded.name, {k: latency_stats(v) for k, v in stages.items()}


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from mlkd_tracker.backends.torch_backend import resolve_device
    from mlkd_tracker.cli.bench import bench_frames
    from mlkd_tracker.config import default_model_path
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.memory import retain_freed_memory
    from mlkd_tracker.nets.darklighter import DarkLighter, enhance_bgr_image, load_darklighter
    from mlkd_tracker.nets.flops import count_flops
    from mlkd_tracker.report import format_table, latency_stats, write_json_atomic
    from mlkd_training.commands.synth import parse_size

    args = parse_args(argv)
    w, h = parse_size(args.size)
    frame_sizes = [parse_size(size) for size in args.frame_sizes]
    device, dtype = resolve_device(args.device, "auto")
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_darklighter(args.weights)[0] if args.weights else DarkLighter()
    model = model.to(device, dtype).eval()
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    precision = "fp16" if dtype == torch.float16 else "fp32"

    # 1. the enhancer alone: crops as the teacher's backbone gets them (channels-last 0..255 floats on
    # the CPU), whole frames as mlkd enhance runs them (uint8 BGR in and out)
    def crop(size):
        return (torch.rand(1, 3, size, size) * 60).to(device, dtype).contiguous(memory_format=memory_format)

    def frame(fw, fh):
        return torch.from_numpy(np.random.default_rng(0).integers(0, 60, (fh, fw, 3), dtype=np.uint8))

    def whole_frame(tile):
        def run(pixels):
            model.tile_size = tile
            enhance_bgr_image(model, pixels.numpy())
        return run

    nchw_state = {k: v.float().contiguous() for k, v in model.state_dict().items()}  # the reference runs fp32
    cases = [("template crop 127x127", crop(127), model, args.repeats, 127 ** 2),
             ("search crop 287x287", crop(287), model, args.repeats, 287 ** 2),
             ("search crop 287x287, reference structure", crop(287),
              lambda x: reference_structure(nchw_state, x.contiguous()), args.repeats, 287 ** 2),
             *[(f"frame {fw}x{fh}, {label}", frame(fw, fh), whole_frame(tile), args.frame_repeats, fw * fh)
               for fw, fh in frame_sizes for label, tile in ((f"{args.tile} px tiles", args.tile), ("one pass", None))]]
    # every convolution keeps the image size (3x3, padding 1): the FLOPs are a fixed amount per pixel
    flops_per_pixel = count_flops(lambda: model(crop(32))) / 32 ** 2
    rows, enhancer = [], {}
    load_before = os.getloadavg()
    for label, pixels, fn, repeats, pixel_count in tqdm(cases, desc="enhancer", unit="input", leave=False):
        wall_rate, cpu_rate = matmul_rates() if device.type == "cpu" else (float("nan"), float("nan"))
        times, cpu = time_enhancer(fn, pixels, repeats, args.warmup)
        stats = latency_stats(times)
        gflop = flops_per_pixel * pixel_count / 1e9  # the frame's own pixels: tile halos count as overhead
        floor_ms, cpu_floor_ms, cpu_ms = gflop / wall_rate * 1e3, gflop / cpu_rate * 1e3, (cpu["user_s"] + cpu["system_s"]) * 1e3
        rows.append([label, stats["p50"], floor_ms, stats["p50"] / floor_ms, cpu_ms, cpu_floor_ms, cpu_ms / cpu_floor_ms,
                     100 * cpu["system_share"], cpu["minor_faults"]])
        enhancer[label] = {**stats, **cpu, "gflop": gflop, "matmul_gflops": wall_rate, "matmul_gflop_per_cpu_s": cpu_rate,
                           "floor_ms": floor_ms, "p50_over_floor": stats["p50"] / floor_ms, "cpu_ms": cpu_ms,
                           "cpu_floor_ms": cpu_floor_ms, "cpu_over_floor": cpu_ms / cpu_floor_ms}
    model.tile_size = None
    load_after = os.getloadavg()
    print(f"\nDarkLighter on {device.type} {precision}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}; malloc keeps freed memory: {retain_freed_memory()}; "
          f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores")
    print(format_table(["input", "p50 ms", "floor ms", "p50/floor", "CPU ms", "CPU floor ms", "CPU/floor", "sys %",
                        "faults"], rows, ".2f"))
    print("floor: the input's FLOPs at the best matmul rate measured just before (per wall second; per CPU second "
          "of all threads for the CPU columns); sys %: system share of the process's CPU time; faults: minor page "
          "faults per call")

    # 2. teacher vs student through the real tracker (crop + network + post-processing)
    models_dir = default_model_path().parent
    frames, box = bench_frames((w, h), args.frames + args.warmup + 1)
    tracking = {}
    for role, path in (("teacher", args.teacher or models_dir / "mlkd_teacher.yaml"),
                       ("student", args.student or models_dir / "mlkd_track.yaml")):
        name, stats = time_tracking(path, frames, box, str(device), args.warmup)
        tracking[role] = {"model": name, "stages_ms": stats}
    ratio_mean = tracking["teacher"]["stages_ms"]["total"]["mean"] / tracking["student"]["stages_ms"]["total"]["mean"]
    ratio_p50 = tracking["teacher"]["stages_ms"]["total"]["p50"] / tracking["student"]["stages_ms"]["total"]["p50"]
    print(f"\nper-frame tracking, {w}x{h} frames, {args.frames} frames each")
    print(format_table(["model", "crop ms", "network ms", "post ms", "total p50 ms", "total mean ms", "FPS"],
                       [[t["model"], s["crop"]["p50"], s["network"]["p50"], s["post"]["p50"], s["total"]["p50"],
                         s["total"]["mean"], 1e3 / s["total"]["mean"]]
                        for t in tracking.values() for s in [t["stages_ms"]]], ".2f"))
    print(f"teacher / student per-frame time: {ratio_mean:.2f}x (mean), {ratio_p50:.2f}x (p50)")

    if args.json:
        write_json_atomic(args.json, {
            "device": str(device), "precision": precision, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "frame_size": [w, h], "malloc_retains_freed_memory": retain_freed_memory(),
            "load_average": {"before": load_before, "after": load_after}, "enhancer_ms": enhancer, "tracking": tracking,
            "teacher_over_student": {"mean": ratio_mean, "p50": ratio_p50}})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    from mlkd_tracker.errors import MLKDError

    try:
        raise SystemExit(main())
    except MLKDError as exc:  # bad options or files: one line, exit 2
        print(f"bench/enhancer.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
