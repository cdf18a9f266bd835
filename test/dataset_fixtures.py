"""Small real dataset folders on disk (frames + annotation files) in the benchmark layouts."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fakes import moving_square_frames


def write_frames(folder: Path, frames, pattern: str = "{:06d}.jpg", start: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / pattern.format(i + start)
        assert cv2.imwrite(str(path), frame)
        paths.append(path)
    return paths


def box_lines(boxes, sep: str = ",") -> str:
    return "".join(sep.join(str(v) for v in b) + "\n" for b in boxes)


def moving_sequences(count: int, frames: int = 10, size=(90, 120)):
    """``count`` (frames, boxes) pairs: bright squares moving differently on a dark background."""
    return [moving_square_frames(frames, size=size, start=(10.0 + 7 * k, 12.0 + 3 * k), step=(3.0 + k, 1.0), side=16)
            for k in range(count)]


def write_uav_dataset(root: Path, count: int = 3, frames: int = 10, sep: str = ",",
                      frame_dir: str = "data_seq") -> dict[str, np.ndarray]:
    """A UAVDark135-style folder; returns the ground truth per sequence."""
    gts = {}
    for k, (imgs, boxes) in enumerate(moving_sequences(count, frames)):
        name = f"seq{k + 1}"
        write_frames(root / frame_dir / name, imgs)
        (root / "anno").mkdir(parents=True, exist_ok=True)
        (root / "anno" / f"{name}.txt").write_text(box_lines(boxes, sep))
        gts[name] = np.array(boxes, np.float64)
    return gts


def write_video(path: Path, frames, fourcc: str = "mp4v", fps: float = 10.0) -> Path:
    """``frames`` (HxWx3 BGR) as a video file; OpenCV's mp4v has a keyframe every 12 frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def textured_frames(count: int, size=(96, 128), seed: int = 0) -> list[np.ndarray]:
    """Frames a video codec keeps distinct: a smooth random texture scrolling one pixel a frame."""
    rng = np.random.default_rng(seed)
    h, w = size
    texture = cv2.GaussianBlur(rng.integers(0, 255, (h, w + count, 3), dtype=np.uint8), (5, 5), 0)
    return [np.ascontiguousarray(texture[:, i:i + w]) for i in range(count)]


def write_uav_video_dataset(root: Path, count: int = 2, frames: int = 30, suffix: str = ".mp4",
                            fourcc: str = "mp4v") -> dict[str, np.ndarray]:
    """A UAV123-style folder with videos (``data_seq/<seq><suffix>``); returns the ground truth per sequence."""
    gts = {}
    for k in range(count):
        name = f"vid{k + 1}"
        write_video(root / "data_seq" / f"{name}{suffix}", textured_frames(frames, seed=k), fourcc)
        boxes = [(10 + i, 20 + k, 30, 25) for i in range(frames)]
        (root / "anno").mkdir(parents=True, exist_ok=True)
        (root / "anno" / f"{name}.txt").write_text(box_lines(boxes))
        gts[name] = np.array(boxes, np.float64)
    return gts
