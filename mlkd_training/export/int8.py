"""int8 for drones without a GPU: ONNX Runtime static quantisation calibrated on night crops.

Calibration crops are the ones the deployed tracker really sees: the fp32 ONNX model tracks a few
short night sequences and every template / search crop (and the kernels the search graph gets
with it) is recorded. Sequences come from a frames folder or a video, from any ``Dataset``
(ground-truth init boxes), or by default from generated night frames.

The defaults (QOperator format, per-channel weights, reduce_range, uint8 activations) were chosen
with ``bench/int8_variants.py`` on an AVX2 CPU without VNNI: u8s8 is the fastest kernel there
(u8u8 and s8s8 ran 1.2-1.3x over fp32 against 1.5-1.8x), and its 16-bit intermediate sums
saturate with 8-bit weights (4x the output error) unless the weights keep 7 bits (``reduce_range``).
QDQ graphs run as fast (ONNX Runtime fuses them into the same kernels).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from mlkd_tracker.backends.exported import ROLES, find_graph_pair, graph_paths, onnx_prefix, read_onnx_meta
from mlkd_tracker.backends.onnx_backend import OnnxRuntimeBackend
from mlkd_tracker.errors import InputError, ModelFileError, SourceError
from mlkd_tracker.report import write_bytes_atomic
from mlkd_tracker.sources import open_source
from mlkd_tracker.tracker import SiameseTracker

CalibrationSequence = tuple[Sequence[np.ndarray], tuple[float, float, float, float]]  # frames, init box
LAYER_GROUPS = ("first", "last", "xcorr")


@dataclass(frozen=True)
class QuantOptions:
    """ONNX Runtime static quantisation settings (``quantize_static``)."""

    quant_format: str = "qoperator"     # qoperator (QLinearConv nodes) or qdq (Quantize/Dequantize pairs)
    per_channel: bool = True            # one weight scale per output channel
    reduce_range: bool = True           # 7-bit weights: no u8s8 saturation on AVX2 / AVX-512 without VNNI
    activation_type: str = "u8"         # u8 or s8
    weight_type: str = "s8"             # s8 or u8
    calibrate_method: str = "minmax"    # minmax, entropy or percentile
    keep_fp32: tuple[str, ...] = ()     # layer groups left in fp32: first, last, xcorr

    def __post_init__(self) -> None:
        problems = []
        if self.quant_format not in ("qoperator", "qdq"):
            problems.append(f"quant_format {self.quant_format!r} (qoperator or qdq)")
        if self.activation_type not in ("u8", "s8") or self.weight_type not in ("u8", "s8"):
            problems.append(f"types {self.activation_type}/{self.weight_type} (u8 or s8)")
        if self.calibrate_method not in ("minmax", "entropy", "percentile"):
            problems.append(f"calibrate_method {self.calibrate_method!r} (minmax, entropy or percentile)")
        unknown = sorted(set(self.keep_fp32) - set(LAYER_GROUPS))
        if unknown:
            problems.append(f"layer groups {unknown} (known: {', '.join(LAYER_GROUPS)})")
        if problems:
            raise InputError("invalid int8 options: " + "; ".join(problems))


# ---------------------------------------------------------------- calibration sequences

def _sample_photos() -> list[np.ndarray]:
    """The colour sample photographs shipped inside scikit-image's wheel (BGR)."""
    try:
        import skimage
    except ImportError:
        raise InputError("generated calibration frames need scikit-image (pip install scikit-image); "
                         "or pass a frames folder / video with --calib") from None
    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                 "brick.png", "grass.png", "gravel.png", "camera.png", "coins.png"):
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is not None:
            photos.append(image)
    if not photos:
        raise InputError(f"no sample photos found in {folder}; pass a frames folder / video with --calib")
    return photos


@dataclass(frozen=True)
class NightCamera:
    """A low-light exposure drawn once per clip: exposure cut, street-light colour cast, shot and read noise."""

    exposure: float      # fraction of the daylight linear signal that reaches the sensor
    cast: tuple          # BGR gains: sodium / warm LED light is weak in blue
    photons: float       # full-well scale: fewer photons, more shot noise
    read_noise: float    # Gaussian read noise (fraction of full scale)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "NightCamera":
        return cls(float(rng.uniform(0.01, 0.08)), (float(rng.uniform(0.55, 0.9)), float(rng.uniform(0.8, 1.0)), 1.0),
                   float(rng.uniform(200, 1500)), float(rng.uniform(0.002, 0.01)))

    def __call__(self, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The daylight BGR ``frame`` as this camera records it at night."""
        signal = (frame.astype(np.float32) / 255.0) ** 2.2 * self.exposure * np.float32(self.cast)
        noisy = rng.poisson(signal * self.photons) / self.photons + rng.normal(0, self.read_noise, signal.shape)
        return (np.clip(noisy, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


def generated_night_clips(count: int = 16, frames: int = 5, size: tuple[int, int] = (640, 360),
                          seed: int = 0) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
    """Night clips with exact ground truth: ``(frames, gt)``, gt rows ``x, y, w, h``, generated one at a time.

    The background is a darkened sample photo under a drifting camera; the target is a patch of
    another photo moving on its own across it, inside the frame for the whole clip.
    """
    rng = np.random.default_rng(seed)
    photos = _sample_photos()
    w, h = size
    for _ in range(count):
        background, source = (photos[i] for i in rng.choice(len(photos), 2, replace=len(photos) < 2))
        scale = max(w / background.shape[1], h / background.shape[0]) * rng.uniform(1.1, 1.6)
        big = cv2.resize(background, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        x0, y0 = rng.uniform(0, big.shape[1] - w), rng.uniform(0, big.shape[0] - h)
        camera = rng.uniform(-4, 4, 2)  # pan, px per frame
        bw, bh = int(rng.uniform(0.06, 0.2) * w), int(rng.uniform(0.08, 0.25) * h)
        sy, sx = rng.integers(0, source.shape[0] - bh), rng.integers(0, source.shape[1] - bw)
        target = source[sy:sy + bh, sx:sx + bw]
        steps = max(frames - 1, 1)
        vx, vy = (rng.uniform(-1, 1) * 0.6 * (w - bw) / steps, rng.uniform(-1, 1) * 0.6 * (h - bh) / steps)
        x = rng.uniform(max(0, -vx * steps), min(w - bw, w - bw - vx * steps))
        y = rng.uniform(max(0, -vy * steps), min(h - bh, h - bh - vy * steps))
        camera_model = NightCamera.sample(rng)
        clip, gt = [], []
        for i in range(frames):
            m = np.float32([[1, 0, -(x0 + camera[0] * i)], [0, 1, -(y0 + camera[1] * i)]])
            frame = cv2.warpAffine(big, m, (w, h), borderMode=cv2.BORDER_REFLECT)
            tx, ty = int(round(x + vx * i)), int(round(y + vy * i))
            frame[ty:ty + bh, tx:tx + bw] = target
            clip.append(camera_model(frame, rng))
            gt.append((tx, ty, bw, bh))
        yield clip, np.asarray(gt, np.float64)


def generated_night_sequences(count: int = 16, frames: int = 5, size: tuple[int, int] = (640, 360),
                              seed: int = 0) -> list[CalibrationSequence]:
    """Calibration clips from :func:`generated_night_clips`, each with its first ground-truth box."""
    return [(clip, tuple(float(v) for v in gt[0])) for clip, gt in generated_night_clips(count, frames, size, seed)]


def source_sequences(source: str | os.PathLike, count: int = 16, frames: int = 5,
                     seed: int = 0) -> list[CalibrationSequence]:
    """Clips of ``frames`` consecutive frames from a frames folder or a video, each with a random target box."""
    rng = np.random.default_rng(seed)
    src = open_source(source)
    try:
        clips, clip = [], []
        for frame in src:
            clip.append(frame)
            if len(clip) == frames:
                clips.append(clip)
                clip = []
    finally:
        src.close()
    if not clips:
        raise SourceError(f"calibration source {source} has fewer than {frames} frames")
    picked = [clips[i] for i in sorted(rng.choice(len(clips), min(count, len(clips)), replace=False))]
    sequences = []
    for clip in picked:
        h, w = clip[0].shape[:2]
        bw, bh = rng.uniform(0.05, 0.2) * w, rng.uniform(0.05, 0.2) * h
        sequences.append((clip, (float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh)), float(bw), float(bh))))
    return sequences


def dataset_sequences(dataset: Iterable, count: int = 16, frames: int = 5) -> list[CalibrationSequence]:
    """The first ``frames`` frames of up to ``count`` sequences of a ``Dataset``, from their ground-truth boxes."""
    sequences = []
    for seq in dataset:
        if len(sequences) == count:
            break
        n = min(frames, len(seq))
        sequences.append(([seq.frame(i) for i in range(n)], seq.init_box))
    if not sequences:
        raise SourceError("calibration dataset has no sequences")
    return sequences


class CropRecorder:
    """A backend wrapper keeping every crop the tracker hands the fp32 model, with the kernels it used."""

    name = "crop-recorder"

    def __init__(self, inner: OnnxRuntimeBackend):
        self.inner = inner
        self.template_feeds: list[dict[str, np.ndarray]] = []
        self.search_feeds: list[dict[str, np.ndarray]] = []
        self.search_template: list[int] = []  # index of the template feed each search feed belongs to
        self._kernels: dict[str, np.ndarray] = {}

    def template(self, crop: np.ndarray):
        kernels = self.inner.template(crop)
        self.template_feeds.append({"template": self.inner.graph_input(crop, "template")})
        self._kernels = {"kernel_cls": kernels[0].numpy(), "kernel_loc": kernels[1].numpy()}
        return kernels

    def search(self, crop: np.ndarray, kernels):
        self.search_feeds.append({"search": self.inner.graph_input(crop, "search"), **self._kernels})
        self.search_template.append(len(self.template_feeds) - 1)
        return self.inner.search(crop, kernels)


def record_calibration_feeds(fp32_path: Path, sequences: Sequence[CalibrationSequence],
                             quiet: bool = False) -> CropRecorder:
    """Track ``sequences`` with the fp32 graphs, recording the template and search inputs."""
    backend = OnnxRuntimeBackend(find_graph_pair(fp32_path), "cpu")
    recorder = CropRecorder(backend)
    tracker = SiameseTracker(recorder, backend.meta.tracking)
    for frames, box in tqdm(sequences, desc="calibration crops", unit="clip", disable=quiet):
        tracker.init(frames[0], box)
        for frame in frames[1:]:
            tracker.update(frame)
    if not recorder.search_feeds:
        raise SourceError("calibration sequences need at least 2 frames each (one template, one search)")
    return recorder


# ---------------------------------------------------------------- quantisation

def layer_groups(model) -> dict[str, list[str]]:
    """Conv node names by group: ``first`` reads the crop, ``last`` writes an output, ``xcorr`` takes kernels as input."""
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    initializers = {t.name for t in model.graph.initializer}
    groups: dict[str, list[str]] = {g: [] for g in LAYER_GROUPS}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        if node.input[0] in {"template", "search"} & inputs:
            groups["first"].append(node.name)
        if set(node.output) & outputs:
            groups["last"].append(node.name)
        if node.input[1] not in initializers:
            groups["xcorr"].append(node.name)
    return groups


class _Feeds:
    """``CalibrationDataReader`` over recorded feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._iter = iter(feeds)

    def get_next(self):
        return next(self._iter, None)


def int8_prefix(fp32_path: str | os.PathLike) -> Path:
    """``<prefix>.int8`` for an fp32 export ``<prefix>``."""
    prefix = onnx_prefix(fp32_path)
    return prefix.with_name(prefix.name + ".int8")


def quantize_int8(fp32_path: str | os.PathLike, calibration: CropRecorder, options: QuantOptions = QuantOptions(),
                  out_prefix: str | os.PathLike | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write the int8 graph pair (default ``<prefix>.int8.{template,search}.onnx`` beside the fp32 export).

    ``calibration`` holds the feeds :func:`record_calibration_feeds` recorded with this fp32 export.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pair = find_graph_pair(fp32_path)
    meta, _ = read_onnx_meta(pair["search"])
    if meta.precision != "fp32":
        raise ModelFileError(f"{pair['search']} is already {meta.precision}; quantise the fp32 export")
    feeds = {"template": calibration.template_feeds, "search": calibration.search_feeds}
    types = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    out = graph_paths(out_prefix if out_prefix is not None else int8_prefix(fp32_path))
    quant_info = {**asdict(options), "keep_fp32": list(options.keep_fp32),
                  "calibration": {"template_crops": len(feeds["template"]), "search_crops": len(feeds["search"])}}
    props = {**meta.to_props("search"), "mlkd.precision": "int8", "mlkd.export_id": meta.export_id + "-int8",
             "mlkd.quantization": json.dumps(quant_info)}
    with tempfile.TemporaryDirectory(prefix="mlkd-int8-") as tmp:
        for role in ROLES:
            if log:
                log(f"quantising the {role} graph on {len(feeds[role])} crops -> {out[role]}")
            prepared, quantized = Path(tmp) / f"{role}.pre.onnx", Path(tmp) / f"{role}.int8.onnx"
            quant_pre_process(str(pair[role]), str(prepared), skip_symbolic_shape=True)
            groups = layer_groups(onnx.load(str(prepared)))
            quantize_static(str(prepared), str(quantized), _Feeds(feeds[role]),
                            quant_format=QuantFormat.QOperator if options.quant_format == "qoperator"
                            else QuantFormat.QDQ,
                            per_channel=options.per_channel, reduce_range=options.reduce_range,
                            activation_type=types[options.activation_type], weight_type=types[options.weight_type],
                            calibrate_method=methods[options.calibrate_method],
                            nodes_to_exclude=[n for g in options.keep_fp32 for n in groups[g]])
            model = onnx.load(str(quantized))
            del model.metadata_props[:]
            for key, value in {**props, "mlkd.role": role}.items():
                model.metadata_props.add(key=key, value=value)
            onnx.checker.check_model(model)
            write_bytes_atomic(out[role], model.SerializeToString())
    return out
