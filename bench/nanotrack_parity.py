"""NanoTrack v2, same weights, same frames: this project's tracker against OpenCV's ``cv2.TrackerNano``.

Over every sequence of a real UAV dataset (default ``../shared/data/uav_real``) it runs, frame by
frame in turn so load hits them alike:

- ``ours``: the released ``nanotrackv2.pth`` exported to ONNX, on ONNX Runtime fp32 (the tracker
  restates the authors' ``NanoTracker``; ``test/test_nanotrack.py`` checks it decision by decision);
- ``ours-int8``: the same export quantised to int8, calibrated on the real night frames of
  ``../shared/data/night_frames`` (``--calib``);
- ``opencv``: ``cv2.TrackerNano`` on the authors' v2 ONNX pair, the networks OpenCV documents;
- ``ours+rgb`` and ``ours+opencv-values``: our tracker with one of OpenCV's departures from the
  authors' tracker each (RGB crops; OpenCV's penalty_k / window_influence / lr), to size them.
  ``OPENCV_DEPARTURES`` lists every departure read in OpenCV's ``tracker_nano.cpp``.

Then ``ours-torch`` (PyTorch CPU) runs alone over the same frames, since its OpenMP threads would
slow whichever tracker came next. Per sequence: success AUC of each, mean IoU between the
trajectories, per-frame ``update`` time. Every tracker runs on the same number of threads
(``--threads``, default 2). Prints tables, writes JSON and a per-sequence AUC plot::

    python bench/nanotrack_parity.py --json bench_nanotrack_parity.json --plot nanotrack_parity.png
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlkd_tracker.backends import create_tracker  # noqa: E402
from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_tracker.tracker import SiameseTracker  # noqa: E402
from mlkd_training.data.readers import open_dataset  # noqa: E402
from mlkd_training.evaluation.metrics import iou, sequence_curves  # noqa: E402
from mlkd_training.evaluation.peers import OpenCVTracker  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
OPENCV_VALUES = {"penalty_k": 0.055, "window_influence": 0.455, "lr": 0.37}  # tracker_nano.cpp trackerConfig
OPENCV_DEPARTURES = [
    "crops are fed as RGB (blobFromImage swapRB=true); the authors' tracker and training feed BGR",
    "penalty_k 0.055, window_influence 0.455, lr 0.37 hard-coded; the v2 config has 0.150, 0.490, 0.385",
    "scale penalty divides by sizeCal(targetPos) (the target's position), not by the target's size, in the "
    "published source (4.x); the scores OpenCV 5.1 reports (about 0.99 at the chosen point) fit a penalty "
    "against the size, so this one may be fixed in the build measured here",
    "cosine window is createHanningWindow's sqrt(w_i * w_j), not np.hanning's outer product w_i * w_j",
    "box centre x + w/2 (authors: x + (w-1)/2); crop sides truncated (int) where the authors round; "
    "search side 2 * s_z (integer 255/127) instead of 2.008 * s_z; w+h truncated before the context",
    "padding colour is the mean of the current frame (recomputed every frame), not of the first frame",
    "reported boxes are truncated to integers",
]


class RGBCrops:
    """A backend wrapper feeding the network RGB crops (OpenCV's swapRB)."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name + "+rgb"

    def template(self, crop):
        return self.inner.template(np.ascontiguousarray(crop[:, :, ::-1]))

    def search(self, crop, kernels):
        return self.inner.search(np.ascontiguousarray(crop[:, :, ::-1]), kernels)


def _box(result):
    return result.box_xywh if hasattr(result, "box_xywh") else result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED / "uav_real"), help="UAV123-style dataset (videos or frames)")
    p.add_argument("--weights", default=str(SHARED / "nanotrack" / "v2"),
                   help="folder with nanotrackv2.pth and the authors' v2 ONNX pair")
    p.add_argument("--sequences", metavar="A,B,...", help="only these sequences")
    p.add_argument("--calib", default=str(SHARED / "night_frames"), help="int8 calibration frames (folder or video)")
    p.add_argument("--threads", type=int, default=2, help="threads of every tracker (OpenCV, ONNX Runtime, torch)")
    p.add_argument("--no-torch", action="store_true", help="skip the separate PyTorch pass")
    p.add_argument("--json", default="bench_nanotrack_parity.json")
    p.add_argument("--plot", default=None, help="per-sequence success AUC plot (PNG)")
    args = p.parse_args()

    import torch
    from mlkd_training.export.int8 import quantize_int8, record_calibration_feeds, source_sequences
    from mlkd_training.export.onnx_export import export_model

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    weights = Path(args.weights)
    wanted = [s.strip() for s in args.sequences.split(",")] if args.sequences else None
    dataset = open_dataset(args.data, sequences=wanted)
    work = Path(tempfile.mkdtemp(prefix="nanotrack-parity-"))
    fp32 = export_model(weights / "nanotrackv2.pth", work / "nanotrackv2")["search"]
    quantize_int8(fp32, record_calibration_feeds(fp32, source_sequences(args.calib, 16, 5), quiet=True))

    def ours(overrides=None, precision="fp32"):
        return create_tracker(fp32, "cpu", precision, overrides=overrides)[0]

    variants = {
        "ours": ours,
        "ours-int8": lambda: ours(precision="int8"),
        "opencv": lambda: OpenCVTracker("nano:" + str(weights)),
        "ours+rgb": lambda: SiameseTracker(RGBCrops(ours().backend), ours().config),
        "ours+opencv-values": lambda: ours(OPENCV_VALUES),
    }
    trackers = {name: make() for name, make in variants.items()}
    torch_tracker = None if args.no_torch else create_tracker(weights / "nanotrackv2.pth", "cpu", "fp32")[0]
    order = list(trackers)
    per_seq, times = {}, {name: [] for name in [*order, "ours-torch"]}
    from tqdm import tqdm

    for seq in tqdm(dataset, desc="sequences", unit="seq"):
        frames = list(seq.frames())
        boxes = {name: [seq.init_box] for name in [*order, "ours-torch"]}
        for name in order:
            trackers[name].init(frames[0], seq.init_box)
        for i, frame in enumerate(frames[1:]):
            for name in order[i % len(order):] + order[:i % len(order)]:  # rotate who goes first
                t0 = time.perf_counter()
                result = trackers[name].update(frame)
                times[name].append((time.perf_counter() - t0) * 1e3)
                boxes[name].append(_box(result))
        if torch_tracker is not None:
            torch_tracker.init(frames[0], seq.init_box)
            for frame in frames[1:]:
                t0 = time.perf_counter()
                boxes["ours-torch"].append(torch_tracker.update(frame).box_xywh)
                times["ours-torch"].append((time.perf_counter() - t0) * 1e3)
        row = {name: float(sequence_curves(seq.gt, np.array(b)).success.mean())
               for name, b in boxes.items() if len(b) == len(frames)}
        row["iou ours vs opencv"] = float(np.nanmean(iou(np.array(boxes["ours"]), np.array(boxes["opencv"]))))
        row["frames"] = len(frames)
        per_seq[seq.name] = row

    names = [n for n in [*order, "ours-torch"] if times[n]]
    rows = [[s, r["ours"], r["opencv"], r["ours"] - r["opencv"], r["ours+rgb"], r["ours+opencv-values"],
             r["iou ours vs opencv"]] for s, r in per_seq.items()]
    print(format_table(["sequence", "AUC ours", "AUC OpenCV", "diff", "ours+rgb", "ours+opencv-values",
                        "IoU ours/OpenCV"], rows, ".3f"))
    mean = {n: float(np.mean([r[n] for r in per_seq.values()])) for n in names}
    diffs = np.array([r["ours"] - r["opencv"] for r in per_seq.values()])
    summary = [[n, mean[n], float(np.percentile(times[n], 50)), float(np.percentile(times[n], 90))] for n in names]
    print(format_table(["tracker", "mean success AUC", "update p50 ms", "p90 ms"], summary, ".3f"))
    print(f"ours - OpenCV: mean {diffs.mean():+.3f}, largest per sequence {np.abs(diffs).max():.3f}; "
          f"trajectory IoU ours/OpenCV {np.mean([r['iou ours vs opencv'] for r in per_seq.values()]):.3f}")
    print("OpenCV's departures from the authors' tracker:\n- " + "\n- ".join(OPENCV_DEPARTURES))
    report = {"dataset": dataset.name, "sequences": len(per_seq), "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "cv2": cv2.__version__,
              "mean_auc": mean, "update_ms": {n: {"p50": float(np.percentile(times[n], 50)),
                                                   "p90": float(np.percentile(times[n], 90))} for n in names},
              "per_sequence": per_seq, "opencv_departures": OPENCV_DEPARTURES}
    write_json_atomic(args.json, report)
    print(f"JSON: {args.json}")
    if args.plot:
        from mlkd_training.evaluation.plots import plot_per_sequence

        plot_per_sequence({n: [per_seq[s][n] for s in per_seq] for n in ("ours", "opencv")},
                          list(per_seq), Path(args.plot), "success AUC",
                          "NanoTrack v2 on real UAV footage: this project vs cv2.TrackerNano")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
