"""Both crop modes against a literal re-implementation of pysot's ``get_subwindow`` on real frames."""
import cv2
import numpy as np
import pytest

from conftest import shared_dir
from mlkd_tracker.backends import create_tracker
from mlkd_tracker.config import SIAMRPN_MODEL_CONFIG, TrackerConfig, default_model_path
from mlkd_tracker.crop import crop_subwindow
from mlkd_tracker.errors import InputError
from mlkd_tracker.tracker import SiameseTracker
from pysot_reference import PysotTracker, pysot_subwindow

DATA = shared_dir() / "data"


@pytest.fixture(scope="module", params=["uav_real/data_seq/boat1.mp4", "uav_real/data_seq/S0601.mp4",
                                        "uav_real/data_seq/Biker.mp4", "night_frames/DJI_0050_car_1.jpg"])
def real_frame(request):
    """A real UAV frame: frame 20 of a daytime video (UAV123, UAVDT, DTB70) or a DarkTrack2021 night frame."""
    path = DATA / request.param
    if not path.is_file():
        pytest.skip(f"real UAV data absent ({path})")
    if path.suffix == ".jpg":
        return cv2.imread(str(path))
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 20)
    ok, frame = cap.read()
    cap.release()
    assert ok, path
    return frame


def named_geometries(h, w):
    """(name, centre, output side, window side) covering every way a window meets the frame."""
    return [
        ("inside, enlarged", (w * 0.5 + 0.3, h * 0.5 - 0.2), 287, 150),
        ("inside, reduced", (w * 0.4, h * 0.6), 287, 300),
        ("inside, exact 2x reduction", (w * 0.5, h * 0.5), 127, 254),
        ("inside, same size", (w * 0.5, h * 0.5), 127, 127),
        ("leaves left, enlarged", (20.4, h * 0.5), 287, 120),
        ("leaves top, reduced", (w * 0.3, 15.0), 127, 200),
        ("leaves right, enlarged", (w - 10.7, h * 0.3), 287, 200),
        ("leaves bottom-left corner, reduced", (5.0, h - 3.0), 287, 400),
        ("centre outside the frame", (-40.0, h + 30.0), 127, 150),
        ("window entirely outside", (w + 300.0, h * 0.5), 127, 100),
        ("window larger than the frame", (w * 0.5, h * 0.5), 287, 3 * max(h, w)),
        ("one pixel", (w * 0.5, h * 0.5), 127, 1),
    ]


def random_geometries(h, w, n=150, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        out = int(rng.choice([127, 287]))
        side = int(rng.integers(1, 2 * out)) if i % 2 else int(rng.integers(1, 3 * max(h, w)))
        yield f"random {i}", (rng.uniform(-0.3 * w, 1.3 * w), rng.uniform(-0.3 * h, 1.3 * h)), out, side


def test_pysot_crop_is_pixel_identical_and_fast_crop_within_one_grey_level(real_frame):
    h, w = real_frame.shape[:2]
    avg = real_frame.mean(axis=(0, 1))
    differing = []
    for name, pos, out, side in [*named_geometries(h, w), *random_geometries(h, w)]:
        expected = pysot_subwindow(real_frame, pos, out, side, avg)
        exact = crop_subwindow(real_frame, pos, out, side, avg, "pysot")
        fast = crop_subwindow(real_frame, pos, out, side, avg)
        assert exact.shape == fast.shape == (out, out, 3) and exact.flags.c_contiguous, name
        assert np.array_equal(exact, expected), name
        diff = np.abs(fast.astype(int) - expected)
        assert diff.max() <= 1, name  # edge rows of enlarged crops included: the window's edges repeat
        if out == side:
            assert diff.max() == 0, name
        differing.append((diff > 0).mean())
    assert 0 < np.mean(differing) < 0.2  # the two modes do differ, by rounding only


class RecordingBackend:
    name = "recording"

    def __init__(self, config):
        self.config, self.crops = config, []

    def template(self, crop):
        self.crops.append(crop.copy())

    def search(self, crop, kernels):
        self.crops.append(crop.copy())
        a, s = self.config.anchor_num, self.config.score_size
        return np.zeros((1, 2 * a, s, s), np.float32), np.zeros((1, 4 * a, s, s), np.float32)


@pytest.mark.parametrize("mode", ["fast", "pysot"])
def test_tracker_hands_the_backend_the_configured_crop(real_frame, mode):
    config = TrackerConfig(crop=mode)
    backend = RecordingBackend(config)
    tracker = SiameseTracker(backend, config)
    h, w = real_frame.shape[:2]
    box = (w - 60.0, 20.0, 50.0, 40.0)  # near a corner: the search window leaves the frame
    tracker.init(real_frame, box)
    tracker.update(real_frame)
    avg = real_frame.mean(axis=(0, 1))
    centre = (box[0] + (box[2] - 1) / 2, box[1] + (box[3] - 1) / 2)
    s_z = np.sqrt((box[2] + 0.5 * (box[2] + box[3])) * (box[3] + 0.5 * (box[2] + box[3])))
    expected = [pysot_subwindow(real_frame, centre, 127, round(s_z), avg),
                pysot_subwindow(real_frame, centre, 287, round(s_z * 287 / 127), avg)]
    for crop, reference in zip(backend.crops, expected):
        diff = np.abs(crop.astype(int) - reference)
        assert diff.max() == 0 if mode == "pysot" else diff.max() <= 1


def test_unknown_crop_mode_is_a_clear_error():
    with pytest.raises(InputError, match="crop must be one of fast, pysot, got 'exact'"):
        TrackerConfig(crop="exact")
    with pytest.raises(ValueError, match="crop mode must be one of"):
        crop_subwindow(np.zeros((10, 10, 3), np.uint8), (5, 5), 127, 20, (0, 0, 0), "exact")


@pytest.mark.parametrize("sequence", ["boat1", "person12_1"])
def test_with_the_pysot_crop_the_tracker_follows_pysots_trajectory(sequence):
    """Same network, real flight: pysot's own tracking loop and ours with ``crop: pysot`` give the same boxes."""
    video, anno = DATA / "uav_real" / "data_seq" / f"{sequence}.mp4", DATA / "uav_real" / "anno" / f"{sequence}.txt"
    if not video.is_file():
        pytest.skip(f"real UAV data absent ({video})")
    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(40)]
    cap.release()
    siamrpn = default_model_path().with_name(SIAMRPN_MODEL_CONFIG)  # the bundled SiamRPN reference model
    ours, loaded = create_tracker(siamrpn, "cpu", overrides={"crop": "pysot"})
    reference = PysotTracker(loaded.backend, ours.config)
    first = np.loadtxt(anno, delimiter=",", max_rows=1)
    ours.init(frames[0], first)
    reference.init(frames[0], first)
    h, w = frames[0].shape[:2]
    for frame in frames[1:]:
        reference.track(frame)
        (cx, cy), (bw, bh) = reference.center_pos, reference.size
        x, y = cx - bw / 2, cy - bh / 2
        x1, y1 = max(x, 0.0), max(y, 0.0)
        expected = (x1, y1, min(x + bw, w) - x1, min(y + bh, h) - y1)  # ours is clipped to the frame
        assert np.abs(np.subtract(ours.update(frame).box_xywh, expected)).max() < 1e-3
