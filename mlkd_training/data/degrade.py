"""Low-light camera model: turns daylight pixels into night footage, shared by ``mlkd synth`` and ``mlkd darken``.

The chain follows the physics of a camera at night (every parameter and its range is listed in
``docs/synthetic_data.md``):

1. The daylight image is linearised (inverse sRGB) and taken as scene reflectance.
2. Night lighting: a dim ambient term (sky glow, colour temperature ``ambient_kelvin``) plus
   street lamps, each lighting a pool on the ground with the point-source falloff
   ``(1 + (d / h)^2)^(-3/2)`` (``h``: lamp height) in its own colour (high-pressure sodium
   1900-2300 K, LED 3000-5500 K); the camera's white balance removes part of the dominant cast.
3. Light sources seen by the camera: lamp heads (saturating discs) with bloom (a Gaussian halo)
   and small point lights (windows, vehicles).
4. Exposure is cut so the noise-free frame has a dark mean level ``mean_level`` (calibrated per
   clip by bisection).
5. Sensor: a BGGR Bayer mosaic (one colour per pixel); photon shot noise (Poisson,
   ``full_well`` electrons for a full-scale signal at the night gain) plus read noise (Gaussian,
   ``read_noise`` electrons), clipped at black and at saturation; the camera's tone curve
   (sRGB-shaped, exponent ``gamma``) and 8-bit quantisation; demosaicing (OpenCV's edge-aware,
   applied to the tone-mapped values, where a camera would work on linear data), in-camera
   noise reduction (a light blur) and JPEG compression at ``jpeg_quality``.

Step 5 runs per frame through one lookup table: the exposed signal is stored as an 8-bit code
``255 * E^(1/2.2)``; for each code the table holds 256 quantiles of the noisy, tone-mapped,
quantised output, and a uniform random byte per pixel picks one. That is the exact
Poisson-Gaussian output distribution (to 1/256 in probability) at the cost of one table lookup.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import cv2
import numpy as np

from mlkd_tracker.errors import InputError

SIGNAL_GAMMA = 2.2  # encoding of the exposed linear signal into 8-bit codes
_TONE_A = 0.055  # offset of the sRGB-shaped tone curve

# Blackbody colours as sRGB 0..255 (Mitchell Charity's table, CIE 1964 10-degree observer, D65 white)
_KELVIN_TABLE = np.array([
    (1000, 255, 56, 0), (1500, 255, 109, 0), (2000, 255, 137, 18), (2500, 255, 161, 72), (3000, 255, 180, 107),
    (3500, 255, 196, 137), (4000, 255, 209, 163), (4500, 255, 219, 186), (5000, 255, 228, 206),
    (5500, 255, 236, 224), (6000, 255, 243, 239), (6500, 255, 249, 253), (7000, 245, 243, 255),
    (8000, 227, 233, 255), (10000, 204, 219, 255)], np.float64)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer of values in 0..1."""
    v = np.asarray(values, np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


SRGB_TO_LINEAR_U8 = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def kelvin_to_bgr(kelvin: float) -> np.ndarray:
    """Linear BGR gains of a blackbody light at ``kelvin``, normalised to unit luminance."""
    t = _KELVIN_TABLE
    rgb = np.array([np.interp(kelvin, t[:, 0], t[:, c]) for c in (1, 2, 3)]) / 255.0
    lin = srgb_to_linear(rgb)
    lin /= 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return lin[::-1].astype(np.float32)


def tone_curve(linear: np.ndarray, gamma: float) -> np.ndarray:
    """sRGB-shaped camera curve with exponent ``1/gamma``: linear toe, then ``(1+a) L^(1/gamma) - a``."""
    a = _TONE_A
    knee = (a / ((1 + a) * (1 - 1 / gamma))) ** gamma
    slope = (1 + a) / gamma * knee ** (1 / gamma - 1)
    lin = np.clip(linear, 0.0, 1.0)
    return np.where(lin <= knee, slope * lin, (1 + a) * np.power(np.maximum(lin, knee), 1 / gamma) - a)


@dataclass(frozen=True)
class Lamp:
    """A street lamp: position (fraction of the lit area), height (fraction of its diagonal), colour."""

    x: float
    y: float
    height: float
    intensity: float
    kelvin: float
    head_visible: bool


@dataclass(frozen=True)
class PointLight:
    """A small light source seen by the camera (window, vehicle lamp): position, radiance, colour."""

    x: float
    y: float
    radiance: float
    kelvin: float


@dataclass(frozen=True)
class NightParams:
    """Lighting and low-light camera of one clip (drawn by :func:`sample_night_params`)."""

    mean_level: float = 0.08
    gamma: float = 2.2
    full_well: float = 800.0
    read_noise: float = 2.0
    white_balance: float = 0.3
    ambient_kelvin: float = 4000.0
    ambient_share: float = 0.15
    lamps: tuple[Lamp, ...] = ()
    lights: tuple[PointLight, ...] = ()
    head_radius: float = 2.5
    head_radiance: float = 60.0
    bloom_sigma: float = 6.0
    bloom_strength: float = 1.5
    denoise_sigma: float = 0.6
    jpeg_quality: int = 60
    shutter: float = 0.7

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "NightParams":
        data = dict(values)
        data["lamps"] = tuple(Lamp(**lamp) for lamp in data.get("lamps", ()))
        data["lights"] = tuple(PointLight(**light) for light in data.get("lights", ()))
        return cls(**data)


@dataclass(frozen=True)
class NightRanges:
    """Uniform ranges every clip's :class:`NightParams` are drawn from (documented defaults)."""

    mean_level: tuple[float, float] = (0.03, 0.12)
    gamma: tuple[float, float] = (1.8, 2.6)
    full_well: tuple[float, float] = (150.0, 2000.0)  # drawn log-uniformly
    read_noise: tuple[float, float] = (1.0, 4.0)
    white_balance: tuple[float, float] = (0.0, 0.6)
    ambient_kelvin: tuple[float, float] = (2500.0, 8000.0)
    ambient_share: tuple[float, float] = (0.03, 0.35)
    sodium_kelvin: tuple[float, float] = (1900.0, 2300.0)
    led_kelvin: tuple[float, float] = (3000.0, 5500.0)
    lamp_mix: tuple[float, float, float] = (0.45, 0.35, 0.20)  # P(all sodium), P(all LED), P(mixed)
    lamps_per_megapixel: tuple[float, float] = (3.0, 14.0)
    lamp_height: tuple[float, float] = (0.04, 0.12)
    lamp_intensity: tuple[float, float] = (0.5, 1.5)
    head_visible: float = 0.7
    lights_per_megapixel: tuple[float, float] = (0.0, 60.0)
    light_radiance: tuple[float, float] = (3.0, 40.0)
    head_radius: tuple[float, float] = (1.5, 4.0)
    head_radiance: tuple[float, float] = (20.0, 200.0)
    bloom_sigma: tuple[float, float] = (3.0, 14.0)
    bloom_strength: tuple[float, float] = (0.5, 4.0)
    denoise_sigma: tuple[float, float] = (0.0, 1.0)
    jpeg_quality: tuple[float, float] = (30.0, 75.0)
    shutter: tuple[float, float] = (0.4, 1.0)

    def replace(self, **changes: Any) -> "NightRanges":
        """A copy with some ranges changed; a range is ``(low, high)`` (or one number for a fixed value)."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InputError(f"unknown night parameter(s) {', '.join(unknown)}; expected one of {', '.join(sorted(names))}")
        values = asdict(self)
        for key, value in changes.items():
            old = values[key]
            if isinstance(old, tuple) and not isinstance(value, (tuple, list)):
                value = (float(value),) * len(old) if key != "lamp_mix" else value
            if isinstance(old, tuple) and (len(value) != len(old) or (key != "lamp_mix" and value[0] > value[1])):
                raise InputError(f"night parameter {key} expects {len(old)} numbers (low, high), got {value!r}")
            values[key] = tuple(float(v) for v in value) if isinstance(old, tuple) else float(value)
        return NightRanges(**values)


def draw_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """One uniform draw from ``(low, high)``; a degenerate range gives ``low``."""
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def sample_night_params(rng: np.random.Generator, ranges: NightRanges = NightRanges(),
                        area_megapixels: float = 0.23) -> NightParams:
    """Draw one clip's lighting and camera; lamp and light counts scale with the lit area."""
    r = ranges
    mix = np.asarray(r.lamp_mix, np.float64)
    kind = rng.choice(3, p=mix / mix.sum())
    sodium_share = (1.0, 0.0, 0.5)[kind]
    n_lamps = max(1, int(round(draw_uniform(rng, r.lamps_per_megapixel) * area_megapixels)))
    lamps = []
    for _ in range(n_lamps):
        kelvin = draw_uniform(rng, r.sodium_kelvin if rng.random() < sodium_share else r.led_kelvin)
        lamps.append(Lamp(float(rng.uniform(-0.05, 1.05)), float(rng.uniform(-0.05, 1.05)),
                          draw_uniform(rng, r.lamp_height), draw_uniform(rng, r.lamp_intensity), kelvin,
                          bool(rng.random() < r.head_visible)))
    n_lights = int(rng.poisson(draw_uniform(rng, r.lights_per_megapixel) * area_megapixels))
    lights = tuple(PointLight(float(rng.random()), float(rng.random()), draw_uniform(rng, r.light_radiance),
                              draw_uniform(rng, (2000.0, 6500.0))) for _ in range(n_lights))
    log_fw = draw_uniform(rng, (float(np.log(r.full_well[0])), float(np.log(r.full_well[1]))))
    return NightParams(
        mean_level=draw_uniform(rng, r.mean_level), gamma=draw_uniform(rng, r.gamma), full_well=float(np.exp(log_fw)),
        read_noise=draw_uniform(rng, r.read_noise), white_balance=draw_uniform(rng, r.white_balance),
        ambient_kelvin=draw_uniform(rng, r.ambient_kelvin), ambient_share=draw_uniform(rng, r.ambient_share),
        lamps=tuple(lamps), lights=lights, head_radius=draw_uniform(rng, r.head_radius),
        head_radiance=draw_uniform(rng, r.head_radiance), bloom_sigma=draw_uniform(rng, r.bloom_sigma),
        bloom_strength=draw_uniform(rng, r.bloom_strength), denoise_sigma=draw_uniform(rng, r.denoise_sigma),
        jpeg_quality=int(round(draw_uniform(rng, r.jpeg_quality))), shutter=draw_uniform(rng, r.shutter))


def _white_balance_gains(params: NightParams) -> np.ndarray:
    """Per-channel gains of a camera that removes ``white_balance`` of the lamps' mean cast (log domain)."""
    if not params.lamps:
        cast = kelvin_to_bgr(params.ambient_kelvin)
    else:
        weights = np.array([lamp.intensity for lamp in params.lamps])
        cast = np.average([kelvin_to_bgr(lamp.kelvin) for lamp in params.lamps], axis=0, weights=weights)
    return (cast ** -params.white_balance).astype(np.float32)


def illumination_map(height: int, width: int, params: NightParams, step: int = 4) -> np.ndarray:
    """Night illumination (linear BGR, mean luminance 1) on a grid of ``step``-pixel cells: shape (H/step, W/step, 3)."""
    gh, gw = max(1, -(-height // step)), max(1, -(-width // step))
    ys = (np.arange(gh, dtype=np.float32) + 0.5) * step
    xs = (np.arange(gw, dtype=np.float32) + 0.5) * step
    diag = float(np.hypot(width, height))
    lamps = np.zeros((gh, gw, 3), np.float32)
    for lamp in params.lamps:
        h = lamp.height * diag
        d2 = ((xs[None, :] - lamp.x * width) ** 2 + (ys[:, None] - lamp.y * height) ** 2) / (h * h)
        d2 += 1.0
        falloff = np.sqrt(d2)
        falloff *= d2
        np.divide(lamp.intensity, falloff, out=falloff)  # intensity * (1 + d2) ** -1.5, without numpy's slow power
        lamps += falloff[:, :, None] * kelvin_to_bgr(lamp.kelvin)
    luminance = float(lamps.mean()) if params.lamps else 0.0
    share = min(max(params.ambient_share, 1e-3), 1.0)
    ambient_level = share / (1 - share) * luminance if luminance > 0 and share < 1 else 1.0
    illum = lamps + ambient_level * kelvin_to_bgr(params.ambient_kelvin)
    illum *= _white_balance_gains(params)
    return illum / max(float(illum.mean()), 1e-12)


def emission_map(height: int, width: int, params: NightParams) -> np.ndarray:
    """Light reaching the camera straight from sources (lamp heads with bloom, point lights), linear BGR."""
    emission = np.zeros((height, width, 3), np.float32)
    wb = _white_balance_gains(params)
    heads = [(lamp.x, lamp.y, lamp.kelvin, params.head_radiance, params.head_radius)
             for lamp in params.lamps if lamp.head_visible]
    points = [(p.x, p.y, p.kelvin, p.radiance, 0.8) for p in params.lights]
    for x, y, kelvin, radiance, radius in heads + points:
        colour = tuple(float(c) for c in kelvin_to_bgr(kelvin) * wb * radiance)
        centre = (int(round(x * width * 16)), int(round(y * height * 16)))
        cv2.circle(emission, centre, max(1, int(round(radius * 16))), colour, -1, cv2.LINE_AA, shift=4)
    if heads and params.bloom_strength > 0:  # the halo is smooth: blur at a quarter of the resolution
        small = cv2.resize(emission, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
        glow = cv2.resize(cv2.GaussianBlur(small, (0, 0), max(params.bloom_sigma / 4, 0.5)), (width, height),
                          interpolation=cv2.INTER_LINEAR)
        peak = float(glow.max())
        if peak > 0:
            emission += glow * (params.bloom_strength * params.head_radiance / 100.0 / peak)
    return emission


def exposed_signal(day_bgr: np.ndarray, illumination: np.ndarray, exposure: float,
                   emission: np.ndarray | None = None) -> np.ndarray:
    """8-bit code ``255 * E^(1/2.2)`` of the exposed linear signal ``E = k * (illum * reflectance + emission)``."""
    signal = cv2.LUT(day_bgr, SRGB_TO_LINEAR_U8) * illumination  # LUT: ~30x faster than np.take
    if emission is not None:
        signal += emission
    signal *= exposure
    np.clip(signal, 0.0, 1.0, out=signal)
    encoded = cv2.pow(signal, 1.0 / SIGNAL_GAMMA)  # several times faster than numpy's power
    encoded *= 255.0
    encoded += 0.5
    return encoded.astype(np.uint8)


def calibrate_exposure(day_bgr: np.ndarray, illumination: np.ndarray, emission: np.ndarray | None,
                       params: NightParams) -> float:
    """The exposure ``k`` giving the noise-free night frame the mean level ``params.mean_level`` (bisection)."""
    linear = cv2.LUT(day_bgr, SRGB_TO_LINEAR_U8) * illumination
    if emission is not None:
        linear = linear + emission
    lo, hi = -8.0, 4.0  # log10 k, bisected to 1e-6
    for _ in range(24):
        mid = (lo + hi) / 2
        if float(tone_curve(linear * 10 ** mid, params.gamma).mean()) < params.mean_level:
            lo = mid
        else:
            hi = mid
    return 10 ** ((lo + hi) / 2)


def sensor_lut(params: NightParams, rng: np.random.Generator, samples: int = 1024) -> np.ndarray:
    """``lut[code * 256 + u]``: the ``u``-th of 256 quantiles of the sensor output for signal code ``code``."""
    codes = np.arange(256, dtype=np.float64)
    electrons = (codes / 255.0) ** SIGNAL_GAMMA * params.full_well
    noisy = rng.poisson(electrons[:, None], (256, samples)) + rng.normal(0.0, params.read_noise, (256, samples))
    out = np.sort(tone_curve(noisy / params.full_well, params.gamma), axis=1)
    picks = (np.arange(256) * samples) // 256 + samples // 512
    return np.round(out[:, picks] * 255.0).astype(np.uint8).reshape(-1)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of a BGR frame."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError(f"JPEG encoding failed for a frame of shape {frame.shape}")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@dataclass
class NightCamera:
    """One clip's night lighting and camera for a scene of ``width x height`` pixels."""

    params: NightParams
    width: int
    height: int
    seed: int = 0
    illumination_step: int = 4
    exposure: float = 1.0
    illumination_grid: np.ndarray = field(init=False, repr=False)
    emission: np.ndarray = field(init=False, repr=False)
    lut: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.illumination_grid = illumination_map(self.height, self.width, self.params, self.illumination_step)
        self.emission = emission_map(self.height, self.width, self.params)
        self.lut = sensor_lut(self.params, np.random.default_rng(self.seed))

    def illumination(self) -> np.ndarray:
        """Full-resolution illumination (the grid upsampled)."""
        return cv2.resize(self.illumination_grid, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def calibrate(self, day_bgr: np.ndarray, scale: float = 0.125) -> float:
        """Set (and return) the exposure from a representative daylight view of the whole scene."""
        size = (max(1, int(self.width * scale)), max(1, int(self.height * scale)))
        small = cv2.resize(day_bgr, size, interpolation=cv2.INTER_AREA)
        illum = cv2.resize(self.illumination_grid, size, interpolation=cv2.INTER_LINEAR)
        emission = cv2.resize(self.emission, size, interpolation=cv2.INTER_AREA)
        self.exposure = calibrate_exposure(small, illum, emission, self.params)
        return self.exposure

    def expose(self, day_bgr: np.ndarray) -> np.ndarray:
        """Signal codes (uint8) of a full daylight view under this clip's lighting and exposure."""
        return exposed_signal(day_bgr, self.illumination(), self.exposure, self.emission)

    def capture(self, signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One noisy, tone-mapped 8-bit frame from HxWx3 signal codes (before JPEG).

        Like a colour sensor, each pixel measures one channel of a BGGR Bayer mosaic; the noisy
        mosaic is demosaiced (edge-aware), which gives night noise its blotchy colour.
        """
        h, w = signal.shape[:2]
        raw = np.empty((h, w), np.uint8)
        raw[0::2, 0::2] = signal[0::2, 0::2, 0]
        raw[0::2, 1::2] = signal[0::2, 1::2, 1]
        raw[1::2, 0::2] = signal[1::2, 0::2, 1]
        raw[1::2, 1::2] = signal[1::2, 1::2, 2]
        index = np.left_shift(raw, 8, dtype=np.uint16)
        np.bitwise_or(index, np.frombuffer(rng.bytes(raw.size), np.uint8).reshape(h, w), out=index)
        # OpenCV names Bayer patterns by the second row: its "RG" is the BGGR layout above
        frame = cv2.cvtColor(np.take(self.lut, index), cv2.COLOR_BayerRG2BGR_EA)
        if self.params.denoise_sigma >= 0.4:  # below that the blur kernel is practically an identity
            cv2.GaussianBlur(frame, (0, 0), self.params.denoise_sigma, dst=frame)
        return frame

    def darken(self, day_bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A daylight frame of this scene as the night camera records it, JPEG artefacts included."""
        night = self.capture(self.expose(day_bgr), rng)
        return decode_jpeg(encode_jpeg(night, self.params.jpeg_quality))
