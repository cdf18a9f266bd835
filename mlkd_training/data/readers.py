"""Readers for the tracking benchmarks users own, all producing :class:`Dataset` with lazy frames.

Layouts (``open_dataset`` tells them apart; ``kind`` forces one):

- ``uav``: ``anno/<seq>.txt`` + ``data_seq/<seq>/*.jpg`` (UAVDark135, NAT2021 test and L,
  DarkTrack2021, UAV123-style; UAVDark70 names its frame folder ``Seq/``), or a video
  ``data_seq/<seq>.mp4`` (any suffix of ``VIDEO_SUFFIXES``) whose frame i is line i of the box
  file: a box file longer or shorter than the video is an error. One level of
  nesting is followed (``anno/UAV123/``, ``data_seq/UAV123/``). Optional attribute files
  ``att/<seq>.txt`` (under ``anno/`` or the root): one line of 0/1 flags; 12 flags take the
  UAV123 names in UAV123's order, other counts are named ``attr1`` ... ``attrN``.
- ``got10k``: ``<seq>/groundtruth.txt`` + frames beside it, ``absence.label`` (1 = target
  absent), ``cover.label`` (visible ratio level 0..8, 8 = fully visible; kept as the per-frame
  flag ``occlusion`` = level < 8). Test-split sequences carry only the first box.
- ``lasot``: ``<class>/<class>-<n>/img/*.jpg`` + ``groundtruth.txt``, ``full_occlusion.txt``,
  ``out_of_view.txt`` (one line of per-frame 0/1 flags each; absent = either). The class level
  may be missing.
- ``pysot``: a JSON ``{seq: {video_dir, init_rect, img_names, gt_rect, attr[, absent]}}`` with
  ``img_names`` relative to the JSON's folder. ``absent`` follows pysot's LaSOT JSON, whose
  evaluator keeps the frames where it is 1: it flags the frames where the target is visible.

Box files: one ``x,y,w,h`` per frame separated by commas, tabs or spaces; a line of NaN or an
empty line means no ground truth for that frame (blank lines at the end of a file are not
rows). Anything else raises :class:`SourceError` naming the file and line. When a sequence has
more frame files than boxes only the annotated frames are kept (a warning says so), as the pysot
toolkits do; a single box (GOT-10k test split, user-initialised clips) leaves the other frames
without ground truth.
"""
from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence as SequenceABC
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mlkd_tracker.errors import SourceError
from mlkd_tracker.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, natural_key
from mlkd_training.data.sequence import Dataset, FrameFiles, FrameStore, Sequence, VideoFrames

UAV123_ATTRIBUTES = ("SV", "ARC", "LR", "FM", "FOC", "POC", "OV", "BC", "IV", "VC", "CM", "SOB")
KIND_ALIASES = {
    "uav": "uav", "uavdark135": "uav", "uavdark70": "uav", "nat2021": "uav", "nat2021-l": "uav",
    "nat2021l": "uav", "darktrack2021": "uav", "uav123": "uav",
    "got10k": "got10k", "got-10k": "got10k", "lasot": "lasot", "pysot": "pysot", "json": "pysot",
}
_ANNO_DIRS = ("anno", "annotations")
_FRAME_DIRS = ("data_seq", "Seq", "seq", "sequences")
_ATTR_DIRS = ("att", "attr", "attributes")
_BOX_FORMAT = ("expected 4 numbers x,y,w,h separated by commas, tabs or spaces "
               "(NaN or an empty line for a frame without ground truth)")


def parse_boxes(text: str, source: str) -> np.ndarray:
    """``(N, 4)`` float64 boxes from box-file text; ``source`` names the file in errors."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return np.zeros((0, 4))
    try:  # fast path (numpy's C parser): every line has 4 fields and one kind of separator
        boxes = np.loadtxt(lines, delimiter="," if "," in text else None, comments=None, ndmin=2)
        if boxes.shape == (len(lines), 4):  # blank lines are skipped by loadtxt: then take the slow path
            return boxes
    except ValueError:
        pass
    boxes = np.full((len(lines), 4), np.nan)
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        fields = stripped.split(",") if "," in stripped else stripped.split()
        try:
            values = [float(f) for f in fields]
        except ValueError:
            values = []
        if len(values) != 4:
            raise SourceError(f"{source}:{i + 1}: {_BOX_FORMAT}; got {stripped[:80]!r}")
        boxes[i] = values
    return boxes


def format_boxes(boxes) -> str:
    """Box-file text (ground truth or results): one ``x,y,w,h`` line per box, 4 decimals; ``nan`` for none."""
    return "".join(",".join(f"{float(v):.4f}" for v in box) + "\n" for box in boxes)


def read_boxes(path: str | os.PathLike) -> np.ndarray:
    """``(N, 4)`` boxes from a ground-truth or result file (see :func:`parse_boxes`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceError(f"box file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read box file {path}: {exc}") from None
    return parse_boxes(text, str(path))


def read_flags(path: Path, expected: int | None = None, one_line: bool = False,
               levels: range = range(2)) -> np.ndarray:
    """Integer flags from a label file: one per line, or all on ``one_line`` (commas/spaces)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SourceError(f"cannot read label file {path}: {exc}") from None
    tokens = text.replace(",", " ").split() if one_line else [t.strip() for t in text.splitlines() if t.strip()]
    values = []
    for token in tokens:
        try:
            values.append(int(float(token)))
        except ValueError:
            raise SourceError(f"{path}: expected integer labels {levels.start}..{levels.stop - 1}, "
                              f"got {token!r}") from None
    flags = np.array(values, dtype=np.int64)
    if flags.size and (flags.min() < levels.start or flags.max() >= levels.stop):
        raise SourceError(f"{path}: labels must be {levels.start}..{levels.stop - 1}, found {flags.min()}..{flags.max()}")
    if expected is not None and len(flags) != expected:
        raise SourceError(f"{path}: {len(flags)} labels for {expected} frames")
    return flags


class FrameList(SequenceABC):
    """Frame paths ``root/name``, made ``Path`` objects only when used (pysot JSONs list millions of frames)."""

    def __init__(self, root: Path, names: list[str]):
        self.root, self.names = root, names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return FrameList(self.root, self.names[index])
        return self.root / self.names[index]


def list_frames(folder: Path) -> FrameFiles:
    """Image files of a frame folder (or its ``img/`` subfolder) in natural order."""
    if not folder.is_dir():
        raise SourceError(f"frame folder not found: {folder}")
    paths = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths and (folder / "img").is_dir():
        return list_frames(folder / "img")
    if not paths:
        raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in frame folder {folder}")
    return FrameFiles(sorted(paths, key=lambda p: natural_key(p.name)))


def fit_frames(name: str, frames: FrameStore, gt: np.ndarray, source: str) -> tuple[FrameStore, np.ndarray]:
    """Reconcile frame and box counts as the benchmark toolkits do (see the module docstring)."""
    if len(gt) == len(frames):
        return frames, gt
    if len(gt) == 0:
        raise SourceError(f"{source}: no boxes for sequence {name}")
    if len(gt) == 1:  # first-frame box only (GOT-10k test split, user-initialised clips)
        return frames, np.vstack([gt, np.full((len(frames) - 1, 4), np.nan)])
    if isinstance(frames, VideoFrames):
        raise SourceError(f"{source}: {len(gt)} boxes but video {frames.path} has {len(frames)} frames "
                          f"(frame i of the video goes with line i of the box file)")
    if len(gt) > len(frames):
        raise SourceError(f"{source}: {len(gt)} boxes but only {len(frames)} frames for sequence {name}")
    warnings.warn(f"sequence {name}: {len(frames)} frames but {len(gt)} boxes in {source}; "
                  f"using the first {len(gt)} frames", stacklevel=3)
    return frames.head(len(gt)), gt


def _videos(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the video files in ``folder``; two videos of one name are an error."""
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            if path.stem in found:
                raise SourceError(f"{folder}: two videos for sequence {path.stem}: {found[path.stem].name}, {path.name}")
            found[path.stem] = path
    return found


def sequence_frames(frames_dir: Path, videos: dict[str, Path], name: str, box_file: Path) -> FrameStore:
    """The frames of sequence ``name``: its frame folder, else its video."""
    if (frames_dir / name).is_dir():
        return list_frames(frames_dir / name)
    if name in videos:
        return VideoFrames.probe(videos[name], boxes=str(box_file))
    raise SourceError(f"{frames_dir}: no frame folder {name}/ or video {name}.mp4 (or "
                      f"{', '.join(sorted(VIDEO_SUFFIXES - {'.mp4'}))}) for the box file {box_file}")


def _single_subdir(folder: Path, has: Callable[[Path], bool]) -> Path:
    """``folder`` itself, or its only subfolder when ``folder`` fails ``has`` (``anno/UAV123``)."""
    if has(folder):
        return folder
    subdirs = [d for d in folder.iterdir() if d.is_dir() and d.name not in _ATTR_DIRS]
    return subdirs[0] if len(subdirs) == 1 and has(subdirs[0]) else folder


def _find_child(root: Path, names: Iterable[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _select(names: list[str], wanted: Iterable[str] | None, source: str) -> list[str]:
    if wanted is None:
        return names
    wanted = list(wanted)
    missing = [w for w in wanted if w not in names]
    if missing:
        raise SourceError(f"{source} has no sequence(s) {', '.join(missing[:5])}"
                          f"{' ...' if len(missing) > 5 else ''}")
    return wanted


def read_uav(root: str | os.PathLike, sequences: Iterable[str] | None = None, name: str | None = None) -> Dataset:
    """UAVDark135 / UAVDark70 / NAT2021 / DarkTrack2021 / UAV123-style ``anno`` + ``data_seq`` folders."""
    root = Path(root)
    anno, frames_dir = _find_child(root, _ANNO_DIRS), _find_child(root, _FRAME_DIRS)
    if anno is None or frames_dir is None:
        raise SourceError(f"{root}: expected folders {'/'.join(_ANNO_DIRS)} (x,y,w,h files) and "
                          f"{'/'.join(_FRAME_DIRS)} (one frame folder or video per sequence)")
    anno = _single_subdir(anno, lambda d: any(d.glob("*.txt")))
    names = sorted((p.stem for p in anno.glob("*.txt")), key=natural_key)
    if not names:
        raise SourceError(f"no annotation files (*.txt) in {anno}")
    frames_dir = _single_subdir(frames_dir, lambda d: (d / names[0]).is_dir() or names[0] in _videos(d))
    videos = _videos(frames_dir)
    unannotated = sorted(set(videos) - set(names), key=natural_key)
    if unannotated:
        raise SourceError(f"video {videos[unannotated[0]]} has no box file {anno / unannotated[0]}.txt"
                          + (f" (nor {len(unannotated) - 1} more videos)" if len(unannotated) > 1 else ""))
    attr_dir = _find_child(anno, _ATTR_DIRS) or _find_child(root, _ATTR_DIRS)
    seqs = []
    for seq_name in _select(names, sequences, str(root)):
        anno_file = anno / f"{seq_name}.txt"
        gt = read_boxes(anno_file)
        frames, gt = fit_frames(seq_name, sequence_frames(frames_dir, videos, seq_name, anno_file), gt, str(anno_file))
        attrs: dict[str, bool | np.ndarray] = {}
        if attr_dir is not None and (attr_dir / f"{seq_name}.txt").is_file():
            flags = read_flags(attr_dir / f"{seq_name}.txt", one_line=True)
            labels = UAV123_ATTRIBUTES if len(flags) == len(UAV123_ATTRIBUTES) else \
                [f"attr{i + 1}" for i in range(len(flags))]
            attrs = {label: bool(f) for label, f in zip(labels, flags)}
        seqs.append(Sequence(seq_name, frames, gt, attrs))
    return Dataset(name or root.name, seqs)


def read_got10k(root: str | os.PathLike, sequences: Iterable[str] | None = None, name: str | None = None) -> Dataset:
    """A GOT-10k split folder: ``<seq>/groundtruth.txt``, ``absence.label``, ``cover.label``, frames."""
    root = Path(root)
    listed = root / "list.txt"
    if listed.is_file():
        names = [n.strip() for n in listed.read_text().splitlines() if n.strip()]
    else:
        names = sorted((d.name for d in root.iterdir() if (d / "groundtruth.txt").is_file()), key=natural_key)
    if not names:
        raise SourceError(f"{root}: no GOT-10k sequence folders (with groundtruth.txt)")
    seqs = []
    for seq_name in _select(names, sequences, str(root)):
        folder = root / seq_name
        gt_file = folder / "groundtruth.txt"
        frames, gt = fit_frames(seq_name, list_frames(folder), read_boxes(gt_file), str(gt_file))
        absent, attrs = None, {}
        if (folder / "absence.label").is_file():
            absent = read_flags(folder / "absence.label", len(frames)).astype(bool)
        if (folder / "cover.label").is_file():
            attrs["occlusion"] = read_flags(folder / "cover.label", len(frames), levels=range(9)) < 8
        seqs.append(Sequence(seq_name, frames, gt, attrs, absent))
    return Dataset(name or root.name, seqs)


def _lasot_folders(root: Path) -> list[Path]:
    def is_seq(d: Path) -> bool:
        return (d / "groundtruth.txt").is_file() and (d / "img").is_dir()

    found = []
    for d in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if not d.is_dir():
            continue
        if is_seq(d):
            found.append(d)
        else:
            found.extend(s for s in sorted(d.iterdir(), key=lambda p: natural_key(p.name)) if s.is_dir() and is_seq(s))
    return found


def read_lasot(root: str | os.PathLike, sequences: Iterable[str] | None = None, name: str | None = None) -> Dataset:
    """LaSOT: ``<class>/<seq>/img`` + ``groundtruth.txt`` with full-occlusion / out-of-view flags."""
    root = Path(root)
    folders = {d.name: d for d in _lasot_folders(root)}
    if not folders:
        raise SourceError(f"{root}: no LaSOT sequence folders (<class>/<seq>/img + groundtruth.txt)")
    seqs = []
    for seq_name in _select(list(folders), sequences, str(root)):
        folder = folders[seq_name]
        gt_file = folder / "groundtruth.txt"
        frames, gt = fit_frames(seq_name, list_frames(folder / "img"), read_boxes(gt_file), str(gt_file))
        attrs: dict[str, bool | np.ndarray] = {}
        for label in ("full_occlusion", "out_of_view"):
            if (folder / f"{label}.txt").is_file():
                attrs[label] = read_flags(folder / f"{label}.txt", len(frames), one_line=True).astype(bool)
        absent = None
        if attrs:
            absent = np.logical_or.reduce([attrs[k] for k in attrs])
        seqs.append(Sequence(seq_name, frames, gt, attrs, absent))
    return Dataset(name or root.name, seqs)


def _json_boxes(rects: Any, where: str) -> np.ndarray:
    if not isinstance(rects, list):
        raise SourceError(f"{where}: gt_rect must be a list of [x, y, w, h]")
    try:  # fast path: all rows are 4 numbers
        boxes = np.array(rects, dtype=np.float64)
        if boxes.shape == (len(rects), 4):
            return boxes
    except (TypeError, ValueError):
        pass
    boxes = np.full((len(rects), 4), np.nan)
    for i, r in enumerate(rects):
        if r is None or (isinstance(r, list) and not r):
            continue
        try:
            values = [float(v) for v in r]
        except (TypeError, ValueError):
            values = []
        if len(values) != 4:
            raise SourceError(f"{where}: gt_rect[{i}] {_BOX_FORMAT}; got {str(r)[:80]}")
        boxes[i] = values
    return boxes


def read_pysot_json(path: str | os.PathLike, sequences: Iterable[str] | None = None,
                    name: str | None = None) -> Dataset:
    """A pysot-style dataset JSON; frame paths are relative to the JSON's folder."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"dataset JSON not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path} is not a readable JSON file: {exc}") from None
    if not isinstance(meta, dict) or not meta:
        raise SourceError(f"{path}: expected a JSON object {{sequence: {{img_names, gt_rect, ...}}}}")
    root = path.parent
    seqs = []
    for seq_name in _select(list(meta), sequences, str(path)):
        entry = meta[seq_name]
        where = f"{path} [{seq_name}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("img_names"), list) or "gt_rect" not in entry:
            raise SourceError(f"{where}: expected keys img_names (list) and gt_rect")
        frames = FrameFiles(FrameList(root, entry["img_names"]))
        for frame in (frames.paths[0], frames.paths[-1]) if len(frames) else ():
            if not frame.is_file():
                raise SourceError(f"{where}: frame {frame} not found (img_names are relative to {root})")
        frames, gt = fit_frames(seq_name, frames, _json_boxes(entry["gt_rect"], where), str(path))
        attr_list = entry.get("attr") or []
        if not isinstance(attr_list, list):
            raise SourceError(f"{where}: attr must be a list of attribute names")
        absent = None
        if entry.get("absent") is not None:
            visible = np.asarray(entry["absent"], dtype=np.int64)[:len(frames)]
            if len(visible) != len(frames):
                raise SourceError(f"{where}: absent has {len(visible)} flags for {len(frames)} frames")
            absent = visible == 0
        seqs.append(Sequence(seq_name, frames, gt, {str(a): True for a in attr_list}, absent))
    return Dataset(name or path.stem, seqs)


def _pysot_jsons(folder: Path) -> list[Path]:
    found = []
    for candidate in sorted(folder.glob("*.json")):
        try:
            with open(candidate, encoding="utf-8") as f:
                head = f.read(1 << 16)
        except OSError:
            continue
        if head.lstrip().startswith("{") and '"img_names"' in head and '"gt_rect"' in head:
            found.append(candidate)
    return found


def detect_kind(path: Path) -> str:
    """The layout of ``path``: ``uav``, ``got10k``, ``lasot`` or ``pysot``."""
    if path.is_file() and path.suffix.lower() == ".json":
        return "pysot"
    if not path.is_dir():
        raise SourceError(f"dataset not found: {path}")
    if len(_pysot_jsons(path)) == 1:
        return "pysot"
    if _find_child(path, _ANNO_DIRS) and _find_child(path, _FRAME_DIRS):
        return "uav"
    subdirs = [d for d in path.iterdir() if d.is_dir()]
    if any((d / "groundtruth.txt").is_file() and (d / "img").is_dir() for d in subdirs) or \
            any((s / "img").is_dir() and (s / "groundtruth.txt").is_file()
                for d in subdirs[:20] for s in d.iterdir() if s.is_dir()):
        return "lasot"
    if any((d / "groundtruth.txt").is_file() for d in subdirs):
        return "got10k"
    raise SourceError(
        f"cannot tell the dataset layout of {path}: expected anno/ + data_seq/ (UAVDark135, UAVDark70, NAT2021, "
        f"DarkTrack2021, UAV123-style), <seq>/groundtruth.txt (GOT-10k), <class>/<seq>/img + groundtruth.txt "
        f"(LaSOT) or one pysot JSON; pass the kind explicitly")


READERS: dict[str, Callable[..., Dataset]] = {
    "uav": read_uav, "got10k": read_got10k, "lasot": read_lasot, "pysot": read_pysot_json,
}


def open_dataset(path: str | os.PathLike, kind: str = "auto", sequences: Iterable[str] | None = None,
                 name: str | None = None) -> Dataset:
    """Read a benchmark folder (or pysot JSON) of any supported layout; ``kind="auto"`` detects it."""
    path = Path(path)
    key = kind.lower()
    if key != "auto" and key not in KIND_ALIASES:
        raise SourceError(f"unknown dataset kind {kind!r}; expected auto or one of {', '.join(sorted(KIND_ALIASES))}")
    resolved = detect_kind(path) if key == "auto" else KIND_ALIASES[key]
    if resolved == "pysot" and path.is_dir():
        jsons = _pysot_jsons(path)
        if len(jsons) != 1:
            raise SourceError(f"{path}: expected one pysot JSON, found {len(jsons)}; pass the JSON file itself")
        return read_pysot_json(jsons[0], sequences, name)
    if not path.exists():
        raise SourceError(f"dataset not found: {path}")
    return READERS[resolved](path, sequences, name)
