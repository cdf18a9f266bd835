"""Semi-synthetic nighttime UAV tracking sequences with exact ground truth and daylight twins (``mlkd synth``).

A sequence is a drone's view of a photographic ground plane: a collage of real photos (the
sample photos shipped inside scikit-image, or the user's images and videos) with occluders
(patches the target passes under) and street lighting. A target cut from a real photo moves
over it with speed changes and turns, changes scale (and orientation, for vehicle-like targets);
look-alike distractors (recoloured copies) roam nearby. The camera follows the target like an
operator would: smooth pan with lag, zoom (altitude change), roll drift, shake, and now and then
a pan that leaves the target out of view. Every frame is rendered twice from the same geometry:
the daylight twin, and the night frame through :mod:`mlkd_training.data.degrade` (lighting,
exposure, sensor noise, tone curve, JPEG), with motion blur from the longer night shutter.

Ground truth is exact: the box is the axis-aligned extent of the target's silhouette (the
0.5 level of its alpha matte) mapped through the same affine transform the renderer uses,
clipped to the frame. Frames where under 5 % of the target is visible (full occlusion, out of
view) have no box and are flagged absent. All ranges are in :class:`MotionRanges`,
:class:`~mlkd_training.data.degrade.NightRanges` and ``docs/synthetic_data.md``.

Layout written by :func:`generate_dataset` (readable by :func:`~mlkd_training.data.readers.open_dataset`)::

    <out>/night/data_seq/<seq>/000001.jpg   <out>/night/anno/<seq>.txt   <out>/night/<name>-night.json
    <out>/day/...   (same names and boxes)   <out>/meta/<seq>.json (all parameters)   <out>/synth.json
"""
from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from mlkd_tracker.errors import InputError, SourceError
from mlkd_tracker.report import write_json_atomic, write_text_atomic
from mlkd_tracker.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, natural_key
from mlkd_training.data.degrade import (NightCamera, NightParams, NightRanges, draw_uniform, encode_jpeg,
                                        exposed_signal, sample_night_params)

# photographs shipped inside the scikit-image wheel (no download); the rest of skimage.data is
# microscopy, astronomy, text or synthetic test patterns
BUILTIN_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                  "grass.png", "gravel.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg")
GROUND_TEXTURES = ("brick.png", "grass.png", "gravel.png", "moon.png")  # favoured for the ground
FRAMES_PER_VIDEO = 8
MIN_VISIBLE = 0.05  # below this visible fraction a frame has no ground truth


@dataclass(frozen=True)
class MotionRanges:
    """Uniform ranges of the scene, target and camera motion (sizes in pixels of the output frame)."""

    target_size: tuple[float, float] = (14.0, 56.0)
    target_aspect: tuple[float, float] = (0.35, 1.0)
    target_speed: tuple[float, float] = (0.02, 0.15)  # target lengths per frame
    speed_change: tuple[float, float] = (0.4, 2.0)
    segment_frames: tuple[float, float] = (25.0, 100.0)
    turn_rate: tuple[float, float] = (0.0, 3.0)
    rigid_probability: float = 0.6
    scale_drift: tuple[float, float] = (0.0, 0.35)
    camera_lag: tuple[float, float] = (0.12, 0.4)
    pan_wander: tuple[float, float] = (0.0, 0.25)
    zoom_drift: tuple[float, float] = (0.0, 0.3)
    roll_drift: tuple[float, float] = (0.0, 12.0)
    shake: tuple[float, float] = (0.0, 2.5)
    out_of_view_probability: float = 0.3
    occluders: tuple[float, float] = (0.0, 3.0)
    occlusion_probability: float = 0.6
    distractors: tuple[float, float] = (0.0, 3.0)
    clutter_per_megapixel: tuple[float, float] = (10.0, 60.0)
    day_shutter: tuple[float, float] = (0.03, 0.15)


@dataclass(frozen=True)
class SynthConfig:
    """What ``generate_dataset`` makes: how many sequences, their size and length, sources and ranges."""

    sequences: int = 20
    frames: tuple[int, int] = (150, 300)
    width: int = 640
    height: int = 360
    image_dirs: tuple[str, ...] = ()
    builtin_images: bool = True
    name: str = "MLKDSynth"
    day_jpeg_quality: int = 90
    motion: MotionRanges = MotionRanges()
    night: NightRanges = NightRanges()

    def __post_init__(self) -> None:
        if self.sequences < 1:
            raise InputError(f"need at least one sequence, got {self.sequences}")
        if not 2 <= self.frames[0] <= self.frames[1]:
            raise InputError(f"frames per sequence must be a range (min, max) with 2 <= min <= max, got {self.frames}")
        if self.width < 64 or self.height < 64:
            raise InputError(f"frame size must be at least 64x64, got {self.width}x{self.height}")
        if not self.builtin_images and not self.image_dirs:
            raise InputError("no photo source: give image folders or keep the built-in photos")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def builtin_photo_paths() -> list[Path]:
    """The scikit-image sample photographs present on disk."""
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [folder / name for name in BUILTIN_PHOTOS if (folder / name).is_file()]


@dataclass(frozen=True)
class PhotoSource:
    """An image file, or one frame of a video file."""

    path: str
    frame: int | None = None

    @property
    def ground_weight(self) -> float:
        """How likely the photo is picked for the ground (built-in textures 3x)."""
        return 3.0 if Path(self.path).name in GROUND_TEXTURES else 1.0


def list_photo_sources(image_dirs: tuple[str, ...], builtin: bool = True) -> list[PhotoSource]:
    """Every usable photo: built-in ones and images / sampled video frames in the named folders."""
    sources = [PhotoSource(str(p)) for p in builtin_photo_paths()] if builtin else []
    for folder in image_dirs:
        root = Path(folder)
        if not root.is_dir():
            raise SourceError(f"image folder not found: {root}")
        found = 0
        for path in sorted(root.rglob("*"), key=lambda p: natural_key(str(p))):
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                sources.append(PhotoSource(str(path)))
                found += 1
            elif suffix in VIDEO_SUFFIXES:
                capture = cv2.VideoCapture(str(path))
                count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
                capture.release()
                for k in range(min(FRAMES_PER_VIDEO, count)):
                    sources.append(PhotoSource(str(path), int((k + 0.5) * count / min(FRAMES_PER_VIDEO, count))))
                found += count > 0
        if not found:
            raise SourceError(f"no images or readable videos in {root} (images: {', '.join(sorted(IMAGE_SUFFIXES))}; "
                              f"videos: {', '.join(sorted(VIDEO_SUFFIXES))})")
    if not sources:
        raise SourceError("no photos: scikit-image's sample images are missing and no image folder was given")
    return sources


@lru_cache(maxsize=32)
def load_photo(source: PhotoSource) -> np.ndarray:
    """A photo as BGR uint8 (grey photos expanded to 3 channels), at most 1024 px on its longer side."""
    if source.frame is None:
        image = cv2.imread(source.path, cv2.IMREAD_COLOR)
    else:
        capture = cv2.VideoCapture(source.path)
        capture.set(cv2.CAP_PROP_POS_FRAMES, source.frame)
        ok, image = capture.read()
        capture.release()
        image = image if ok else None
    if image is None or min(image.shape[:2]) < 16:
        raise SourceError(f"cannot read photo {source.path}" + ("" if source.frame is None else f" frame {source.frame}"))
    scale = 1024 / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image


def _is_grey(image: np.ndarray) -> bool:
    small = image[::8, ::8].astype(np.int16)
    return bool(np.abs(small[..., 0] - small[..., 1]).max() < 4 and np.abs(small[..., 1] - small[..., 2]).max() < 4)


def _affine(angle_deg: float, scale: float, src_center, dst_center) -> np.ndarray:
    """3x3 matrix: rotate by ``angle_deg`` and scale about ``src_center``, moved to ``dst_center``."""
    a = math.radians(angle_deg)
    c, s = math.cos(a) * scale, math.sin(a) * scale
    return np.array([[c, -s, dst_center[0] - c * src_center[0] + s * src_center[1]],
                     [s, c, dst_center[1] - s * src_center[0] - c * src_center[1]], [0, 0, 1]])


def photo_patch(photo: np.ndarray, width: int, height: int, rng: np.random.Generator,
                scale: tuple[float, float] = (0.6, 1.6), tint: bool = True) -> np.ndarray:
    """A ``width x height`` view of ``photo``: random centre, rotation, scale, flip; grey photos tinted."""
    h, w = photo.shape[:2]
    s = draw_uniform(rng, scale)
    m = _affine(draw_uniform(rng, (-180.0, 180.0)), s, (rng.uniform(0, w), rng.uniform(0, h)),
                ((width - 1) / 2, (height - 1) / 2))
    patch = cv2.warpAffine(photo, m[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    if tint and _is_grey(photo):
        patch = cv2.multiply(patch, (*rng.uniform(0.55, 1.15, 3), 0.0))  # saturating, in uint8
    return cv2.convertScaleAbs(patch, alpha=rng.uniform(0.75, 1.2), beta=rng.uniform(-12, 12))


def superellipse_alpha(width: int, height: int, a: float, b: float, power: float, feather: float = 1.0):
    """Alpha matte (float32) of a superellipse with semi-axes ``a, b`` centred in a ``width x height`` patch.

    The 0.5 level is the exact boundary ``|x/a|^p + |y/b|^p = 1`` (pixel-centre coordinates);
    also returns 128 boundary points for the ground-truth box.
    """
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    rho = (np.abs((xs - cx) / a) ** power + np.abs((ys - cy) / b) ** power) ** (1.0 / power)
    alpha = np.clip(0.5 + (1.0 - rho) * min(a, b) / (2.0 * feather), 0.0, 1.0).astype(np.float32)
    t = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    ct, st = np.cos(t), np.sin(t)
    boundary = np.column_stack([cx + a * np.sign(ct) * np.abs(ct) ** (2 / power),
                                cy + b * np.sign(st) * np.abs(st) ** (2 / power)])
    return alpha, boundary


def smooth_noise(n: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """``n`` samples of unit-variance Gaussian noise smoothed over ``sigma`` frames."""
    pad = int(3 * sigma) + 1
    white = rng.standard_normal(n + 2 * pad)
    kernel = np.exp(-0.5 * (np.arange(-pad, pad + 1) / max(sigma, 1e-3)) ** 2)
    smooth = np.convolve(white, kernel / kernel.sum(), mode="same")[pad:pad + n]
    return smooth / max(float(smooth.std()), 1e-9)


def motion_kernel(dx: float, dy: float) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Normalised linear blur kernel for a displacement of ``(dx, dy)`` px during the exposure.

    Returns the kernel cropped to its non-zero support (a near-horizontal smear is a few rows, so
    ``cv2.filter2D`` does a fraction of the work) and the anchor ``(x, y)`` of the zero-shift tap
    inside it, for ``filter2D(..., anchor=anchor)``. None under 1.5 px: such a smear is below what
    the bilinear warp, noise reduction and JPEG already soften, and skipping it saves a full-frame
    filter on most frames of slow clips.
    """
    length = math.hypot(dx, dy)
    if length < 1.5:
        return None
    n = 2 * int(math.ceil(length / 2)) + 3
    t = np.linspace(-0.5, 0.5, int(length * 4) + 2)
    x, y = n // 2 + t * dx, n // 2 + t * dy
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((n, n), np.float32)
    for ox, oy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + oy, x0 + ox), wgt)  # bilinear splats of points along the path
    rows, cols = np.flatnonzero(kernel.any(axis=1)), np.flatnonzero(kernel.any(axis=0))
    support = kernel[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return support / support.sum(), (n // 2 - int(cols[0]), n // 2 - int(rows[0]))


def build_ground(photos: list[np.ndarray], width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A collage of overlapping photo patches blended with smooth windows, seen from altitude (shrunk)."""
    tile = max(draw_uniform(rng, (300.0, 480.0)), math.sqrt(width * height / 30.0))  # at most ~40 patches
    size = int(tile * 1.5)
    window = np.outer(np.hanning(size + 2)[1:-1], np.hanning(size + 2)[1:-1]).astype(np.float32) + 1e-4
    acc = np.zeros((height, width, 3), np.float32)
    weight = np.zeros((height, width), np.float32)
    for gy in range(int(math.ceil(height / tile)) + 1):
        for gx in range(int(math.ceil(width / tile)) + 1):
            x0 = int((gx + rng.uniform(-0.2, 0.2)) * tile - size / 2)
            y0 = int((gy + rng.uniform(-0.2, 0.2)) * tile - size / 2)
            xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + size, width), min(y0 + size, height)
            if xa >= xb or ya >= yb:
                continue
            patch = photo_patch(photos[int(rng.integers(len(photos)))], size, size, rng, (0.3, 0.9)).astype(np.float32)
            win = window[ya - y0:yb - y0, xa - x0:xb - x0]
            acc[ya:yb, xa:xb] += patch[ya - y0:yb - y0, xa - x0:xb - x0] * win[..., None]
            weight[ya:yb, xa:xb] += win
    return np.clip(acc / weight[..., None], 0, 255).astype(np.uint8)


def textured_crop(photo: np.ndarray, width: int, height: int, rng: np.random.Generator, tries: int = 6) -> np.ndarray:
    """The most textured of a few random ``photo_patch`` draws (targets should have some appearance)."""
    best, best_score = None, -1.0
    for _ in range(tries):
        patch = photo_patch(photo, width, height, rng, scale=(0.5, 1.4))
        score = float(cv2.Laplacian(cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY), cv2.CV_32F).std() + patch.std())
        if score > best_score:
            best, best_score = patch, score
    return best


@dataclass
class Sprite:
    """A cut-out object: BGRA patch (alpha = matte), silhouette boundary and per-frame pose in the world."""

    bgra: np.ndarray
    boundary: np.ndarray
    position: np.ndarray  # (N, 2) world
    angle: np.ndarray  # (N,) degrees
    scale: np.ndarray  # (N,)

    def matrix(self, t: int) -> np.ndarray:
        """3x3 patch -> world transform at frame ``t``."""
        h, w = self.bgra.shape[:2]
        return _affine(float(self.angle[t]), float(self.scale[t]), ((w - 1) / 2, (h - 1) / 2), self.position[t])


@dataclass
class SynthFrame:
    """One rendered frame pair and its annotation."""

    index: int
    day: np.ndarray
    night: np.ndarray  # before JPEG
    box: np.ndarray  # x, y, w, h (NaN when absent)
    visible: float  # fraction of the target's silhouette visible in the frame
    in_view: float  # fraction inside the frame (occluders ignored)
    illumination: float  # night illumination on the target (1 = scene mean)
    distractor_in_view: bool
    camera_motion: float  # px the ground moved since the previous frame


def _draw_length(rng: np.random.Generator, config: SynthConfig) -> int:
    """A sequence's frame count: the first draw of its generator."""
    return int(rng.integers(config.frames[0], config.frames[1] + 1))


def sequence_length(config: SynthConfig, seed: int, index: int) -> int:
    """Frames of sequence ``index`` without planning it."""
    return _draw_length(np.random.default_rng([seed, index]), config)


def _plan_path(n: int, start: np.ndarray, rng: np.random.Generator, m: MotionRanges,
               length: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and headings (degrees) of a target ``length`` px long with speed changes and turns."""
    base = draw_uniform(rng, m.target_speed) * length
    speed = np.empty(n)
    turn = np.empty(n)
    t = 0
    while t < n:
        length = int(draw_uniform(rng, m.segment_frames))
        speed[t:t + length] = base * draw_uniform(rng, m.speed_change)
        turn[t:t + length] = draw_uniform(rng, m.turn_rate) * rng.choice([-1.0, 1.0]) * (rng.random() < 0.6)
        t += length
    kernel = np.hanning(17) / np.hanning(17).sum()
    speed = np.convolve(np.pad(speed, 8, mode="edge"), kernel, mode="valid")
    heading = draw_uniform(rng, (0.0, 360.0)) + np.cumsum(turn) + 8.0 * smooth_noise(n, rng, 20.0)
    step = np.column_stack([np.cos(np.radians(heading)), np.sin(np.radians(heading))]) * speed[:, None]
    positions = start + np.vstack([np.zeros(2), np.cumsum(step[:-1], axis=0)])
    return positions, heading


class SyntheticSequence:
    """One planned sequence (scene, lighting, trajectories, camera); ``frames()`` renders it.

    World coordinates are pixels of the ground canvas, which is built just large enough to hold
    every view of the camera path; its day version is BGR + an unused channel and its night
    version the exposed signal codes + the occluder matte, 4 channels so one warp fetches all.
    """

    def __init__(self, config: SynthConfig, seed: int, index: int, photos: list[PhotoSource] | None = None):
        self.config, self.index = config, index
        self.name = f"{config.name.lower()}_{index + 1:04d}"
        rng = np.random.default_rng([seed, index])
        m, w, h = config.motion, config.width, config.height
        n = self.length = _draw_length(rng, config)
        sources = photos if photos is not None else list_photo_sources(config.image_dirs, config.builtin_images)
        weights = np.array([src.ground_weight for src in sources])
        picks = rng.choice(len(sources), size=min(len(sources), int(rng.integers(2, 5))), replace=False,
                           p=weights / weights.sum())
        ground_photos = [load_photo(sources[int(i)]) for i in picks]
        target_photo = load_photo(sources[int(rng.integers(len(sources)))])

        # target (sizes in frame pixels at the first frame's zoom, 1.0), path planned from the origin
        self.rigid = bool(rng.random() < m.rigid_probability)
        long_side = draw_uniform(rng, m.target_size)
        short_side = max(6.0, long_side * draw_uniform(rng, m.target_aspect))
        tw, th = (long_side, short_side) if self.rigid or rng.random() < 0.5 else (short_side, long_side)
        path, heading = _plan_path(n, np.zeros(2), rng, m, long_side)
        scale = np.exp(draw_uniform(rng, m.scale_drift) * smooth_noise(n, rng, 60.0))
        scale /= scale[0]
        angle = heading.copy() if self.rigid else np.full(n, draw_uniform(rng, (-30.0, 30.0)))  # vehicles turn

        # camera: follows the target with lag, framing wander, pan-away events, zoom, roll, shake
        lag = draw_uniform(rng, m.camera_lag)
        wander = draw_uniform(rng, m.pan_wander) * np.column_stack([smooth_noise(n, rng, 40.0) * w,
                                                                 smooth_noise(n, rng, 40.0) * h])
        wander -= wander[0]
        if rng.random() < m.out_of_view_probability and n > 60:
            t0, dur = int(rng.integers(30, n - 20)), int(rng.integers(15, 50))
            bump = np.sin(np.clip((np.arange(n) - t0) / dur, 0, 1) * np.pi) ** 2
            direction = rng.normal(0, 1, 2)
            wander += bump[:, None] * direction / np.linalg.norm(direction) * rng.uniform(0.4, 0.7) * np.hypot(w, h)
        goal = path + wander + rng.uniform(-0.1, 0.1, 2) * np.array([w, h])  # framing offset
        centre = np.empty_like(goal)
        lead = np.clip((goal[1] - goal[0]) * (1 - lag) / lag, -0.2 * np.array([w, h]), 0.2 * np.array([w, h]))
        centre[0] = goal[0] - lead  # already following: steady-state lag (the target starts in view)
        for t in range(1, n):
            centre[t] = centre[t - 1] + lag * (goal[t] - centre[t - 1])
        shake_px = draw_uniform(rng, m.shake)
        centre += shake_px * np.column_stack([smooth_noise(n, rng, 1.2), smooth_noise(n, rng, 1.2)])
        self.cam_zoom = np.clip(np.exp(draw_uniform(rng, m.zoom_drift) * smooth_noise(n, rng, 80.0)), 0.5, 2.0)
        self.cam_zoom /= self.cam_zoom[0]
        self.cam_roll = (draw_uniform(rng, m.roll_drift) * smooth_noise(n, rng, 90.0)
                         + 0.3 * shake_px * smooth_noise(n, rng, 1.5))
        self.cam_roll += rng.uniform(-10, 10) - self.cam_roll[0]

        # the ground canvas covers every view (plus a margin for blur kernels); shift the world onto it
        self.cam_centre = centre
        corners = np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
        views = np.hstack([np.linalg.solve(self.camera_matrix(t), corners)[:2] for t in range(n)])
        origin = np.floor(views.min(axis=1)) - 16
        self.world_w, self.world_h = (np.ceil(views.max(axis=1) - origin) + 16).astype(int)
        path, self.cam_centre = path - origin, centre - origin
        self.target = self._make_sprite(target_photo, tw, th, path, angle, scale, rng)
        ground = build_ground(ground_photos, self.world_w, self.world_h, rng)
        clutter = [load_photo(sources[int(i)]) for i in rng.integers(len(sources), size=3)]
        for _ in range(int(rng.poisson(draw_uniform(rng, m.clutter_per_megapixel) * self.world_w * self.world_h / 1e6))):
            _paint_cutout(ground, None, clutter[int(rng.integers(3))], rng.uniform(0, 1, 2) * [self.world_w, self.world_h],
                          long_side * rng.uniform(0.6, 3.0), rng, darken=(0.7, 1.1), power=(2.0, 6.0), feather=1.0)

        # look-alike distractors: recoloured copies of the target passing near it
        self.distractors = []
        for _ in range(int(round(draw_uniform(rng, m.distractors)))):
            t0 = int(rng.integers(0, n))
            d_path, d_heading = _plan_path(n, np.zeros(2), rng, m, long_side)
            d_path += path[t0] + rng.normal(0, 1, 2) * 0.25 * np.array([w, h]) - d_path[t0]
            d_angle = d_heading - d_heading[0] + angle[0] if self.rigid else np.full(n, angle[0] + rng.uniform(-40, 40))
            bgra = self.target.bgra.copy()
            bgra[..., :3] = np.clip(bgra[..., :3] * rng.uniform(0.8, 1.2, 3), 0, 255)
            self.distractors.append(Sprite(bgra, self.target.boundary, d_path, d_angle, scale * rng.uniform(0.85, 1.15)))

        # occluders painted on the ground (and in the matte that puts them over moving objects)
        occluder = np.zeros((self.world_h, self.world_w), np.float32)
        for _ in range(int(round(draw_uniform(rng, m.occluders)))):
            side = long_side * rng.uniform(1.3, 3.0)
            if rng.random() < m.occlusion_probability and n > 40:  # on the target's path, later on
                spots = path[rng.integers(30, n, 20)] + rng.normal(0, 0.3 * long_side, (20, 2))
            else:
                spots = rng.uniform(0, 1, (20, 2)) * [self.world_w, self.world_h]
            clear = [p for p in spots if np.linalg.norm(path[0] - p) >= side + long_side]  # the first frame shows it
            if not clear:
                continue
            at = clear[0]
            _paint_cutout(ground, occluder, ground_photos[int(rng.integers(len(ground_photos)))], at, side, rng)

        # night lighting and camera for the whole canvas
        self.night_params: NightParams = sample_night_params(rng, config.night, self.world_w * self.world_h / 1e6)
        self.day_shutter = draw_uniform(rng, m.day_shutter)
        self.camera = NightCamera(self.night_params, self.world_w, self.world_h, seed=int(rng.integers(2 ** 31)))
        self.camera.calibrate(ground)
        self.day_canvas = np.dstack([ground, np.zeros_like(ground[..., 0])])
        self.night_canvas = np.dstack([self.camera.expose(ground), np.round(occluder * 255).astype(np.uint8)])
        self._frame_seed = int(rng.integers(2 ** 31))

    def _make_sprite(self, photo, tw, th, path, angle, scale, rng) -> Sprite:
        pw, ph = int(math.ceil(tw)) + 4, int(math.ceil(th)) + 4
        alpha, boundary = superellipse_alpha(pw, ph, tw / 2, th / 2, draw_uniform(rng, (2.5, 6.0)))
        bgra = np.dstack([textured_crop(photo, pw, ph, rng), np.round(alpha * 255).astype(np.uint8)])
        return Sprite(bgra, boundary, path, angle, scale)

    def camera_matrix(self, t: int) -> np.ndarray:
        """3x3 world -> frame transform at frame ``t``."""
        w, h = self.config.width, self.config.height
        return _affine(float(self.cam_roll[t]), float(self.cam_zoom[t]), self.cam_centre[t], ((w - 1) / 2, (h - 1) / 2))

    def frames(self) -> Iterator[SynthFrame]:
        """Render every frame: daylight twin, night frame (before JPEG) and the annotation."""
        rng = np.random.default_rng(self._frame_seed)
        w, h = self.config.width, self.config.height
        prev_cam = self.camera_matrix(0)
        for t in range(self.length):
            cam = self.camera_matrix(t)
            centre_world = np.linalg.solve(cam, [(w - 1) / 2, (h - 1) / 2, 1.0])
            ground_shift = (cam - prev_cam) @ centre_world
            night4 = cv2.warpAffine(self.night_canvas, cam[:2], (w, h), flags=cv2.INTER_LINEAR)
            matte = night4[..., 3]
            day = cv2.cvtColor(cv2.warpAffine(self.day_canvas, cam[:2], (w, h), flags=cv2.INTER_LINEAR),
                               cv2.COLOR_BGRA2BGR)
            night = cv2.cvtColor(night4, cv2.COLOR_BGRA2BGR)
            for image, shutter in ((day, self.day_shutter), (night, self.night_params.shutter)):
                blur = motion_kernel(ground_shift[0] * shutter, ground_shift[1] * shutter)
                if blur is not None:
                    cv2.filter2D(image, -1, blur[0], dst=image, anchor=blur[1], borderType=cv2.BORDER_REFLECT_101)
            seen_distractor = False
            for sprite in self.distractors:
                seen_distractor |= self._draw(sprite, t, cam, prev_cam, day, night, matte) is not None
            stats = self._draw(self.target, t, cam, prev_cam, day, night, matte)
            box, visible, in_view, light = self._annotate(t, cam, stats)
            yield SynthFrame(t, day, self.camera.capture(night, rng), box, visible, in_view, light,
                             seen_distractor, float(np.hypot(ground_shift[0], ground_shift[1])))
            prev_cam = cam

    def _draw(self, sprite: Sprite, t: int, cam: np.ndarray, prev_cam: np.ndarray, day: np.ndarray,
              night: np.ndarray, matte: np.ndarray) -> tuple[float, float, float] | None:
        """Composite ``sprite`` into both frames under the occluder ``matte``.

        Returns (visible alpha, in-frame alpha, mean light on the sprite), or None when out of view.
        """
        w, h = self.config.width, self.config.height
        m = cam @ sprite.matrix(t)
        ph, pw = sprite.bgra.shape[:2]
        corners = m[:2] @ np.array([[0, pw - 1, 0, pw - 1], [0, 0, ph - 1, ph - 1], [1, 1, 1, 1]], np.float64)
        centre = np.array([(pw - 1) / 2, (ph - 1) / 2, 1.0])
        shift = m @ centre - prev_cam @ sprite.matrix(max(t - 1, 0)) @ centre
        margin = 2 + int(math.ceil(np.hypot(shift[0], shift[1]) * self.night_params.shutter / 2))
        x0 = max(int(math.floor(corners[0].min())) - margin, 0)
        y0 = max(int(math.floor(corners[1].min())) - margin, 0)
        x1 = min(int(math.ceil(corners[0].max())) + margin + 1, w)
        y1 = min(int(math.ceil(corners[1].max())) + margin + 1, h)
        if x0 >= x1 or y0 >= y1:
            return None
        size = (x1 - x0, y1 - y0)
        to_roi = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        layer = cv2.warpAffine(sprite.bgra, (to_roi @ m)[:2], size, flags=cv2.INTER_LINEAR)
        colour = layer[..., :3]
        alpha = layer[..., 3].astype(np.float32) * (1.0 / 255.0)
        occ = matte[y0:y1, x0:x1].astype(np.float32) * (1.0 / 255.0)
        step = self.camera.illumination_step
        grid = to_roi @ cam @ np.array([[step, 0, (step - 1) / 2], [0, step, (step - 1) / 2], [0, 0, 1]])
        light = cv2.warpAffine(self.camera.illumination_grid, grid[:2], size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        signal = exposed_signal(colour, light, self.camera.exposure)
        for frame, image, shutter in ((day, colour, self.day_shutter), (night, signal, self.night_params.shutter)):
            blur = motion_kernel(shift[0] * shutter, shift[1] * shutter)
            a = alpha if blur is None else cv2.filter2D(alpha, -1, blur[0], anchor=blur[1])
            if blur is not None:
                image = cv2.filter2D(image, -1, blur[0], anchor=blur[1], borderType=cv2.BORDER_REPLICATE)
            cover = (a * (1.0 - occ))[..., None]
            roi = frame[y0:y1, x0:x1]
            roi[:] = (roi * (1.0 - cover) + image * cover + 0.5).astype(np.uint8)
        seen = float((alpha * (1.0 - occ)).sum())
        lit = float((light.mean(axis=2) * alpha).sum() / max(float(alpha.sum()), 1e-6))
        return seen, float(alpha.sum()), lit

    def _annotate(self, t: int, cam: np.ndarray, stats) -> tuple[np.ndarray, float, float, float]:
        """Exact box of the target silhouette (clipped to the frame), visible and in-view fractions."""
        w, h = self.config.width, self.config.height
        m = cam @ self.target.matrix(t)
        total = float(self.target.bgra[..., 3].sum()) / 255.0 * abs(float(np.linalg.det(m[:2, :2])))
        seen, inside, light = stats if stats is not None else (0.0, 0.0, float("nan"))
        visible, in_view = min(seen / total, 1.0), min(inside / total, 1.0)
        pts = m[:2] @ np.vstack([self.target.boundary.T, np.ones(len(self.target.boundary))])
        x1, y1 = max(float(pts[0].min()) + 0.5, 0.0), max(float(pts[1].min()) + 0.5, 0.0)
        x2, y2 = min(float(pts[0].max()) + 0.5, float(w)), min(float(pts[1].max()) + 0.5, float(h))
        if visible < MIN_VISIBLE or x2 - x1 < 1.0 or y2 - y1 < 1.0:
            return np.full(4, np.nan), visible, in_view, light
        return np.array([x1, y1, x2 - x1, y2 - y1]), visible, in_view, light


def _paint_cutout(ground: np.ndarray, matte: np.ndarray | None, photo: np.ndarray, at, side: float,
                  rng: np.random.Generator, darken=(0.5, 0.9), power=(1.8, 3.0), feather: float = 2.5) -> None:
    """Paint a photo patch with a superellipse outline at ``at`` (clutter, or an occluder recorded in ``matte``)."""
    size = int(side * 1.2) + 6
    alpha, _ = superellipse_alpha(size, size, side / 2, side / 2 * rng.uniform(0.6, 1.0), draw_uniform(rng, power),
                                  feather=feather)
    patch = photo_patch(photo, size, size, rng).astype(np.float32) * draw_uniform(rng, darken)
    r = int(math.ceil(size * 0.75))
    x0, y0 = max(int(at[0]) - r, 0), max(int(at[1]) - r, 0)
    x1, y1 = min(int(at[0]) + r, ground.shape[1]), min(int(at[1]) + r, ground.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    m = _affine(rng.uniform(0, 180), 1.0, ((size - 1) / 2, (size - 1) / 2), (at[0] - x0, at[1] - y0))[:2]
    warped = cv2.warpAffine(patch, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(alpha, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
    roi = ground[y0:y1, x0:x1]
    roi[:] = (roi * (1 - a) + warped * a + 0.5).astype(np.uint8)
    if matte is not None:
        np.maximum(matte[y0:y1, x0:x1], a[..., 0], out=matte[y0:y1, x0:x1])


def sequence_attributes(records: list[dict[str, Any]], night: bool) -> list[str]:
    """UAV123-style attributes measured on the generated sequence (IV only for the night version)."""
    boxes = np.array([r["box"] if r["box"] is not None else [np.nan] * 4 for r in records], np.float64)
    valid = np.isfinite(boxes).all(axis=1)
    attrs = []
    if valid.any():
        area = boxes[valid, 2] * boxes[valid, 3]
        aspect = boxes[valid, 2] / boxes[valid, 3]
        if ((area / area[0] > 2) | (area / area[0] < 0.5)).any():
            attrs.append("SV")
        if ((aspect / aspect[0] > 2) | (aspect / aspect[0] < 0.5)).any():
            attrs.append("ARC")
        if (area < 400).any():
            attrs.append("LR")
        centres = boxes[:, :2] + boxes[:, 2:] / 2
        steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        if np.nan_to_num(steps, nan=0.0).max(initial=0.0) > 20:
            attrs.append("FM")
    visible = np.array([r["visible"] for r in records])
    in_view = np.array([r["in_view"] for r in records])
    occluded = in_view - visible
    if ((occluded > 0.1 * np.maximum(in_view, 1e-6)) & (visible >= MIN_VISIBLE)).any():
        attrs.append("POC")
    if ((visible < MIN_VISIBLE) & (in_view >= 0.5)).any():
        attrs.append("FOC")
    if (in_view < 0.99).any():
        attrs.append("OV")
    if max(r["camera_motion"] for r in records) > 10:
        attrs.append("CM")
    if np.mean([r["distractor_in_view"] for r in records]) > 0.1:
        attrs.append("SOB")
    light = np.array([np.nan if r["illumination"] is None else r["illumination"] for r in records])
    light = light[np.isfinite(light) & (visible >= MIN_VISIBLE)]
    if night and light.size and light.max() > 3 * max(light.min(), 1e-6):
        attrs.append("IV")
    return attrs


def _box_line(box: list[float] | None) -> str:
    return "NaN,NaN,NaN,NaN" if box is None else ",".join(f"{v:.3f}" for v in box)


def write_sequence(seq: SyntheticSequence, out_dir: Path) -> dict[str, Any]:
    """Render ``seq`` into ``out_dir`` (frames, annotation, meta) and return its meta record."""
    cfg = seq.config
    frame_dirs = {kind: out_dir / kind / "data_seq" / seq.name for kind in ("night", "day")}
    partial = {kind: d.with_name(d.name + ".partial") for kind, d in frame_dirs.items()}
    for d in list(partial.values()) + list(frame_dirs.values()):
        shutil.rmtree(d, ignore_errors=True)
    for d in partial.values():
        d.mkdir(parents=True)
    records = []
    for frame in seq.frames():
        name = f"{frame.index + 1:06d}.jpg"
        (partial["day"] / name).write_bytes(encode_jpeg(frame.day, cfg.day_jpeg_quality))
        (partial["night"] / name).write_bytes(encode_jpeg(frame.night, seq.night_params.jpeg_quality))
        records.append({"box": frame.box.tolist() if np.isfinite(frame.box).all() else None,
                        "visible": frame.visible, "in_view": frame.in_view,
                        "illumination": frame.illumination if math.isfinite(frame.illumination) else None,
                        "distractor_in_view": frame.distractor_in_view, "camera_motion": frame.camera_motion})
    anno = "".join(_box_line(r["box"]) + "\n" for r in records)
    for kind in ("night", "day"):
        os.replace(partial[kind], frame_dirs[kind])
        write_text_atomic(out_dir / kind / "anno" / f"{seq.name}.txt", anno)
    meta = {"name": seq.name, "frames": seq.length, "index": seq.index,
            "attributes": {"night": sequence_attributes(records, True), "day": sequence_attributes(records, False)},
            "night_params": seq.night_params.to_dict(), "exposure": seq.camera.exposure,
            "rigid_target": seq.rigid, "distractors": len(seq.distractors),
            "boxes": [r["box"] for r in records], "visible": [r["visible"] for r in records],
            "in_view": [r["in_view"] for r in records], "illumination": [r["illumination"] for r in records]}
    write_json_atomic(out_dir / "meta" / f"{seq.name}.json", meta)
    return meta


def _pysot_entry(meta: dict[str, Any], kind: str) -> dict[str, Any]:
    boxes = [b if b is not None else [0.0, 0.0, 0.0, 0.0] for b in meta["boxes"]]
    visible = [int(b is not None) for b in meta["boxes"]]
    names = [f"data_seq/{meta['name']}/{i + 1:06d}.jpg" for i in range(meta["frames"])]
    return {"video_dir": f"data_seq/{meta['name']}", "init_rect": boxes[0], "img_names": names,
            "gt_rect": boxes, "attr": meta["attributes"][kind], "absent": visible}


@dataclass
class SynthSummary:
    """What ``generate_dataset`` produced."""

    out_dir: Path
    sequences: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0


def _sequence_done(out_dir: Path, name: str) -> bool:
    return (out_dir / "meta" / f"{name}.json").is_file() and all(
        (out_dir / kind / "data_seq" / name).is_dir() and (out_dir / kind / "anno" / f"{name}.txt").is_file()
        for kind in ("night", "day"))


_worker_state: dict[str, Any] = {}


def _worker_init(config: SynthConfig, seed: int, out_dir: str, photos: list[PhotoSource]) -> None:
    cv2.setNumThreads(1)
    _worker_state.update(config=config, seed=seed, out_dir=Path(out_dir), photos=photos)


def _worker_run(index: int) -> dict[str, Any]:
    s = _worker_state
    return write_sequence(SyntheticSequence(s["config"], s["seed"], index, s["photos"]), s["out_dir"])


def generate_dataset(out_dir: str | os.PathLike, config: SynthConfig = SynthConfig(), seed: int = 0,
                     workers: int = 1, progress: bool = True, resume: bool = True) -> SynthSummary:
    """Generate ``config.sequences`` night sequences with daylight twins; deterministic for a seed.

    Sequences already complete in ``out_dir`` (same seed and config) are kept when ``resume``.
    """
    import time

    from tqdm import tqdm

    out_dir = Path(out_dir)
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    settings = {"config": config.to_dict(), "seed": seed}
    settings_file = out_dir / "synth.json"
    if settings_file.is_file() and resume:
        previous = json.loads(settings_file.read_text())
        if {k: previous.get(k) for k in settings} != json.loads(json.dumps(settings)):
            raise InputError(f"{out_dir} holds a synthetic set made with another seed or config; "
                             f"choose an empty folder or pass --force to overwrite it")
    photos = list_photo_sources(config.image_dirs, config.builtin_images)
    if not resume:
        for sub in ("night", "day", "meta"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    summary = SynthSummary(out_dir)
    names = [f"{config.name.lower()}_{i + 1:04d}" for i in range(config.sequences)]
    summary.sequences = names
    todo = [i for i, n in enumerate(names) if not (resume and _sequence_done(out_dir, n))]
    write_json_atomic(settings_file, {**settings, "version": 1, "sequences": names})
    t0 = time.perf_counter()
    bar = tqdm(total=sum(sequence_length(config, seed, i) for i in todo), unit="frame",
               desc=f"synth {config.name} ({len(todo)} sequences)", disable=not progress)
    with bar, contextlib.ExitStack() as stack:
        if workers == 1 or len(todo) <= 1:
            _worker_init(config, seed, str(out_dir), photos)
            metas = map(_worker_run, todo)
        else:
            pool = stack.enter_context(mp.get_context("spawn").Pool(workers, _worker_init,
                                                                    (config, seed, str(out_dir), photos)))
            metas = pool.imap_unordered(_worker_run, todo)
        for meta in metas:
            summary.generated.append(meta["name"])
            summary.frames += meta["frames"]
            bar.update(meta["frames"])
    summary.seconds = time.perf_counter() - t0
    metas = [json.loads((out_dir / "meta" / f"{n}.json").read_text()) for n in names]
    for kind in ("night", "day"):
        write_json_atomic(out_dir / kind / f"{config.name}-{kind}.json", {m["name"]: _pysot_entry(m, kind) for m in metas})
    return summary


def config_with(config: SynthConfig, **changes: Any) -> SynthConfig:
    """``config`` with top-level fields, or ``motion.<field>`` / ``night.<field>`` ranges, changed."""
    top, motion, night = {}, {}, {}
    motion_names = {f.name for f in fields(MotionRanges)}
    for key, value in changes.items():
        group, _, name = key.rpartition(".")
        if group == "night" or (not group and name not in {f.name for f in fields(SynthConfig)}
                                and name not in motion_names):
            night[name] = value
        elif group == "motion" or (not group and name in motion_names):
            motion[name] = value
        else:
            top[name] = value
    if motion:
        values = asdict(config.motion)
        for k, v in motion.items():
            if k not in values:
                raise InputError(f"unknown motion parameter {k}; expected one of {', '.join(sorted(values))}")
            values[k] = tuple(float(x) for x in v) if isinstance(values[k], tuple) else float(v)
            if isinstance(values[k], tuple) and len(values[k]) != 2:
                raise InputError(f"motion parameter {k} expects 2 numbers (low, high), got {v!r}")
        top["motion"] = MotionRanges(**values)
    if night:
        top["night"] = config.night.replace(**night)
    return replace(config, **top)
