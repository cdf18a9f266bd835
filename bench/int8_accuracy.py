"""Tracking accuracy of the int8 CPU model against fp32: one-pass success AUC on a night set.

Tracks every sequence with the fp32 ONNX export and with its int8 export (ONNX Runtime, CPU) and
prints success AUC, precision at 20 px and FPS per model, the AUC change, a success plot (PNG)
and JSON. The night set is generated (darkened photos with a moving target and exact ground
truth) unless ``--dataset`` names a benchmark folder.

    python bench/int8_accuracy.py --model models/mlkd_track.pth --json int8_accuracy.json --plot int8.png
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.backends import create_tracker  # noqa: E402
from mlkd_tracker.backends.onnx_backend import resolve_paths  # noqa: E402
from mlkd_tracker.errors import InputError, ModelFileError  # noqa: E402
from mlkd_tracker.report import format_table, write_bytes_atomic, write_json_atomic  # noqa: E402
from mlkd_training.export.int8 import (generated_night_clips, generated_night_sequences,  # noqa: E402
                                       quantize_int8, record_calibration_feeds)

THRESHOLDS = np.arange(0, 1.05, 0.05)  # OTB / pysot-toolkit success thresholds


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) ``x, y, w, h`` arrays."""
    left, top = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def success_curve(gt: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Fraction of frames (with valid ground truth) whose IoU exceeds each threshold (strict >)."""
    valid = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    overlaps = iou(gt[valid], boxes[valid])
    return np.array([(overlaps > t).mean() for t in THRESHOLDS])


def precision_at(gt: np.ndarray, boxes: np.ndarray, pixels: float = 20.0) -> float:
    """Fraction of frames whose box centre lies within ``pixels`` of the ground-truth centre."""
    valid = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    centre = lambda b: b[:, :2] + b[:, 2:] / 2  # noqa: E731 - same convention for both boxes
    return float((np.linalg.norm(centre(gt[valid]) - centre(boxes[valid]), axis=1) <= pixels).mean())


def night_set(args: argparse.Namespace):
    """``(name, frames, gt)`` per sequence: a benchmark folder (needs the dataset readers) or generated clips."""
    if args.dataset:
        try:
            from mlkd_training.data.readers import open_dataset
        except ImportError:
            raise InputError("--dataset needs the benchmark readers (mlkd_training.data.readers); "
                             "use the generated set instead") from None
        for seq in open_dataset(args.dataset):
            yield seq.name, list(seq.frames()), seq.gt
        return
    for i, (frames, gt) in enumerate(generated_night_clips(args.sequences, args.frames, seed=args.seed)):
        yield f"night{i:03d}", frames, gt


def fp32_and_int8(model: str | None, folder: Path, calib_clips: int) -> tuple[Path, Path]:
    """The fp32 search graph and its int8 sibling, exporting / quantising into ``folder`` what is missing."""
    if model is None or not model.endswith(".onnx"):
        from mlkd_training.export.onnx_export import export_model
        fp32 = export_model(model, folder / "model", allow_random_weights=model is None)["search"]
    else:
        fp32 = Path(model)
    try:
        return fp32, resolve_paths(fp32, "int8")["search"]
    except ModelFileError:
        calibration = record_calibration_feeds(fp32, generated_night_sequences(calib_clips, seed=10_000))
        return fp32, quantize_int8(fp32, calibration, out_prefix=folder / "model.int8")["search"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="fp32 .onnx export, checkpoint or model YAML (default: the bundled MLKD-Track)")
    p.add_argument("--dataset", help="benchmark folder (UAVDark135, NAT2021, ... layouts) instead of generated clips")
    p.add_argument("--sequences", type=int, default=20, help="generated sequences")
    p.add_argument("--frames", type=int, default=60, help="frames per generated sequence")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated set (calibration uses another)")
    p.add_argument("--calib-clips", type=int, default=16, help="calibration clips when quantising here")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--plot", metavar="PNG", help="write the success plot")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mlkd-int8-accuracy-") as tmp:
        fp32, int8 = fp32_and_int8(args.model, Path(tmp), args.calib_clips)
        trackers = {"fp32": create_tracker(fp32, "cpu")[0], "int8": create_tracker(int8, "cpu")[0]}
        curves = {k: [] for k in trackers}
        precisions = {k: [] for k in trackers}
        seconds = {k: 0.0 for k in trackers}
        agreement, frames_total, names = [], 0, []
        for name, frames, gt in night_set(args):
            names.append(name)
            boxes = {}
            for label, tracker in trackers.items():
                tracker.init(frames[0], gt[0])
                out = [gt[0]]
                t0 = time.perf_counter()
                out += [tracker.update(f).box_xywh for f in frames[1:]]
                seconds[label] += time.perf_counter() - t0
                boxes[label] = np.asarray(out, np.float64)
                curves[label].append(success_curve(gt, boxes[label]))
                precisions[label].append(precision_at(gt, boxes[label]))
            agreement.append(float(iou(boxes["fp32"], boxes["int8"]).mean()))
            frames_total += len(frames) - 1
            print(f"{name}: AUC fp32 {curves['fp32'][-1].mean():.3f}  int8 {curves['int8'][-1].mean():.3f}", flush=True)
    if not names:
        raise InputError("the night set is empty")
    results = {}
    for label in trackers:
        curve = np.mean(curves[label], axis=0)  # per-sequence curves averaged, as OPE toolkits do
        results[label] = {"success_auc": float(curve.mean()), "precision_20px": float(np.mean(precisions[label])),
                          "fps": frames_total / seconds[label], "success_curve": curve.tolist()}
    delta = results["int8"]["success_auc"] - results["fp32"]["success_auc"]
    print(format_table(["model", "success AUC", "precision@20", "FPS"],
                       [[k, v["success_auc"], v["precision_20px"], v["fps"]] for k, v in results.items()], ".3f"))
    print(f"AUC change int8 - fp32: {delta:+.4f} over {len(names)} sequences, {frames_total} frames; "
          f"mean IoU between fp32 and int8 boxes: {np.mean(agreement):.3f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 4))
        for label, r in results.items():
            ax.plot(THRESHOLDS, r["success_curve"], label=f"{label} [{r['success_auc']:.3f}]")
        ax.set(xlabel="overlap threshold", ylabel="success rate", title="int8 vs fp32, night set", xlim=(0, 1),
               ylim=(0, 1))
        ax.legend(loc="lower left")
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=120)
        write_bytes_atomic(args.plot, png.getvalue())
        print(f"plot: {args.plot}")
    if args.json:
        write_json_atomic(args.json, {"fp32": str(fp32), "int8": str(int8), "sequences": names,
                                      "frames": frames_total, "auc_change": delta,
                                      "mean_iou_fp32_vs_int8": float(np.mean(agreement)), "results": results})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
