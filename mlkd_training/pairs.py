"""Template/search training pairs as pysot builds them, and the crop-511 cache of ``mlkd prepare``.

Every frame is first seen as a *canvas*: the 511x511 square around the target at the template
scale (context 0.5, so the target's context square is 127 px), padded with the frame's mean
colour, the target centred at (255, 255). A canvas comes either from the full frame (one
``crop_subwindow`` warp) or from the cache, where ``mlkd prepare`` stored it as a JPEG so that
epochs do not decode full frames again. From a canvas the pair augmentation cuts the 127
template / 255 search crop with random shift and scale, then colour, blur, flip (and grey on
both crops of a pair). A fraction ``neg`` of pairs are negatives: the search crop comes from
a random frame of a random video.

Randomness is a function of ``(seed, pair index)`` only, so a pair is the same whichever
worker, process or resumed run draws it.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence as Seq

import cv2
import numpy as np

from mlkd_tracker.crop import crop_origin, crop_subwindow
from mlkd_tracker.errors import InputError, SourceError
from mlkd_tracker.report import write_bytes_atomic, write_json_atomic
from mlkd_training.data.degrade import decode_jpeg, encode_jpeg
from mlkd_training.data.sequence import Dataset, Sequence
from mlkd_training.targets import TargetConfig, make_targets

CACHE_FORMAT = "mlkd-crop511/1"
CACHE_INDEX = "index.json"
# pysot's colour PCA (per-channel offsets drawn as rgb_var @ N(0, I)), RGB rows
_RGB_VAR = np.array([[-0.55919361, 0.98062831, -0.41940627],
                     [1.72091413, 0.19879334, -1.82968581],
                     [4.64467907, 4.73710203, 4.88324118]], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """pysot ``DATASET.TEMPLATE`` / ``DATASET.SEARCH``: shift (px), scale (fraction), probabilities."""

    shift: float = 0.0
    scale: float = 0.0
    blur: float = 0.0
    flip: float = 0.0
    color: float = 1.0


@dataclass(frozen=True)
class PairConfig:
    """Crop sizes, augmentation and sampling of training pairs (pysot ``cfg.DATASET`` / ``cfg.TRAIN``)."""

    exemplar_size: int = 127
    search_size: int = 255
    canvas_size: int = 511
    context_amount: float = 0.5
    template: AugmentConfig = AugmentConfig(shift=4, scale=0.05, blur=0.0, flip=0.0, color=1.0)
    search: AugmentConfig = AugmentConfig(shift=64, scale=0.18, blur=0.2, flip=0.0, color=1.0)
    neg: float = 0.05
    gray: float = 0.0
    frame_range: int = 100      # search frame within this many (annotated) frames of the template
    pairs_per_epoch: int = 600000


# ----------------------------------------------------------------------------- canvases

class Canvases(Protocol):
    """Where the 511 canvases of one training source come from."""

    name: str
    video_names: list[str]
    video_frames: list[np.ndarray]  # per video: the frame indices with a usable box

    def canvas(self, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """``(canvas HxWx3 uint8, target box x1, y1, x2, y2 in canvas pixels)``."""


def context_size(w: float, h: float, context_amount: float) -> float:
    """Side of the square with context around a ``w x h`` target (pysot ``s_z``)."""
    ctx = context_amount * (w + h)
    return float(np.sqrt((w + ctx) * (h + ctx)))


def frame_canvas(frame: np.ndarray, box_xywh, config: PairConfig) -> tuple[np.ndarray, np.ndarray]:
    """The canvas of one annotated frame and the box it shows (exact mapping of ``crop_subwindow``)."""
    x, y, w, h = (float(v) for v in box_xywh)
    cx, cy = x + (w - 1) / 2.0, y + (h - 1) / 2.0
    s_x = context_size(w, h, config.context_amount) * config.canvas_size / config.exemplar_size
    side = max(int(round(s_x)), 1)
    pad = frame.mean(axis=(0, 1))
    canvas = crop_subwindow(frame, (cx, cy), config.canvas_size, side, pad)
    scale = side / config.canvas_size  # source pixels per canvas pixel
    u = (cx - crop_origin(cx, side) + 0.5) / scale - 0.5
    v = (cy - crop_origin(cy, side) + 0.5) / scale - 0.5
    bw, bh = w / scale, h / scale
    return canvas, np.array([u - bw / 2, v - bh / 2, u + bw / 2, v + bh / 2], np.float32)


class FrameCanvases:
    """Canvases cut from full frames as they are read (no cache).

    Frame files are read per canvas. A video is decoded once, in order, the first time one of
    its canvases is asked for: all its canvases are kept in memory as JPEG (the bytes
    ``mlkd prepare`` would write), up to ``memory_budget`` bytes per process; past that, frames
    of the remaining videos are decoded per canvas (a seek each: slow, so a warning suggests
    ``mlkd prepare``). Each data-loading worker keeps its own.
    """

    def __init__(self, dataset: Dataset, config: PairConfig, memory_budget: int = 1 << 30):
        self.name = dataset.name
        self.config = config
        self.sequences = [s for s in dataset.sequences if s.valid.any()]
        if not self.sequences:
            raise SourceError(f"dataset {dataset.name} has no sequence with a usable ground-truth box")
        self.video_names = [s.name for s in self.sequences]
        self.video_frames = [np.flatnonzero(s.valid) for s in self.sequences]
        self.memory_budget = memory_budget
        self._decoded: dict[int, dict[int, tuple[bytes, np.ndarray]]] = {}
        self._decoded_bytes = 0

    def canvas(self, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        seq = self.sequences[video]
        if not seq.store.cheap_random_access:
            decoded = self._decoded.get(video)
            if decoded is None and self._decoded_bytes < self.memory_budget:
                decoded = self._decoded[video] = {i: (data, box) for i, data, box in encoded_canvases(seq, self.config)}
                self._decoded_bytes += sum(len(data) for data, _ in decoded.values())
                if self._decoded_bytes >= self.memory_budget:
                    warnings.warn(f"dataset {self.name}: the canvases of its videos exceed the memory budget "
                                  f"({self.memory_budget >> 20} MiB); the videos not yet decoded will be read frame "
                                  f"by frame, which is slow: run mlkd prepare on this dataset and train on the cache")
            if decoded is not None:
                data, box = decoded[int(frame)]
                return decode_jpeg(data), box
        return frame_canvas(seq.frame(frame), seq.gt[frame], self.config)


class CachedCanvases:
    """Canvases read from a crop-511 cache written by :func:`prepare_cache`."""

    def __init__(self, root: str | os.PathLike, config: PairConfig):
        self.root = Path(root)
        index = read_cache_index(self.root)
        for key in ("canvas_size", "exemplar_size", "context_amount"):
            if index[key] != getattr(config, key):
                raise InputError(f"crop cache {self.root} was prepared with {key}={index[key]}, the training "
                                 f"config wants {getattr(config, key)}; run mlkd prepare again")
        self.name = index["name"]
        videos = index["videos"]
        self.video_names = [v["name"] for v in videos]
        self.video_frames = [np.asarray(v["frames"], np.int64) for v in videos]
        self._boxes = [{f: np.asarray(b, np.float32) for f, b in zip(v["frames"], v["boxes"])} for v in videos]

    def canvas(self, video: int, frame: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.root / self.video_names[video] / f"{int(frame):06d}.jpg"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"crop cache {self.root}: cannot read {path} (missing or corrupt); "
                              f"run mlkd prepare again")
        return image, self._boxes[video][int(frame)]


def read_cache_index(root: str | os.PathLike) -> dict[str, Any]:
    """The cache's ``index.json``; :class:`SourceError` if ``root`` is not a finished crop cache."""
    path = Path(root) / CACHE_INDEX
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{root} is not a crop cache (no {CACHE_INDEX}; create one with mlkd prepare)") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"crop cache index {path} is unreadable: {exc}") from exc
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT or not isinstance(index.get("videos"), list):
        raise SourceError(f"{path} is not a {CACHE_FORMAT} index")
    return index


def is_crop_cache(path: str | os.PathLike) -> bool:
    return (Path(path) / CACHE_INDEX).is_file()


def encoded_canvases(seq: Sequence, config: PairConfig, quality: int = 95) -> Iterator[tuple[int, bytes, np.ndarray]]:
    """``(frame index, canvas JPEG, box)`` for every annotated frame, reading the frames in order once."""
    try:
        for i in np.flatnonzero(seq.valid):
            canvas, box = frame_canvas(seq.frame(int(i)), seq.gt[i], config)
            yield int(i), encode_jpeg(canvas, quality), box
    finally:
        seq.store.close()


def _prepare_sequence(args) -> dict[str, Any]:
    seq, out_dir, config, quality = args
    cv2.setNumThreads(1)
    folder = Path(out_dir) / seq.name
    done = folder / "boxes.json"
    if done.is_file():  # finished by an earlier, interrupted run
        return json.loads(done.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    frames, boxes = [], []
    for i, data, box in encoded_canvases(seq, config, quality):
        write_bytes_atomic(folder / f"{i:06d}.jpg", data)
        frames.append(i)
        boxes.append([round(float(v), 3) for v in box])
    entry = {"name": seq.name, "frames": frames, "boxes": boxes}
    write_json_atomic(done, entry)
    return entry


def prepare_cache(dataset: Dataset, out_dir: str | os.PathLike, config: PairConfig | None = None,
                  workers: int = 1, quality: int = 95, progress: bool = True) -> Path:
    """Write every annotated frame's canvas as ``<out>/<seq>/<frame>.jpg`` plus ``index.json``.

    Resumable: sequences finished by an interrupted run are kept. The index is written last,
    so a cache without one is unfinished and refused by training.
    """
    from tqdm import tqdm

    config = config or PairConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sequences = [s for s in dataset.sequences if s.valid.any()]
    if not sequences:
        raise SourceError(f"dataset {dataset.name} has no sequence with a usable ground-truth box")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise SourceError(f"dataset {dataset.name} has duplicate sequence names")
    jobs = [(s, out, config, quality) for s in sequences]
    bar = tqdm(total=len(jobs), unit="seq", desc=f"prepare {dataset.name}", disable=not progress)
    entries = []
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            for entry in pool.imap(_prepare_sequence, jobs):
                entries.append(entry)
                bar.update(1)
    else:
        for job in jobs:
            entries.append(_prepare_sequence(job))
            bar.update(1)
    bar.close()
    write_json_atomic(out / CACHE_INDEX, {
        "format": CACHE_FORMAT, "name": dataset.name, "canvas_size": config.canvas_size,
        "exemplar_size": config.exemplar_size, "context_amount": config.context_amount,
        "frames": int(sum(len(e["frames"]) for e in entries)), "videos": entries})
    return out


# ----------------------------------------------------------------------------- augmentation

def _uniform(rng: np.random.Generator) -> float:
    return float(rng.random() * 2.0 - 1.0)


def crop_box(image: np.ndarray, box_xyxy, out_size: int) -> np.ndarray:
    """Resample the corner box ``box_xyxy`` of ``image`` to ``out_size`` (corners onto pixels 0 and out-1)."""
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    a, b = (out_size - 1) / (x2 - x1), (out_size - 1) / (y2 - y1)
    m = np.array([[a, 0.0, -a * x1], [0.0, b, -b * y1]])
    return cv2.warpAffine(image, m, (out_size, out_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def _motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = int(rng.choice(np.arange(5, 46, 2)))
    kernel = np.zeros((size, size), np.float32)
    c, wx = size // 2, float(rng.random())
    kernel[:, c] += wx / size          # vertical streak
    kernel[c, :] += (1.0 - wx) / size  # horizontal streak
    return cv2.filter2D(image, -1, kernel)


def augment(canvas: np.ndarray, box_xyxy, out_size: int, aug: AugmentConfig, rng: np.random.Generator,
            gray: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cut an ``out_size`` crop around the canvas centre with pysot's jitter; returns float32 HxWx3 and the box.

    Scale jitter stretches the crop window by ``1 +- scale`` per axis, shift moves it by up to
    ``shift`` px (kept inside the canvas); then a colour offset from pysot's PCA, a random
    cross-shaped motion blur and a horizontal flip, each with its probability. Pixels stay
    float (a colour offset may leave 0..255), as pysot feeds them.
    """
    image = cv2.cvtColor(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) if gray else canvas
    h, w = image.shape[:2]
    cw = ch = float(out_size - 1)
    sx = sy = 1.0
    if aug.scale:
        sx = min(1.0 + _uniform(rng) * aug.scale, w / cw)
        sy = min(1.0 + _uniform(rng) * aug.scale, h / ch)
        cw, ch = cw * sx, ch * sy
    x1, y1 = w // 2 - cw / 2, h // 2 - ch / 2
    if aug.shift:
        dx, dy = _uniform(rng) * aug.shift, _uniform(rng) * aug.shift
        x1 += max(-x1, min(w - 1 - (x1 + cw), dx))
        y1 += max(-y1, min(h - 1 - (y1 + ch), dy))
    bx1, by1, bx2, by2 = (float(v) for v in box_xyxy)
    box = np.array([(bx1 - x1) / sx, (by1 - y1) / sy, (bx2 - x1) / sx, (by2 - y1) / sy], np.float32)
    crop = crop_box(image, (x1, y1, x1 + cw, y1 + ch), out_size).astype(np.float32)
    if aug.color > rng.random():
        offset = (_RGB_VAR @ rng.standard_normal(3).astype(np.float32))[::-1]  # RGB -> BGR order
        crop -= offset
    if aug.blur > rng.random():
        crop = _motion_blur(crop, rng)
    if aug.flip and aug.flip > rng.random():
        crop = np.ascontiguousarray(crop[:, ::-1])
        box = np.array([out_size - 1 - box[2], box[1], out_size - 1 - box[0], box[3]], np.float32)
    return crop, box


# ----------------------------------------------------------------------------- pairs

@dataclass
class PairSource:
    """One training source: its canvases and how many videos it contributes per pass (-1: all)."""

    canvases: Canvases
    num_use: int = -1
    frame_range: int | None = None  # None: the PairConfig's


class PairDataset:
    """Map-style dataset: global pair index ``epoch * pairs_per_epoch + k`` -> one training sample.

    A sample is a dict of numpy arrays: ``template`` (3,127,127) and ``search`` (3,255,255)
    float32 BGR, ``label_cls`` (A,S,S) int64, ``label_loc`` (4,A,S,S), ``label_loc_weight``
    (A,S,S) (``A = 1`` for point targets), ``box`` (4,) the target in the search crop, ``negative`` (bool).
    """

    def __init__(self, sources: Seq[PairSource], config: PairConfig | None = None,
                 targets: TargetConfig | None = None, seed: int = 0):
        if not sources:
            raise InputError("training needs at least one data source")
        self.sources = list(sources)
        self.config = config or PairConfig()
        self.targets = make_targets(targets or TargetConfig(search_size=self.config.search_size))
        if self.targets.config.search_size != self.config.search_size:
            raise InputError("training targets and pairs disagree on the search size")
        self.seed = int(seed)
        # (source, video) for every video of every source, each source repeated up to num_use
        self._videos = [[(si, v) for v in range(len(s.canvases.video_names))] for si, s in enumerate(self.sources)]
        self._pick_epoch, self._pick = -1, np.empty((0, 2), np.int64)

    def __len__(self) -> int:
        return self.config.pairs_per_epoch

    def epoch_pick(self, epoch: int) -> np.ndarray:
        """``(pairs_per_epoch, 2)`` (source, video) of each pair of an epoch: shuffled passes over all videos."""
        if epoch != self._pick_epoch:
            rng = np.random.default_rng((self.seed, 1, epoch))
            one_pass = []
            for source, videos in zip(self.sources, self._videos):
                use = len(videos) if source.num_use < 0 else source.num_use
                order = np.concatenate([rng.permutation(len(videos)) for _ in range(-(-use // len(videos)))])[:use]
                one_pass += [videos[i] for i in order]
            passes = -(-self.config.pairs_per_epoch // len(one_pass))
            pick = np.concatenate([rng.permutation(np.asarray(one_pass, np.int64)) for _ in range(passes)])
            self._pick_epoch, self._pick = epoch, pick[: self.config.pairs_per_epoch]
        return self._pick

    def _positive(self, source: int, video: int, rng: np.random.Generator) -> tuple[int, int]:
        frames = self.sources[source].canvases.video_frames[video]
        frange = self.sources[source].frame_range or self.config.frame_range
        t = int(rng.integers(len(frames)))
        window = frames[max(t - frange, 0):min(t + frange, len(frames) - 1) + 1]
        return int(frames[t]), int(window[rng.integers(len(window))])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        c = self.config
        epoch, k = divmod(int(index), c.pairs_per_epoch)
        source, video = (int(v) for v in self.epoch_pick(epoch)[k])
        rng = np.random.default_rng((self.seed, 2, int(index)))
        gray = bool(c.gray and c.gray > rng.random())
        negative = bool(c.neg and c.neg > rng.random())
        canvases = self.sources[source].canvases
        if negative:
            frames = canvases.video_frames[video]
            template_at = (source, video, int(frames[rng.integers(len(frames))]))
            other = int(rng.integers(len(self.sources)))
            other_video = int(rng.integers(len(self.sources[other].canvases.video_names)))
            other_frames = self.sources[other].canvases.video_frames[other_video]
            search_at = (other, other_video, int(other_frames[rng.integers(len(other_frames))]))
        else:
            t, s = self._positive(source, video, rng)
            template_at, search_at = (source, video, t), (source, video, s)
        z_canvas, z_box = self.sources[template_at[0]].canvases.canvas(*template_at[1:])
        x_canvas, x_box = self.sources[search_at[0]].canvases.canvas(*search_at[1:])
        template, _ = augment(z_canvas, z_box, c.exemplar_size, c.template, rng, gray)
        search, box = augment(x_canvas, x_box, c.search_size, c.search, rng, gray)
        labels = self.targets(box, negative, rng)
        return {"template": template.transpose(2, 0, 1).copy(), "search": search.transpose(2, 0, 1).copy(),
                "label_cls": labels.cls, "label_loc": labels.delta, "label_loc_weight": labels.weight,
                "box": box, "negative": negative}


def describe_sources(sources: Seq[PairSource]) -> list[dict[str, Any]]:
    """Short JSON-able summary of the sources (for run metadata)."""
    return [{"name": s.canvases.name, "videos": len(s.canvases.video_names),
             "frames": int(sum(len(f) for f in s.canvases.video_frames)), "num_use": s.num_use,
             "cached": isinstance(s.canvases, CachedCanvases)} for s in sources]



def open_dataset_folder(path: str | os.PathLike) -> Dataset:
    """A benchmark / synthetic dataset folder in any layout the readers recognise."""
    if not Path(path).exists():
        raise SourceError(f"dataset not found: {path}")
    from mlkd_training.data.readers import open_dataset

    return open_dataset(path)


def open_pair_source(path: str | os.PathLike, config: PairConfig, num_use: int = -1,
                     frame_range: int | None = None) -> PairSource:
    """A training source from a crop cache (``mlkd prepare``) or a dataset folder (decoded on the fly)."""
    if is_crop_cache(path):
        canvases: Canvases = CachedCanvases(path, config)
    else:
        canvases = FrameCanvases(open_dataset_folder(path), config)
    return PairSource(canvases, num_use, frame_range)
