"""``mlkd test``: run trackers (model files or OpenCV peers) over a dataset into pysot result files."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset folder (UAVDark135, UAVDark70, NAT2021, DarkTrack2021, UAV123-style, "
                                   "GOT-10k, LaSOT, a synthetic set) or a pysot JSON")
    p.add_argument("-t", "--tracker", dest="trackers", action="append", required=True, metavar="SPEC",
                   help="a model file (.pth/.safetensors/.onnx/.engine/.yaml) or an OpenCV peer: csrt, kcf, "
                        "mosse, mil, medianflow, or nano:BACKBONE.onnx,HEAD.onnx (cv2.TrackerNano with the "
                        "NanoTrack authors' v2 networks; or nano:FOLDER holding both) (repeatable)")
    p.add_argument("--name", help="result folder name for a single tracker (default: the peer name, opencv-nano "
                                  "for TrackerNano, or the model's file stem)")
    p.add_argument("--kind", default="auto", help="dataset layout: auto, uav (UAVDark135, NAT2021, ...), got10k, "
                                                  "lasot or pysot")
    p.add_argument("--sequences", metavar="A,B,...", help="only these sequences")
    p.add_argument("--results", default="results", help="results root: writes <results>/<dataset>/<tracker>/<seq>.txt")
    p.add_argument("--workers", type=int, default=1, help="sequences tracked in parallel processes")
    p.add_argument("--threads", type=int, help="OpenCV threads in each tracking process (cv2.setNumThreads: the "
                                               "OpenCV peers, TrackerNano's networks, crops, decoding); default: "
                                               "one per core with one process, 1 per worker with --workers > 1")
    p.add_argument("--force", action="store_true", help="re-run sequences that already have results")
    p.add_argument("--device", default="auto", help="model trackers: auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", help="model trackers: auto, fp32 or fp16")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tracking parameter of the model trackers, e.g. --set penalty_k=0.2")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mlkd_tracker.cli.track import parse_overrides
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.report import format_table
    from mlkd_training.data.readers import open_dataset
    from mlkd_training.evaluation.runner import TrackerSpec, default_tracker_name, run_tracker

    if args.name and len(args.trackers) > 1:
        raise InputError("--name names a single tracker; give one --tracker with it")
    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        raise InputError(f"--workers and --threads must be at least 1, got {args.workers} and {args.threads}")
    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    dataset = open_dataset(args.dataset, args.kind, sequences)
    overrides = parse_overrides(args.overrides)
    rows = []
    for spec_text in args.trackers:
        spec = TrackerSpec(spec_text, args.name or default_tracker_name(spec_text), args.device, args.precision,
                           overrides, args.threads)
        summary = run_tracker(dataset, spec, args.results, args.workers, not args.force, not args.quiet)
        rows.append([spec.name, len(summary.ran), len(summary.skipped), summary.frames,
                     summary.fps if summary.fps is not None else "-", str(summary.folder)])
    print(f"dataset: {dataset.name} ({len(dataset)} sequences)")
    print(format_table(["tracker", "run", "skipped (done)", "frames", "FPS", "results"], rows, ".1f"))
    return 0
