"""The results layout ``mlkd test`` writes and ``mlkd eval`` reads (pysot's):

``<results>/<dataset>/<tracker>/<seq>.txt``: one ``x,y,w,h`` line per frame, the first being the
initial box; ``<results>/<dataset>/<tracker>/speed.json``: ``{seq: {frames, seconds, fps}}``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mlkd_tracker.errors import SourceError
from mlkd_tracker.report import write_json_atomic, write_text_atomic
from mlkd_training.data.readers import format_boxes, read_boxes
from mlkd_training.data.sequence import Dataset
from mlkd_training.evaluation.metrics import TrackerEvaluation, evaluate_tracker

SPEED_FILE = "speed.json"


def tracker_dir(results_root: str | os.PathLike, dataset: str, tracker: str) -> Path:
    """``<results>/<dataset>/<tracker>``."""
    return Path(results_root) / dataset / tracker


def write_result(folder: Path, seq: str, boxes) -> Path:
    """Write one sequence's boxes atomically."""
    return write_text_atomic(folder / f"{seq}.txt", format_boxes(boxes))


def is_complete(folder: Path, seq: str, frames: int) -> bool:
    """True when ``<seq>.txt`` exists with one line per frame (a finished run)."""
    path = folder / f"{seq}.txt"
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip()) == frames


def read_speed(folder: Path) -> dict[str, dict[str, float]]:
    path = folder / SPEED_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SourceError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def write_speed(folder: Path, speed: dict[str, dict[str, float]]) -> None:
    write_json_atomic(folder / SPEED_FILE, speed)


def mean_fps(speed: dict[str, dict[str, float]], sequences: list[str] | None = None) -> float | None:
    """Frames over seconds summed across sequences (None without timings)."""
    entries = [v for k, v in speed.items() if sequences is None or k in sequences]
    seconds = sum(float(v.get("seconds", 0.0)) for v in entries)
    return sum(int(v.get("frames", 0)) for v in entries) / seconds if seconds > 0 else None


def find_trackers(dataset_results: Path, dataset: Dataset) -> list[str]:
    """Tracker folders under ``<results>/<dataset>`` holding a result file of at least one sequence."""
    if not dataset_results.is_dir():
        raise SourceError(f"results folder not found: {dataset_results}")
    names = {s.name for s in dataset}
    return sorted(d.name for d in dataset_results.iterdir()
                  if d.is_dir() and any((d / f"{n}.txt").is_file() for n in names))


def load_tracker_results(folder: Path, dataset: Dataset) -> dict[str, np.ndarray]:
    """Every sequence's boxes for one tracker; a missing or short file is an error naming it."""
    missing = [s.name for s in dataset if not (folder / f"{s.name}.txt").is_file()]
    if missing:
        raise SourceError(f"{folder}: no results for {len(missing)} of {len(dataset)} sequences "
                          f"({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); run mlkd test first")
    out = {}
    for seq in dataset:
        boxes = read_boxes(folder / f"{seq.name}.txt")
        if len(boxes) != len(seq):
            raise SourceError(f"{folder / (seq.name + '.txt')}: {len(boxes)} boxes for {len(seq)} frames")
        out[seq.name] = boxes
    return out


def attribute_sequences(dataset: Dataset) -> dict[str, list[str]]:
    """attribute -> the sequences that have it (per-frame flags: any frame flagged); unused ones left out."""
    out: dict[str, list[str]] = {}
    for attr in dataset.attribute_names:
        names = [s.name for s in dataset if bool(np.any(s.attrs.get(attr, False)))]
        if names:
            out[attr] = names
    return out


def evaluate_results(dataset: Dataset, dataset_results: Path, trackers: list[str] | None = None,
                     protocol: str = "pysot") -> list[TrackerEvaluation]:
    """Evaluate the trackers under ``<results>/<dataset>`` (all by default), best success AUC first."""
    names = trackers or find_trackers(dataset_results, dataset)
    if not names:
        raise SourceError(f"{dataset_results}: no tracker folder holds results for {dataset.name}")
    gts = {s.name: s.gt for s in dataset}
    absents = {s.name: s.absent for s in dataset}
    attributes = attribute_sequences(dataset)
    evaluations = []
    for name in names:
        folder = dataset_results / name
        if not folder.is_dir():
            raise SourceError(f"no results folder for tracker {name}: {folder}")
        preds = load_tracker_results(folder, dataset)
        evaluations.append(evaluate_tracker(name, gts, preds, absents, attributes, protocol,
                                            mean_fps(read_speed(folder), list(gts))))
    return sorted(evaluations, key=lambda ev: -np.nan_to_num(ev.overall.auc, nan=-1.0))
