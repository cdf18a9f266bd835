"""The low-light camera model: colour, tone curve, exposure calibration, noise statistics, determinism."""
import numpy as np
import pytest

from mlkd_tracker.errors import InputError
from mlkd_training.data.degrade import (NightCamera, NightParams, NightRanges, kelvin_to_bgr, sample_night_params,
                                        sensor_lut, srgb_to_linear, tone_curve)


def test_light_colours():
    sodium, led, cool = kelvin_to_bgr(2000), kelvin_to_bgr(4000), kelvin_to_bgr(8000)
    assert sodium[2] > sodium[1] > sodium[0] and sodium[2] / sodium[0] > 10  # strongly orange (BGR order)
    assert led[2] > led[0] and cool[0] > cool[2]  # warm white vs bluish
    for c in (sodium, led, cool):  # unit luminance: only the colour differs
        assert 0.2126 * c[2] + 0.7152 * c[1] + 0.0722 * c[0] == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(kelvin_to_bgr(6500), [1, 1, 1], atol=0.06)  # about the D65 white


def test_tone_curve_is_srgb_shaped():
    x = np.linspace(0, 1, 2001)
    for gamma in (1.8, 2.2, 2.6):
        y = tone_curve(x, gamma)
        assert y[0] == 0 and y[-1] == pytest.approx(1.0) and (np.diff(y) > 0).all()  # monotonic, no jump at the knee
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(tone_curve(x, 2.4), srgb, atol=2e-3)
    np.testing.assert_allclose(srgb_to_linear(srgb), x, atol=1e-6)


def _scene(seed=0, size=(96, 160)):
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 230, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
    return np.kron(base, np.ones((8, 8, 1), np.uint8))


def test_exposure_hits_the_dark_mean_level():
    day = _scene()
    for level in (0.04, 0.1):
        params = sample_night_params(np.random.default_rng(1), NightRanges().replace(mean_level=level))
        cam = NightCamera(params, day.shape[1], day.shape[0], seed=1)
        cam.calibrate(day, scale=1.0)
        noise_free = tone_curve(((cam.expose(day) / 255.0) ** 2.2), params.gamma)
        assert noise_free.mean() == pytest.approx(level, abs=0.01)


def test_noise_follows_photon_and_read_noise():
    rng = np.random.default_rng(0)
    code = 120  # a mid-dark signal
    signal = (code / 255) ** 2.2
    stds = []
    for full_well in (100.0, 400.0, 3200.0):
        params = NightParams(full_well=full_well, read_noise=0.0, gamma=2.2)
        row = sensor_lut(params, rng)[code * 256:(code + 1) * 256].astype(float)
        assert (np.diff(row) >= 0).all()  # quantiles are sorted
        stds.append(row.std())
        # the noisy output's centre sits on the noise-free tone value
        assert np.median(row) == pytest.approx(255 * tone_curve(signal, 2.2), abs=3)
    # shot noise: 4x the photons -> about half the relative noise
    assert stds[0] / stds[1] == pytest.approx(2.0, rel=0.2) and stds[2] < 5
    with_read = sensor_lut(NightParams(full_well=400.0, read_noise=8.0), rng)[code * 256:(code + 1) * 256]
    assert with_read.std() > stds[1]
    black = sensor_lut(NightParams(full_well=400.0, read_noise=3.0), rng)[:256]
    assert black.max() > 0 and np.mean(black == 0) == pytest.approx(0.5, abs=0.05)  # half the draws clip at black


def test_capture_is_deterministic_and_noisy():
    day = _scene()
    params = NightParams(mean_level=0.08, full_well=300.0, read_noise=2.0, denoise_sigma=0.0)
    cam = NightCamera(params, day.shape[1], day.shape[0], seed=3)
    cam.calibrate(day)
    signal = cam.expose(day)
    a = cam.capture(signal, np.random.default_rng(7))
    b = cam.capture(signal, np.random.default_rng(7))
    c = cam.capture(signal, np.random.default_rng(8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.03 < a.mean() / 255 < 0.2 and np.abs(a.astype(int) - c).mean() > 1  # dark and noisy
    night = cam.darken(day, np.random.default_rng(1))
    assert night.shape == day.shape and night.dtype == np.uint8 and night.mean() < day.mean() / 2


def test_sampled_params_stay_in_their_ranges():
    r = NightRanges()
    for seed in range(40):
        p = sample_night_params(np.random.default_rng(seed), r)
        for name in ("mean_level", "gamma", "read_noise", "white_balance", "ambient_kelvin", "ambient_share",
                     "head_radius", "head_radiance", "bloom_sigma", "bloom_strength", "denoise_sigma", "shutter"):
            lo, hi = getattr(r, name)
            assert lo <= getattr(p, name) <= hi, name
        assert r.full_well[0] <= p.full_well <= r.full_well[1] and r.jpeg_quality[0] <= p.jpeg_quality <= r.jpeg_quality[1]
        assert p.lamps and all(lamp.kelvin <= r.sodium_kelvin[1] or lamp.kelvin >= r.led_kelvin[0] for lamp in p.lamps)
    assert NightParams.from_dict(p.to_dict()) == p


def test_range_changes_are_validated():
    r = NightRanges().replace(mean_level=(0.02, 0.05), gamma=2.0)
    assert r.mean_level == (0.02, 0.05) and r.gamma == (2.0, 2.0)
    with pytest.raises(InputError, match="unknown night parameter.*brightness"):
        NightRanges().replace(brightness=0.1)
    with pytest.raises(InputError, match="expects 2 numbers"):
        NightRanges().replace(mean_level=(0.2, 0.1))
