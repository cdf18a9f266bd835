"""The one in-memory shape every dataset reader produces and every consumer (evaluation,
training pairs, ``mlkd test``) reads: a sequence of frame files plus ``x,y,w,h`` ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mlkd_tracker.errors import SourceError


@dataclass
class Sequence:
    """One video: frame files read on demand and an ``(N, 4)`` ground-truth array.

    ``gt`` rows are ``x, y, w, h`` in pixels (top-left origin, 0-based); a row of NaN means no
    ground truth for that frame. ``absent`` marks frames where the target is out of view or
    fully occluded (GOT-10k ``absence.label``, synthetic sequences). ``attrs`` holds attribute
    flags: a bool per sequence (UAVDark135 style) or an ``(N,)`` bool array per frame.
    """

    name: str
    frame_paths: list[Path]
    gt: np.ndarray
    attrs: dict[str, bool | np.ndarray] = field(default_factory=dict)
    absent: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        if len(self.gt) != len(self.frame_paths):
            raise SourceError(f"sequence {self.name}: {len(self.frame_paths)} frames but "
                              f"{len(self.gt)} ground-truth rows")
        if self.absent is not None:
            self.absent = np.asarray(self.absent, dtype=bool).reshape(-1)
            if len(self.absent) != len(self.frame_paths):
                raise SourceError(f"sequence {self.name}: absence flags for {len(self.absent)} of "
                                  f"{len(self.frame_paths)} frames")

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 BGR, read from disk now."""
        path = self.frame_paths[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"sequence {self.name}: cannot read frame {path} (missing or corrupt)")
        return image

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.frame(i)

    @property
    def valid(self) -> np.ndarray:
        """``(N,)`` bool: frames with usable ground truth (finite, positive size, target present)."""
        ok = np.isfinite(self.gt).all(axis=1) & (self.gt[:, 2] > 0) & (self.gt[:, 3] > 0)
        return ok if self.absent is None else ok & ~self.absent

    @property
    def init_box(self) -> tuple[float, float, float, float]:
        """The box a one-pass evaluation starts from: the first frame's ground truth."""
        if not self.valid[:1].all():
            raise SourceError(f"sequence {self.name}: the first frame has no valid ground-truth box")
        return tuple(float(v) for v in self.gt[0])  # type: ignore[return-value]


@dataclass
class Dataset:
    """A named list of sequences (a benchmark, a synthetic set, a training source)."""

    name: str
    sequences: list[Sequence]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self.sequences)

    def __getitem__(self, key: int | str) -> Sequence:
        if isinstance(key, int):
            return self.sequences[key]
        for seq in self.sequences:
            if seq.name == key:
                return seq
        raise KeyError(f"dataset {self.name} has no sequence {key!r}")

    @property
    def attribute_names(self) -> list[str]:
        return sorted({a for s in self.sequences for a in s.attrs})
