"""DarkLighter's cost and the teacher-vs-student per-frame tracking time (why MLKD distils).

Times the enhancer per 127 template crop, per 287 search crop and per 1280x720 frame (one pass,
as the tracker runs it, and in memory-bounding tiles), with its FLOPs against this machine's
matmul rate (the compute floor); then runs the real tracker (crop + network + post-processing)
on a generated night sequence with the full-width teacher (DarkLighter + SiamRPN) and the plain
student, and prints the teacher/student ratio.

    python bench/enhancer.py --json results/enhancer_bench.json
"""
from __future__ import annotations

import argparse
import platform
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
    p.add_argument("--repeats", type=int, default=10, help="timed enhancer calls per input size")
    p.add_argument("--frames", type=int, default=20, help="timed tracking frames per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls / frames first")
    p.add_argument("--size", default="1280x720", help="frame size WxH")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    return p.parse_args(argv)


def time_enhancer(fn, pixels, repeats: int, warmup: int) -> list[float]:
    """Milliseconds per call of ``fn(pixels)`` under inference mode (CUDA synchronised)."""
    import torch

    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if pixels.is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn(pixels)
            if pixels.is_cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    return times


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
    import torch

    from mlkd_tracker.backends.torch_backend import resolve_device
    from mlkd_tracker.cli.bench import bench_frames, matmul_gflops
    from mlkd_tracker.config import default_model_path
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.nets.darklighter import DarkLighter, load_darklighter
    from mlkd_tracker.nets.flops import count_flops
    from mlkd_tracker.report import format_table, latency_stats, write_json_atomic

    args = parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size expects WxH, e.g. 1280x720, got {args.size!r}") from None
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

    # 1. the enhancer alone, as the torch backend feeds it (channels-last 0..255 floats on the CPU)
    gflops = matmul_gflops() if device.type == "cpu" else float("nan")
    rows, enhancer = [], {}
    nchw_state = {k: v.float().contiguous() for k, v in model.state_dict().items()}  # the reference runs fp32
    for label, (ih, iw), tile, fn in (
            ("template crop 127x127", (127, 127), None, model),
            ("search crop 287x287", (287, 287), None, model),
            ("search crop 287x287, reference structure", (287, 287), None,
             lambda x: reference_structure(nchw_state, x.contiguous())),
            (f"frame {w}x{h}", (h, w), None, model),
            (f"frame {w}x{h}, 320 px tiles", (h, w), 320, model)):
        pixels = (torch.rand(1, 3, ih, iw) * 60).to(device, dtype).contiguous(memory_format=memory_format)
        model.tile_size = tile
        stats = latency_stats(time_enhancer(fn, pixels, args.repeats, args.warmup))
        flops = count_flops(lambda: fn(pixels))
        floor_ms = flops / (gflops * 1e9) * 1e3
        rows.append([label, stats["mean"], stats["p50"], stats["p90"], flops / 1e9, floor_ms, stats["p50"] / floor_ms])
        enhancer[label] = {**stats, "gflop": flops / 1e9, "floor_ms": floor_ms, "tile": tile}
    model.tile_size = None
    print(f"\nDarkLighter on {device.type} {precision}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}; matmul {gflops:.1f} GFLOP/s")
    print(format_table(["input", "mean ms", "p50 ms", "p90 ms", "GFLOP", "floor ms", "p50/floor"], rows, ".2f"))

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
            "machine": platform.processor() or platform.machine(), "matmul_gflops": gflops,
            "frame_size": [w, h], "enhancer_ms": enhancer, "tracking": tracking,
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
