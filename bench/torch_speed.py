"""Where the PyTorch CPU time of a search branch goes: variants, thread counts and fixed per-call cost.

For each model (the released NanoTrack v1/v2/v3 from ``../shared/data/nanotrack`` and the bundled
MLKD-Track), at each thread count, it times in one interleaved run (short turns in rotating
order; the thread count is set before each turn, and its first calls are not timed):

- ``backend``: ``TorchBackend.search`` as ``mlkd`` runs it (uint8 crop in, numpy maps out; eager,
  channels-last, BatchNorm folded, inference mode, denormals flushed), here on the turn's thread
  count (the backend itself runs networks under 0.5 GFLOP, NanoTrack, on one thread);
- ``eager-cl`` / ``eager-nchw``: the same folded network on prepared float tensors, channels-last
  and plain NCHW;
- ``torchscript``: ``torch.jit.trace`` + ``torch.jit.freeze`` of the channels-last network
  (deprecated in PyTorch 2.13: measured, not used by the backend);
- ``compiled`` (``--compile``): ``torch.compile`` of the search branch, with its compile time;
- ``tiny-crop`` (NanoTrack): the backend on a 31 px crop, whose 2x2 feature maps run every
  operation of the branch with almost no arithmetic: the fixed cost per call (dispatch, oneDNN
  set-up per convolution, thread hand-offs) that no faster kernel removes.

The compute floor is the branch's FLOPs over the fp32 rate of a 1024^3 ``torch.matmul`` at the
same thread count: the matmul takes its turns with the variants, and its best turn counts (on a
shared machine a rate measured once, at the end, may catch a busy moment). Prints a table per
model and writes JSON::

    python bench/torch_speed.py --models v1 v2 v3 mlkd --threads 1 2 --json torch_speed.json
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, not an installed copy

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mlkd_tracker.backends import load_model  # noqa: E402
from mlkd_tracker.backends.torch_backend import denormals_flushed  # noqa: E402
from mlkd_tracker.nets.flops import count_flops  # noqa: E402
from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402

NANOTRACK = ROOT.parent / "shared" / "data" / "nanotrack"
MODELS = {"v1": NANOTRACK / "v1" / "nanotrackv1.pth", "v2": NANOTRACK / "v2" / "nanotrackv2.pth",
          "v3": NANOTRACK / "v3" / "nanotrackv3.pth", "mlkd": None}  # None: the bundled MLKD-Track
TINY_CROP = 31  # NanoTrack: 2x2 backbone features, every layer still runs
SETTLE = 2      # untimed calls at the start of each turn
MATMUL_N = 1024  # the floor's matmul takes turns with the variants (n^3, fp32)


class SearchBranch(nn.Module):
    """The per-frame branch as a module of its own (what tracing and compiling take)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, search: torch.Tensor, kernel_cls: torch.Tensor, kernel_loc: torch.Tensor):
        return self.model.track(search, kernel_cls, kernel_loc)


def variants(loaded, compile_branch: bool, log) -> tuple[dict, dict]:
    """``{name: zero-argument call}`` and facts (FLOPs, preparation times) for one loaded model."""
    backend, config = loaded.backend, loaded.config
    model = backend.model  # folded, channels-last
    facts = {"backend_threads": backend.threads or "torch's setting"}
    backend.threads = None  # the turns set the thread count
    rng = np.random.default_rng(0)
    template = rng.integers(0, 256, (config.exemplar_size, config.exemplar_size, 3), dtype=np.uint8)
    crop = rng.integers(0, 256, (config.instance_size, config.instance_size, 3), dtype=np.uint8)
    kernels = backend.template(template)
    x_cl = backend._to_tensor(crop)
    calls = {"backend": lambda: backend.search(crop, kernels),
             "eager-cl": lambda: model.track(x_cl, *kernels)}
    facts["search_flops"] = count_flops(lambda: backend.search(crop, kernels))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings: this path is measured, not used
        t0 = time.perf_counter()
        scripted = torch.jit.freeze(torch.jit.trace(SearchBranch(model).eval(), (x_cl, *kernels)))
        scripted(x_cl, *kernels)
        facts["torchscript_prepare_s"] = time.perf_counter() - t0
    calls["torchscript"] = lambda: scripted(x_cl, *kernels)
    if compile_branch:
        log("torch.compile: compiling the search branch (about a minute on 2 cores)")
        compiled = torch.compile(model.track)
        with torch.inference_mode():
            t0 = time.perf_counter()
            compiled(x_cl, *kernels)
            facts["compile_s"] = time.perf_counter() - t0
        calls["compiled"] = lambda: compiled(x_cl, *kernels)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x_nchw, kernels_nchw = x_cl.contiguous(), [k.contiguous() for k in kernels]
    calls["eager-nchw"] = lambda: nchw.track(x_nchw, *kernels_nchw)
    reference = backend.search(crop, kernels)
    with torch.inference_mode():  # every variant computes the same maps (fp32 rounding apart)
        facts["max_abs_diff"] = {name: max(float(np.abs(np.asarray(ours, np.float32) - ref).max())
                                           for ours, ref in zip(call(), reference))
                                 for name, call in calls.items() if name != "backend"}
    if model.arch()["type"] == "nanotrack":
        tiny = crop[:TINY_CROP, :TINY_CROP]
        calls["tiny-crop"] = lambda: backend.search(tiny, kernels)
        facts["tiny_crop_flops"] = count_flops(lambda: backend.search(tiny, kernels))
    return calls, facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["v1", "v2", "v3", "mlkd"], choices=list(MODELS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="intra-op thread counts to compare")
    p.add_argument("--turns", type=int, default=20, help="turns per (variant, thread count)")
    p.add_argument("--calls", type=int, default=6, help="calls per turn (the first %d untimed)" % SETTLE)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.calls <= SETTLE:
        p.error(f"--calls must be more than {SETTLE}")
    results = {}
    for key in args.models:
        path = MODELS[key]
        if path is not None and not path.is_file():
            print(f"skipping {key}: {path} not found")
            continue
        loaded = load_model(path, "cpu", "fp32")
        calls, facts = variants(loaded, args.compile, print)
        floors = {}
        a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
        calls["matmul"] = lambda: a @ b
        times = {(name, t): [] for name in calls for t in args.threads}
        order = list(times)
        with torch.inference_mode(), denormals_flushed():
            for turn in range(args.turns):
                for name, threads in order[turn % len(order):] + order[:turn % len(order)]:
                    torch.set_num_threads(threads)
                    for i in range(args.calls):
                        t0 = time.perf_counter()
                        calls[name]()
                        if i >= SETTLE:
                            times[name, threads].append((time.perf_counter() - t0) * 1e3)
        for threads in args.threads:  # the matmul took its turns too: its best one is the machine's rate
            floors[threads] = 2 * MATMUL_N ** 3 / (min(times.pop(("matmul", threads))) * 1e6)
        load = os.getloadavg()
        rows, entry = [], {"model": loaded.name, "arch": loaded.backend.model.arch(), **facts,
                           "load_average": load, "threads": {}}
        for threads in args.threads:
            floor_ms = facts["search_flops"] / (floors[threads] * 1e9) * 1e3
            per = entry["threads"][threads] = {"matmul_gflops": floors[threads], "floor_ms": floor_ms, "ms": {}}
            for name in (n for n in calls if n != "matmul"):
                v = np.asarray(times[name, threads])
                stats = {"p50": float(np.percentile(v, 50)), "p10": float(np.percentile(v, 10)), "min": float(v.min())}
                per["ms"][name] = stats
                rows.append([threads, name, stats["p50"], stats["p10"], stats["min"], stats["p50"] / floor_ms,
                             stats["min"] / floor_ms])
        flops = facts["search_flops"] / 1e6
        floor_text = ", ".join(f"{t} thread(s): {floors[t]:.1f} GFLOP/s, floor {entry['threads'][t]['floor_ms']:.2f} ms"
                               for t in args.threads)
        print(f"\n{loaded.name}: search branch {flops:.1f} MFLOP"
              + (f", tiny crop {facts['tiny_crop_flops'] / 1e6:.2f} MFLOP" if "tiny_crop_flops" in facts else "")
              + f"; matmul {floor_text}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
        print(f"the torch backend runs it on {facts['backend_threads']} thread(s); "
              f"TorchScript trace+freeze {facts['torchscript_prepare_s']:.2f} s; max abs diff to the backend's maps: "
              + ", ".join(f"{k} {v:.1e}" for k, v in facts["max_abs_diff"].items())
              + (f", torch.compile {facts['compile_s']:.1f} s" if "compile_s" in facts else ""))
        print(format_table(["threads", "variant", "p50 ms", "p10 ms", "min ms", "p50 / floor", "min / floor"], rows))
        results[key] = entry
    if args.json:
        write_json_atomic(args.json, {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                                      "models": results})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
