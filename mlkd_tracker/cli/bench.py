"""``mlkd bench``: per-stage times of every backend available here, in one interleaved run.

Each backend gets its own tracker on the same generated night sequence; the trackers take turns
in short blocks of frames (rotating the order), so machine load hits every backend alike and
their figures can be compared. The first frames of each block are not timed: the previous
backend's worker threads may still be spinning (OpenMP, ONNX Runtime) and would slow this one.
Stages per frame: crop, search (network), post-processing, total; the template branch (run once
per target) is timed separately over repeated inits.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkd_tracker.errors import InputError

# name -> (backend, device, precision, which model file it runs)
VARIANTS: dict[str, tuple[str, str, str, str]] = {
    "torch-cpu": ("torch", "cpu", "fp32", "torch"),
    "torch-cuda": ("torch", "cuda", "fp16", "torch"),
    "onnxruntime-cpu": ("onnxruntime", "cpu", "fp32", "onnx"),
    "onnxruntime-int8": ("onnxruntime", "cpu", "int8", "int8"),
    "onnxruntime-cuda": ("onnxruntime", "cuda", "fp32", "onnx"),
    "onnxruntime-trt": ("onnxruntime", "tensorrt", "fp16", "onnx"),
    "tensorrt-fp16": ("tensorrt", "cuda", "fp16", "onnx"),
    "tensorrt-fp32": ("tensorrt", "cuda", "fp32", "onnx"),
}
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "tensorrt-fp32"]
TORCH_SUFFIXES = (".pth", ".pt", ".safetensors", ".yaml", ".yml")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Time the tracker per stage (crop, template, search, post-processing, total; p50/p90/p99 and FPS) on "
        "every backend available on this machine, interleaved frame by frame so the figures compare fairly. "
        "A checkpoint is exported to ONNX and int8 on the fly (needs the training extras); an .onnx is "
        "benchmarked as it is, with its .int8 sibling when present.")
    p.add_argument("--model", default=None,
                   help="checkpoint, model YAML, .onnx export or TensorRT .engine (default: the bundled MLKD-Track; a "
                        "model YAML without weights runs with random ones, which is fine for timing)")
    p.add_argument("--backends", nargs="+", metavar="NAME", default=None,
                   help=f"variants to run (default: every available one of {', '.join(DEFAULT_VARIANTS)}; "
                        f"also: tensorrt-fp32)")
    p.add_argument("--frames", type=int, default=60, help="timed frames")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first")
    p.add_argument("--block", type=int, default=8, help="frames per turn; the first %d of each are not timed" % SETTLE)
    p.add_argument("--template-runs", type=int, default=10, help="timed template-branch runs (inits)")
    p.add_argument("--size", default="1280x720", help="frame size WxH")
    p.add_argument("--exports", metavar="DIR", help="keep the ONNX / int8 / engine files made for the run here "
                                                    "(default: a temporary folder)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


SETTLE = 2  # untimed frames at the start of each turn


def turns(frames: int, warmup: int, block: int) -> list[list[tuple[int, bool]]]:
    """Blocks of ``(frame index, timed)`` from frame 1 on: ``frames`` timed ones after ``warmup`` untimed."""
    if block <= SETTLE:
        raise InputError(f"--block must be more than {SETTLE} (its first {SETTLE} frames are not timed), got {block}")
    out, index, timed = [], 1, 0
    while timed < frames:
        turn = []
        for j in range(block):
            counted = j >= SETTLE and index > warmup and timed < frames
            turn.append((index, counted))
            timed += counted
            index += 1
        out.append(turn)
    return out


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
    """A night-like sequence: dark noisy background, a bright target drifting across."""
    import numpy as np

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


class TimedTemplate:
    """Wraps a backend to time its template branch (the tracker times crop, search and post itself)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.template_ms: list[float] = []

    def template(self, crop):
        t0 = time.perf_counter()
        kernels = self.inner.template(crop)
        self.template_ms.append((time.perf_counter() - t0) * 1e3)
        return kernels

    def search(self, crop, kernels):
        return self.inner.search(crop, kernels)


@dataclass
class Run:
    name: str
    tracker: Any
    loaded: Any
    timed: TimedTemplate


def _available(name: str, model_kind: str) -> str | None:
    """Why variant ``name`` cannot run here (None when it can)."""
    backend, device, precision, needs = VARIANTS[name]
    if model_kind == "engine" and backend != "tensorrt":
        return "the model is a TensorRT engine"
    if needs == "torch" and model_kind != "torch":
        return "the model is an ONNX export (torch runs checkpoints)"
    exported = needs in ("onnx", "int8")
    if backend == "torch" or (exported and model_kind == "torch"):
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed"
    if backend == "torch" and device == "cuda":
        import torch
        return None if torch.cuda.is_available() else "no CUDA device for PyTorch"
    if exported and model_kind == "torch" and importlib.util.find_spec("onnxscript") is None:
        return "exporting needs onnx and onnxscript (pip install -e '.[onnx]')"
    if backend == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
        from mlkd_tracker.backends.onnx_backend import available_devices
        return None if device in available_devices() else f"this onnxruntime has no {device} execution provider"
    if backend == "tensorrt":
        for module in ("tensorrt", "cuda"):
            if importlib.util.find_spec(module) is None:
                return f"{'TensorRT' if module == 'tensorrt' else 'cuda-python'} is not installed"
    return None


def _prepare_files(model: str | None, model_kind: str, names: list[str], folder: Path, log) -> dict[str, Any]:
    """Model file per kind: the torch model as given, the fp32 ONNX pair, the int8 pair (made here if missing)."""
    files: dict[str, Any] = {"torch": model}
    if not any(VARIANTS[n][3] in ("onnx", "int8") for n in names):
        return files
    if model_kind in ("onnx", "engine"):
        files["onnx"] = Path(model)  # an engine file serves the tensorrt variants directly
        if model_kind == "engine":
            return files
    else:  # a checkpoint: export it (the training side owns exporting; imported only for this)
        from mlkd_training.export.onnx_export import export_model
        files["onnx"] = export_model(model, folder / "model", allow_random_weights=True, log=log)["search"]
    if "onnxruntime-int8" in names:
        from mlkd_tracker.backends.onnx_backend import resolve_paths
        from mlkd_tracker.errors import ModelFileError
        try:
            files["int8"] = resolve_paths(files["onnx"], "int8")["search"]
        except ModelFileError:  # no int8 export beside it: quantise into the run's folder
            from mlkd_training.export.int8 import generated_night_sequences, quantize_int8, record_calibration_feeds
            log("quantising to int8 (calibration on 8 generated night clips)")
            calibration = record_calibration_feeds(files["onnx"], generated_night_sequences(8, 4), quiet=True)
            files["int8"] = quantize_int8(files["onnx"], calibration, out_prefix=folder / "model.int8")["search"]
    return files


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.errors import ModelFileError
    from mlkd_tracker.report import format_table, latency_stats, write_json_atomic

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size expects WxH, e.g. 1280x720, got {args.size!r}") from None
    unknown = sorted(set(args.backends or []) - set(VARIANTS))
    if unknown:
        raise InputError(f"unknown --backends {unknown}; choose from {', '.join(VARIANTS)}")
    suffix = Path(args.model).suffix.lower() if args.model else ".yaml"
    if suffix not in (*TORCH_SUFFIXES, ".onnx", ".engine", ".plan"):
        raise InputError(f"mlkd bench takes a checkpoint, a model YAML, an .onnx export or an .engine, "
                         f"not {args.model}")
    model_kind = "onnx" if suffix == ".onnx" else "engine" if suffix in (".engine", ".plan") else "torch"
    log = (lambda _: None) if args.quiet else print
    skipped = {}
    names = []
    for name in args.backends or DEFAULT_VARIANTS:
        reason = _available(name, model_kind)
        if reason:
            skipped[name] = reason
        else:
            names.append(name)
    if not names:
        raise InputError("no backend can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))

    with tempfile.TemporaryDirectory(prefix="mlkd-bench-") as tmp:
        folder = Path(args.exports) if args.exports else Path(tmp)
        files = _prepare_files(args.model, model_kind, names, folder, log)
        runs = []
        for name in names:
            backend, device, precision, needs = VARIANTS[name]
            try:
                tracker, loaded = create_tracker(files[needs], device, precision, allow_random_weights=True,
                                                 backend=backend, log=log)
            except (ModelFileError, InputError) as exc:
                if args.backends:  # asked for explicitly: that is an error
                    raise
                skipped[name] = str(exc)
                continue
            timed = TimedTemplate(tracker.backend)
            tracker.backend = timed
            runs.append(Run(name, tracker, loaded, timed))
        schedule = turns(args.frames, args.warmup, args.block)
        frames, box = bench_frames((w, h), schedule[-1][-1][0] + 1)
        for r in runs:
            for _ in range(args.template_runs + 1):
                r.tracker.init(frames[0], box)
            del r.timed.template_ms[0]  # first call: allocations, lazy initialisation
        stages = {r.name: {k: [] for k in ("crop", "search", "post", "total")} for r in runs}
        for b, turn in enumerate(tqdm(schedule, desc="bench", unit="block", disable=args.quiet)):
            for r in runs[b % len(runs):] + runs[:b % len(runs)]:  # rotate who goes first
                for i, timed in turn:
                    t = r.tracker.update(frames[i]).times
                    if timed:
                        for key, value in (("crop", t.crop_ms), ("search", t.network_ms), ("post", t.post_ms),
                                           ("total", t.total_ms)):
                            stages[r.name][key].append(value)
        floor = _compute_floor(next((r for r in runs if r.name == "torch-cpu"), None), frames[0], stages)

    machine = platform.processor() or platform.machine()
    print(f"\nframe {w}x{h}, {args.frames} timed frames, {args.template_runs} template runs, machine: {machine}")
    results, rows = {}, []
    reference = None
    for r in runs:
        stats = {k: latency_stats(v) for k, v in stages[r.name].items()}
        stats["template"] = latency_stats(r.timed.template_ms)
        fps = 1e3 / stats["total"]["mean"]
        size = r.loaded.info.get("model_bytes")
        results[r.name] = {"model": r.loaded.name, "info": r.loaded.info, "model_bytes": size, "stages_ms": stats,
                           "fps": fps}
        print(f"\n{r.name}: {r.loaded.name}, {r.loaded.info.get('precision')} on {r.loaded.info.get('device')}"
              + (f", model {size / 1e6:.2f} MB" if size else ""))
        print(format_table(["stage", "mean ms", "p50 ms", "p90 ms", "p99 ms"],
                           [[k, stats[k]["mean"], stats[k]["p50"], stats[k]["p90"], stats[k]["p99"]]
                            for k in ("crop", "template", "search", "post", "total")], ".3f"))
        reference = reference or stats["total"]["p50"]
        rows.append([r.name, r.loaded.info.get("precision", ""), (size or 0) / 1e6, stats["template"]["p50"],
                     stats["search"]["p50"], stats["total"]["p50"], stats["total"]["p99"], fps,
                     reference / stats["total"]["p50"]])
    print(f"\nsummary (speed-up: total p50 of {runs[0].name} / total p50)")
    print(format_table(["backend", "precision", "model MB", "template p50", "search p50", "total p50",
                        "total p99", "FPS", "speed-up"], rows, ".2f"))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    result = {"frame_size": [w, h], "frames": args.frames, "template_runs": args.template_runs,
              "machine": machine, "backends": results, "skipped": skipped}
    if floor:
        print(format_table(["search GFLOP", "matmul GFLOP/s", "floor ms", "torch search p50 ms", "ratio"],
                           [[floor["search_gflop"], floor["matmul_gflops"], floor["floor_ms"],
                             floor["network_p50_ms"], floor["ratio"]]], ".3f"))
        result["compute_floor"] = floor
    if args.json:
        write_json_atomic(args.json, result)
        print(f"JSON: {args.json}")
    return 0


def _compute_floor(torch_run: Run | None, frame, stages) -> dict | None:
    """The torch CPU search branch against its FLOPs at the machine's matmul rate (its compute floor)."""
    if torch_run is None:
        return None
    import numpy as np
    import torch

    from mlkd_tracker.nets.flops import count_flops

    backend = torch_run.timed.inner
    config = torch_run.tracker.config
    kernels = backend.template(frame[:config.exemplar_size, :config.exemplar_size])
    crop = frame[:config.instance_size, :config.instance_size]
    flops = count_flops(lambda: backend.search(crop, kernels))
    gflops = matmul_gflops()
    floor_ms = flops / (gflops * 1e9) * 1e3
    search_p50 = float(np.percentile(stages[torch_run.name]["search"], 50))
    return {"search_gflop": flops / 1e9, "matmul_gflops": gflops, "floor_ms": floor_ms,
            "network_p50_ms": search_p50, "ratio": search_p50 / floor_ms, "arch": backend.model.arch(),
            "threads": torch.get_num_threads()}
