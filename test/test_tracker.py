"""Tracking loop: follows a planted peak, status logic, bad input, and property-based safety."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import PlantedPeakBackend, brightest_blob_offset, moving_square_frames
from mlkd_tracker.config import TrackerConfig
from mlkd_tracker.errors import InputError
from mlkd_tracker.tracker import SiameseTracker, Status


def test_box_follows_a_planted_peak_frame_after_frame():
    frames, truth = moving_square_frames(25, step=(7.0, 4.0))
    backend = PlantedPeakBackend(brightest_blob_offset)
    tracker = SiameseTracker(backend, TrackerConfig())
    tracker.init(frames[0], truth[0])
    for frame, (x, y, w, h) in zip(frames[1:], truth[1:]):
        r = tracker.update(frame)
        cx, cy = r.box_xywh[0] + r.box_xywh[2] / 2, r.box_xywh[1] + r.box_xywh[3] / 2
        assert abs(cx - (x + w / 2)) < 2.0 and abs(cy - (y + h / 2)) < 2.0
        assert r.status is Status.TRACKING and r.score > 0.99
    assert backend.template_calls == 1 and backend.search_calls == 24


def test_fixed_offset_moves_the_box_by_offset_over_scale_each_frame():
    cfg = TrackerConfig(window_influence=0.0)
    tracker = SiameseTracker(PlantedPeakBackend(lambda crop: (16.0, -8.0), cfg), cfg)
    frame = np.full((720, 1280, 3), 50, np.uint8)
    tracker.init(frame, (600, 300, 40, 40))
    scale = cfg.exemplar_size / np.sqrt((40 + 40) * (40 + 40))  # s_z with context 0.5*(w+h)
    prev = 600 + 19.5
    for _ in range(3):
        r = tracker.update(frame)
        cx = tracker._center[0]
        assert cx - prev == pytest.approx(16.0 / scale, abs=1e-3)
        prev = cx
        scale = cfg.exemplar_size / tracker._context_size()


def test_status_turns_lost_after_n_weak_frames_and_tracking_continues():
    cfg = TrackerConfig(lost_threshold=0.5, lost_frames=3)
    backend = PlantedPeakBackend(lambda crop: (0.0, 0.0), cfg, peak_logit=-2.0)  # peak score ~0.02
    tracker = SiameseTracker(backend, cfg)
    frame = np.full((100, 100, 3), 10, np.uint8)
    tracker.init(frame, (40, 40, 20, 20))
    statuses = [tracker.update(frame).status for _ in range(5)]
    assert statuses == [Status.TRACKING, Status.TRACKING, Status.LOST, Status.LOST, Status.LOST]
    backend.peak_logit = 6.0
    assert tracker.update(frame).status is Status.TRACKING


def test_deterministic():
    frames, truth = moving_square_frames(8)
    runs = []
    for _ in range(2):
        t = SiameseTracker(PlantedPeakBackend(brightest_blob_offset))
        t.init(frames[0], truth[0])
        runs.append([t.update(f).box_xywh for f in frames[1:]])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("box,message", [
    ((10, 10, 0, 5), "positive"), ((10, 10, 5, -1), "positive"),
    ((200, 10, 20, 20), "outside"), ((-50, -50, 20, 20), "outside"),
    ((10, float("nan"), 5, 5), "non-finite"), ((1, 2, 3), "4 numbers"),
])
def test_bad_init_boxes_are_rejected(box, message):
    t = SiameseTracker(PlantedPeakBackend(lambda c: (0, 0)))
    with pytest.raises(InputError, match=message):
        t.init(np.zeros((100, 150, 3), np.uint8), box)


@pytest.mark.parametrize("frame,message", [
    (np.zeros((50, 50, 3), np.float32), "uint8"),
    (np.zeros((50, 50, 4), np.uint8), "HxWx3"),
    (np.zeros((2, 50, 50, 3), np.uint8), "HxWx3"),
    ([[0, 1]], "numpy array"),
])
def test_bad_frames_are_rejected(frame, message):
    t = SiameseTracker(PlantedPeakBackend(lambda c: (0, 0)))
    with pytest.raises(InputError, match=message):
        t.init(frame, (10, 10, 10, 10))


def test_grayscale_frames_are_converted():
    t = SiameseTracker(PlantedPeakBackend(lambda c: (0, 0)))
    t.init(np.full((60, 80), 100, np.uint8), (10, 10, 20, 20))
    r = t.update(np.full((60, 80, 1), 100, np.uint8))
    assert r.status is Status.TRACKING


def test_frame_size_change_and_update_before_init_are_clear_errors():
    t = SiameseTracker(PlantedPeakBackend(lambda c: (0, 0)))
    with pytest.raises(InputError, match="not initialised"):
        t.update(np.zeros((60, 80, 3), np.uint8))
    t.init(np.zeros((60, 80, 3), np.uint8), (10, 10, 20, 20))
    with pytest.raises(InputError, match="size changed from 80x60 to 81x60"):
        t.update(np.zeros((60, 81, 3), np.uint8))


class RandomOutputBackend:
    """Arbitrary (even non-finite) network outputs."""
    name = "random"

    def __init__(self, cls, loc):
        self.cls, self.loc = cls, loc

    def template(self, crop):
        return None

    def search(self, crop, kernels):
        return self.cls, self.loc


finite_or_wild = st.one_of(st.floats(-50, 50), st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 300), w=st.integers(1, 300), seed=st.integers(0, 2**31 - 1),
       box=st.tuples(st.floats(-100, 400), st.floats(-100, 400), st.floats(0.5, 500), st.floats(0.5, 500)),
       wild=finite_or_wild, steps=st.integers(1, 4))
def test_never_nan_inf_or_outside_the_frame(h, w, seed, box, wild, steps):
    x, y, bw, bh = box
    if x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        return  # rejected by init (tested above)
    rng = np.random.default_rng(seed)
    cfg = TrackerConfig()
    a, s = cfg.anchor_num, cfg.score_size
    cls = rng.normal(0, 5, (1, 2 * a, s, s)).astype(np.float32)
    loc = rng.normal(0, 3, (1, 4 * a, s, s)).astype(np.float32)
    cls.flat[rng.integers(0, cls.size, 5)] = wild
    loc.flat[rng.integers(0, loc.size, 20)] = wild
    t = SiameseTracker(RandomOutputBackend(cls, loc), cfg)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    t.init(frame, box)
    for _ in range(steps):
        r = t.update(frame)
        bx, by, bw2, bh2 = r.box_xywh
        assert all(np.isfinite(v) for v in (*r.box_xywh, r.score))
        assert 0 <= bx and 0 <= by and bw2 > 0 and bh2 > 0
        assert bx + bw2 <= w + 1e-6 and by + bh2 <= h + 1e-6
        assert 0.0 <= r.score <= 1.0
