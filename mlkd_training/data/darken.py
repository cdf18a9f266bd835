"""Night versions of real daytime footage through the low-light camera model (``mlkd darken``).

One clip (a video or a frame folder) gets one night camera drawn from a random generator and
calibrated on its first frame. A dataset in the ``anno/`` + ``data_seq/`` layout becomes a night
dataset in the same layout: each sequence's camera is drawn from ``(seed, sequence name)``, so a
sequence's night version does not depend on which other sequences are processed, in what order
or in how many runs. Each sequence is written under ``<out>/.partial/`` and moved into
``data_seq/`` when complete, then its box file (and attribute flags) are written and its camera
recorded in ``<out>/darken.json``; a re-run skips finished sequences and redoes the others.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from mlkd_tracker.errors import InputError, SourceError
from mlkd_tracker.frames import as_bgr_frame
from mlkd_tracker.report import write_json_atomic, write_text_atomic
from mlkd_training.data.degrade import NightCamera, NightRanges, decode_jpeg, encode_jpeg, sample_night_params
from mlkd_training.data.readers import format_boxes
from mlkd_training.data.sequence import Dataset

DARKEN_INDEX = "darken.json"
DARKEN_FORMAT = "mlkd-darken/1"
STORES = ("video", "jpeg")  # how a night sequence is stored: data_seq/<seq>.mp4 or data_seq/<seq>/000001.jpg ...
DEFAULT_FPS = 30.0  # for videos made from frame folders, which carry no frame rate


def night_clip(frames: Iterable[np.ndarray], rng: np.random.Generator, ranges: NightRanges = NightRanges(),
               no_lights: bool = False, source: str = "input") -> tuple[NightCamera, Iterator[tuple[bytes, float]]]:
    """Draw a night camera for a clip, calibrated on its first frame; then ``(JPEG, mean grey)`` per frame.

    The mean grey level (0..255) is that of the camera's output before JPEG compression.
    """
    frames = iter(frames)
    try:
        first = as_bgr_frame(next(frames))
    except StopIteration:
        raise SourceError(f"{source} has no frames") from None
    height, width = first.shape[:2]
    params = sample_night_params(rng, ranges, width * height / 1e6)
    if no_lights:
        params = dataclasses.replace(params, lamps=(), lights=(), ambient_share=1.0)
    camera = NightCamera(params, width, height, seed=int(rng.integers(2 ** 31)))
    camera.calibrate(first)

    def night() -> Iterator[tuple[bytes, float]]:
        for index, frame in enumerate(itertools.chain([first], frames)):
            frame = as_bgr_frame(frame)
            if frame.shape[:2] != (height, width):
                raise SourceError(f"{source}: frame {index + 1} is {frame.shape[1]}x{frame.shape[0]}, "
                                  f"expected {width}x{height} like the first")
            captured = camera.capture(camera.expose(frame), rng)
            yield encode_jpeg(captured, params.jpeg_quality), float(cv2.cvtColor(captured, cv2.COLOR_BGR2GRAY).mean())

    return camera, night()


class NightWriter:
    """Night frames (JPEG bytes) into a JPEG folder or a video, which appears under ``path`` only when complete."""

    def __init__(self, path: Path, store: str, fps: float, size: tuple[int, int], staging: Path | None = None):
        from mlkd_tracker.cli.track import VideoOut

        self.path, self.store = Path(path), store
        staging = staging or self.path.parent
        self.partial = staging / (self.path.name if store == "video" else self.path.name + ".partial")
        if store == "jpeg":
            shutil.rmtree(self.partial, ignore_errors=True)  # left by an interrupted run
            self.partial.mkdir(parents=True)
            self.video = None
        else:
            self.video = VideoOut(str(self.partial), fps, size)
        self.count = 0

    def write(self, jpeg: bytes) -> None:
        self.count += 1
        if self.video is not None:
            self.video.write(decode_jpeg(jpeg))
        else:
            (self.partial / f"{self.count:06d}.jpg").write_bytes(jpeg)

    def commit(self) -> None:
        """Move the finished frames to ``path`` (replacing what an interrupted run left there)."""
        if self.video is not None:
            self.video.close()
        if self.path.is_dir():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.partial, self.path)


def sequence_rng(seed: int, name: str) -> np.random.Generator:
    """The random generator of one sequence's night camera and noise: a function of the seed and the name only."""
    return np.random.default_rng(sequence_seed(seed, name))


def sequence_seed(seed: int, name: str) -> list[int]:
    return [int(seed), zlib.crc32(name.encode("utf-8"))]


@dataclass
class DarkenSummary:
    """What ``darken_dataset`` did."""

    out_dir: Path
    darkened: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    frames: int = 0


def darken_dataset(dataset: Dataset, out_dir: str | os.PathLike, seed: int = 0, ranges: NightRanges = NightRanges(),
                   no_lights: bool = False, store: str | None = None, max_frames: int | None = None,
                   progress: bool = True) -> DarkenSummary:
    """Write the night version of ``dataset`` to ``out_dir`` in the ``anno/`` + ``data_seq/`` layout (resumable).

    ``store``: ``video`` (``data_seq/<seq>.mp4``), ``jpeg`` (``data_seq/<seq>/*.jpg``, the camera's
    own JPEG bytes), or None for the kind each sequence has in ``dataset``. ``max_frames`` cuts
    every sequence (and its box file) to its first frames.
    """
    from tqdm import tqdm

    if store is not None and store not in STORES:
        raise InputError(f"night sequences are stored as {' or '.join(STORES)}, not {store!r}")
    out = Path(out_dir)
    settings = json.loads(json.dumps({"seed": int(seed), "ranges": dataclasses.asdict(ranges),
                                      "no_lights": bool(no_lights), "store": store, "max_frames": max_frames}))
    index_path = out / DARKEN_INDEX
    index: dict[str, Any] = {"format": DARKEN_FORMAT, "dataset": dataset.name, **settings, "sequences": {}}
    if index_path.is_file():
        previous = json.loads(index_path.read_text(encoding="utf-8"))
        changed = [k for k in settings if previous.get(k) != settings[k]]
        if previous.get("format") != DARKEN_FORMAT or changed:
            raise InputError(f"{out} holds a night dataset made with other settings ({', '.join(changed) or 'format'}); "
                             f"choose another output folder or delete it")
        index["sequences"] = previous["sequences"]
    elif out.exists() and any(p.name != ".partial" for p in out.iterdir()):
        raise InputError(f"output {out} exists and is not a night dataset of mlkd darken; name a new folder")

    def finished(name: str) -> bool:
        entry = index["sequences"].get(name)
        return entry is not None and (out / "anno" / f"{name}.txt").is_file() and \
            (out / "data_seq" / (name + (".mp4" if entry["store"] == "video" else ""))).exists()

    summary = DarkenSummary(out)
    todo = []
    for seq in dataset:
        (summary.skipped if finished(seq.name) else todo).append(seq)
    total = sum(min(len(s), max_frames or len(s)) for s in todo)
    with tqdm(total=total, unit="frame", desc=f"darken {dataset.name}", disable=not progress) as bar:
        for seq in todo:
            count = min(len(seq), max_frames or len(seq))
            kind = store or ("jpeg" if seq.store.cheap_random_access else "video")
            target = out / "data_seq" / (seq.name + (".mp4" if kind == "video" else ""))
            frames = (seq.frame(i) for i in range(count))
            camera, night = night_clip(frames, sequence_rng(seed, seq.name), ranges, no_lights, seq.name)
            writer = NightWriter(target, kind, seq.store.fps or DEFAULT_FPS, (camera.width, camera.height),
                                 staging=out / ".partial")
            grey = []
            try:
                for jpeg, mean in night:
                    writer.write(jpeg)
                    grey.append(mean)
                    bar.update(1)
            finally:
                seq.store.close()
            writer.commit()
            write_text_atomic(out / "anno" / f"{seq.name}.txt", format_boxes(seq.gt[:count]))
            flags = {k: v for k, v in seq.attrs.items() if isinstance(v, bool)}
            if flags:
                write_text_atomic(out / "anno" / "att" / f"{seq.name}.txt",
                                  ",".join("1" if v else "0" for v in flags.values()) + "\n")
            index["sequences"][seq.name] = {
                "store": kind, "rng_seed": sequence_seed(seed, seq.name), "frames": count, "size": [camera.width, camera.height],
                "mean_grey": float(np.mean(grey)), "mean_grey_range": [float(min(grey)), float(max(grey))],
                "exposure": camera.exposure, "params": camera.params.to_dict()}
            write_json_atomic(index_path, index)
            summary.darkened.append(seq.name)
            summary.frames += count
    if (out / ".partial").is_dir() and not any((out / ".partial").iterdir()):
        (out / ".partial").rmdir()
    return summary
