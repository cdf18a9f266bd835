"""Reading a video sequence: in order, out of order, and as training canvases (table + JSON).

On one video of a dataset (default: the 500-frame ``bike1`` of ``../shared/data/uav_real``):

- in order: ``Sequence.frames()``, one decode per frame (``mlkd test``, ``mlkd prepare``);
- out of order: ``Sequence.frame(i)`` for frames in random order, the frame store decoding
  forward or seeking to a keyframe, whichever is nearer;
- the same without a store that keeps its place: reopen the video and decode up to frame i,
  which makes a full random pass quadratic;
- training canvases (``FrameCanvases``): the first canvas of a video decodes it once, in order,
  and keeps its canvases as JPEG in memory; later canvases only decode that JPEG.

Every out-of-order frame is checked against the in-order decode. Usage::

    python bench/video_frames.py --json bench_video_frames.json
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.data.readers import open_dataset  # noqa: E402
from mlkd_training.pairs import FrameCanvases, PairConfig  # noqa: E402


def reopen_and_decode_to(path: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    for _ in range(index):
        capture.grab()
    ok, frame = capture.read()
    capture.release()
    return frame


def measure(dataset_path: str, name: str, samples: int, seed: int = 0) -> dict:
    dataset = open_dataset(dataset_path, sequences=[name])
    seq = dataset[0]
    if seq.store.cheap_random_access:
        raise SystemExit(f"{name} is stored as frame files, not a video")
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    reference = list(seq.frames())
    in_order = (time.perf_counter() - t0) / len(reference)
    order = rng.permutation(len(seq))[:samples]
    t0 = time.perf_counter()
    exact = all(np.array_equal(seq.frame(int(i)), reference[i]) for i in order)
    store = (time.perf_counter() - t0) / len(order)
    seq.store.close()
    t0 = time.perf_counter()
    exact &= all(np.array_equal(reopen_and_decode_to(seq.store.path, int(i)), reference[i]) for i in order[:samples // 3])
    reopen = (time.perf_counter() - t0) / len(order[:samples // 3])
    canvases = FrameCanvases(dataset, PairConfig())
    frames = canvases.video_frames[0]
    t0 = time.perf_counter()
    canvases.canvas(0, int(frames[0]))
    first_pass = time.perf_counter() - t0
    picks = rng.choice(frames, samples)
    t0 = time.perf_counter()
    for i in picks:
        canvases.canvas(0, int(i))
    cached = (time.perf_counter() - t0) / len(picks)
    return {"sequence": name, "frames": len(seq), "size": list(reference[0].shape[1::-1]), "exact": bool(exact),
            "in_order_ms": in_order * 1e3, "random_store_ms": store * 1e3, "random_reopen_ms": reopen * 1e3,
            "canvas_first_pass_s": first_pass, "canvas_first_pass_ms_per_frame": first_pass / len(frames) * 1e3,
            "canvas_after_ms": cached * 1e3, "canvas_memory_mb": canvases._decoded_bytes / 2 ** 20,
            "samples": samples, "load": os.getloadavg()[0], "cpu": platform.processor() or platform.machine(),
            "opencv": cv2.__version__, "opencv_threads": cv2.getNumThreads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(ROOT.parent / "shared" / "data" / "uav_real"))
    p.add_argument("--sequence", default="bike1")
    p.add_argument("--samples", type=int, default=60, help="frames read out of order")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    r = measure(args.dataset, args.sequence, args.samples)
    print(f"{r['sequence']}: {r['frames']} frames {r['size'][0]}x{r['size'][1]}, OpenCV {r['opencv']} "
          f"({r['opencv_threads']} threads), load {r['load']:.1f}; out-of-order frames equal the in-order decode: "
          f"{r['exact']}")
    print(format_table(["read", "ms per frame"], [
        ["in order (Sequence.frames)", r["in_order_ms"]],
        ["random order, frame store (forward or keyframe seek)", r["random_store_ms"]],
        ["random order, reopen and decode to the frame", r["random_reopen_ms"]],
        ["training canvas, first of its video (decodes it all)", r["canvas_first_pass_ms_per_frame"]],
        ["training canvas, afterwards (JPEG in memory)", r["canvas_after_ms"]]], ".2f"))
    print(f"canvases kept: {r['canvas_memory_mb']:.1f} MiB for {r['frames']} frames")
    if args.json:
        write_json_atomic(args.json, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
