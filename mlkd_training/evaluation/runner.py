"""``mlkd test``: run one tracker over every sequence of a dataset, one-pass (OPE), resumable.

A tracker is named by a spec: a model file (any backend :func:`mlkd_tracker.backends.create_tracker`
opens) or an OpenCV peer (``csrt``, ``kcf``, ``mosse`` ..., ``nano:BACKBONE.onnx,HEAD.onnx``). Each sequence
starts from its first ground-truth box; the result file holds that box and then one tracked box
per frame. Timing follows pysot: only ``init`` and ``update`` calls are timed, frame decoding is
not. Finished sequences (a result file with one line per frame) are skipped on a re-run.

OpenCV's thread pool (the OpenCV peers, TrackerNano's networks, crops, video decoding) has
``TrackerSpec.threads`` threads in each tracking process: by default OpenCV's own choice (one
per core) in a single process, 1 in each of several workers; PyTorch models get the same number
of intra-op threads in each worker (several OpenMP pools on the same cores wait on each other).
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mlkd_tracker.errors import InputError
from mlkd_training.data.sequence import Dataset, Sequence
from mlkd_training.evaluation.peers import OpenCVTracker, is_peer_spec, peer_result_name
from mlkd_training.evaluation.results import is_complete, read_speed, tracker_dir, write_result, write_speed


@dataclass(frozen=True)
class TrackerSpec:
    """What to build in each worker: a model file or a peer name, plus backend options."""

    spec: str
    name: str
    device: str = "auto"
    precision: str = "auto"
    overrides: Mapping[str, Any] = field(default_factory=dict)
    threads: int | None = None  # OpenCV threads per tracking process (None: see the module docstring)

    @property
    def is_peer(self) -> bool:
        return is_peer_spec(self.spec)

    def build(self):
        """A fresh tracker with ``init(frame, box)`` / ``update(frame) -> TrackResult``."""
        if self.is_peer:
            if self.overrides:
                raise InputError(f"--set applies to model trackers, not to the OpenCV tracker {self.spec}")
            return OpenCVTracker(self.spec)
        from mlkd_tracker.backends import create_tracker

        return create_tracker(self.spec, self.device, self.precision, dict(self.overrides))[0]


def default_tracker_name(spec: str) -> str:
    """A peer's result name (``csrt``, ``opencv-nano``), the file stem for a model file (``models/student.pth`` -> ``student``)."""
    return peer_result_name(spec) if is_peer_spec(spec) else Path(spec).stem


def track_sequence(tracker, seq: Sequence) -> tuple[list[tuple[float, ...]], float]:
    """One-pass run: boxes for every frame (the first is the init box) and the seconds spent tracking."""
    init_box = seq.init_box
    frames = seq.frames()  # in order: a video is decoded once
    t0 = time.perf_counter()
    tracker.init(next(frames), init_box)
    seconds = time.perf_counter() - t0
    boxes = [init_box]
    for frame in frames:
        t0 = time.perf_counter()
        result = tracker.update(frame)
        seconds += time.perf_counter() - t0
        boxes.append(result.box_xywh)
    return boxes, seconds


@dataclass
class RunSummary:
    """What one ``run_tracker`` call did."""

    tracker: str
    folder: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float | None:
        return self.frames / self.seconds if self.seconds > 0 else None


_worker_tracker: Any = None


def _worker_init(spec: TrackerSpec) -> None:
    global _worker_tracker
    import cv2

    cv2.setNumThreads(spec.threads or 1)
    _worker_tracker = spec.build()
    if "torch" in sys.modules:  # a PyTorch model: one OpenMP pool per worker, sized like OpenCV's
        sys.modules["torch"].set_num_threads(spec.threads or 1)


def _worker_run(seq: Sequence) -> tuple[str, list, float]:
    boxes, seconds = track_sequence(_worker_tracker, seq)
    return seq.name, boxes, seconds


def run_tracker(dataset: Dataset, spec: TrackerSpec, results_root: str | Path = "results", workers: int = 1,
                resume: bool = True, progress: bool = True) -> RunSummary:
    """Track every sequence of ``dataset`` with ``spec``; write results and ``speed.json``."""
    import cv2
    from tqdm import tqdm

    folder = tracker_dir(results_root, dataset.name, spec.name)
    summary = RunSummary(spec.name, folder)
    todo = []
    for seq in dataset:
        if resume and is_complete(folder, seq.name, len(seq)):
            summary.skipped.append(seq.name)
        else:
            todo.append(seq)
    if not todo:
        return summary
    for seq in todo:
        _ = seq.init_box  # raises before any work when a sequence has no valid first box
    speed = read_speed(folder) if resume else {}
    threads = cv2.getNumThreads()
    if spec.threads:
        cv2.setNumThreads(spec.threads)
    try:
        tracker = spec.build()  # a bad model file fails here, before any output
        with tqdm(total=sum(len(s) for s in todo), unit="frame", desc=f"{spec.name} on {dataset.name}",
                  disable=not progress) as bar:

            def record(name: str, boxes: list, seconds: float) -> None:
                write_result(folder, name, boxes)
                speed[name] = {"frames": len(boxes), "seconds": seconds,
                               "fps": len(boxes) / seconds if seconds else None}
                write_speed(folder, speed)
                summary.ran.append(name)
                summary.frames += len(boxes)
                summary.seconds += seconds
                bar.update(len(boxes))

            if workers <= 1:
                for seq in todo:
                    record(seq.name, *track_sequence(tracker, seq))
            else:
                with mp.get_context("spawn").Pool(workers, _worker_init, (spec,)) as pool:
                    for name, boxes, seconds in pool.imap_unordered(_worker_run, todo):
                        record(name, boxes, seconds)
    finally:
        cv2.setNumThreads(threads)
    return summary
