"""Training pairs: canvases, augmentation geometry, deterministic sampling, the crop-511 cache."""
import json

import numpy as np
import pytest

from mlkd_tracker.errors import InputError, SourceError
from mlkd_training.pairs import (AugmentConfig, CachedCanvases, FrameCanvases, PairConfig, PairDataset, PairSource,
                                 augment, frame_canvas, prepare_cache)
from dataset_fixtures import write_uav_video_dataset
from mlkd_training.data.readers import open_dataset
from training_data import write_dataset

NO_AUG = AugmentConfig(shift=0, scale=0, blur=0, flip=0, color=0)


def bright_extent(image: np.ndarray, threshold: float = 128.0) -> np.ndarray:
    """x1, y1, x2, y2 (pixel-edge coordinates) of the pixels brighter than ``threshold``."""
    ys, xs = np.nonzero(image.mean(axis=2) > threshold)
    return np.array([xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5])


def test_frame_canvas_centres_the_target_at_template_scale():
    frame = np.full((300, 400, 3), 20, np.uint8)
    frame[100:140, 150:210] = 230  # x=150, y=100, w=60, h=40
    canvas, box = frame_canvas(frame, (150, 100, 60, 40), PairConfig())
    assert canvas.shape == (511, 511, 3)
    # context square sqrt((60+50)(40+50)) = 99.5 px -> 127 px; the canvas spans 511/127 of it
    side = round(np.sqrt(110 * 90) * 511 / 127)
    assert box[2] - box[0] == pytest.approx(60 * 511 / side, rel=1e-5)
    # centred up to crop_subwindow's integer crop origin (pysot's get_subwindow rounding)
    assert (box[0] + box[2]) / 2 == pytest.approx(255, abs=2) and (box[1] + box[3]) / 2 == pytest.approx(255, abs=2)
    assert np.abs(bright_extent(canvas) - box).max() < 1.5
    # outside the frame the canvas shows the frame's mean colour
    assert np.abs(canvas[0, 0].astype(float) - frame.mean(axis=(0, 1))).max() <= 1


def test_augment_without_jitter_cuts_the_centre():
    canvas = np.full((511, 511, 3), 10, np.uint8)
    canvas[230:280, 220:290] = 240
    box = np.array([219.5, 229.5, 289.5, 279.5])
    crop, out_box = augment(canvas, box, 255, NO_AUG, np.random.default_rng(0))
    assert crop.shape == (255, 255, 3) and crop.dtype == np.float32
    assert np.allclose(out_box, box - 128, atol=1e-4)  # the 255 window starts at 255 - 127
    assert np.array_equal(crop, canvas[128:383, 128:383].astype(np.float32))


@pytest.mark.parametrize("seed", range(6))
def test_augmented_box_follows_the_image_content(seed):
    canvas = np.full((511, 511, 3), 10, np.uint8)
    canvas[225:285, 235:270] = 240
    box = np.array([234.5, 224.5, 269.5, 284.5])
    aug = AugmentConfig(shift=64, scale=0.18, blur=0, flip=0.5, color=0)
    crop, out_box = augment(canvas, box, 255, aug, np.random.default_rng(seed))
    assert np.abs(bright_extent(crop) - out_box).max() < 1.5


def test_colour_and_blur_change_pixels_but_not_the_box():
    canvas = np.random.default_rng(0).integers(0, 255, (511, 511, 3), dtype=np.uint8)
    box = np.array([230.0, 230.0, 280.0, 280.0])
    plain, b0 = augment(canvas, box, 127, NO_AUG, np.random.default_rng(3))
    styled, b1 = augment(canvas, box, 127, AugmentConfig(color=1.0, blur=1.0), np.random.default_rng(3))
    assert np.allclose(b0, b1) and np.abs(plain - styled).mean() > 1.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), sequences=3, frames=8)


def test_pairs_are_deterministic_per_index_and_well_formed(tiny):
    config = PairConfig(pairs_per_epoch=12, neg=0.3)
    a = PairDataset([PairSource(FrameCanvases(tiny, config))], config, seed=5)
    b = PairDataset([PairSource(FrameCanvases(tiny, config))], config, seed=5)
    s1, s2 = a[7], b[7]
    for key in ("template", "search", "label_cls", "label_loc", "label_loc_weight", "box"):
        assert np.array_equal(s1[key], s2[key]), key
    assert s1["template"].shape == (3, 127, 127) and s1["search"].shape == (3, 255, 255)
    assert s1["label_cls"].shape == (5, 17, 17) and s1["label_loc"].shape == (4, 5, 17, 17)
    assert not np.array_equal(a[8]["search"], s1["search"])
    samples = [a[i] for i in range(24)]  # two epochs
    negatives = [s for s in samples if s["negative"]]
    positives = [s for s in samples if not s["negative"]]
    assert 0 < len(negatives) < len(samples)
    assert all((s["label_cls"] == 1).sum() == 0 for s in negatives)
    assert all((s["label_cls"] == 1).sum() > 0 for s in positives)
    for s in positives:  # the target lies within the search shift of the crop centre
        cx, cy = (s["box"][0] + s["box"][2]) / 2, (s["box"][1] + s["box"][3]) / 2
        assert abs(cx - 127) < 64 / (1 - 0.18) + 2 and abs(cy - 127) < 64 / (1 - 0.18) + 2


def test_every_video_is_used_equally_in_an_epoch(tiny):
    config = PairConfig(pairs_per_epoch=9)
    data = PairDataset([PairSource(FrameCanvases(tiny, config))], config, seed=0)
    for epoch in (0, 1):
        _, counts = np.unique(data.epoch_pick(epoch)[:, 1], return_counts=True)
        assert counts.tolist() == [3, 3, 3]
    assert not np.array_equal(data.epoch_pick(0), data.epoch_pick(1))  # reshuffled every epoch


def test_crop_cache_matches_full_frames_and_resumes(tiny, tmp_path):
    config = PairConfig(pairs_per_epoch=6, neg=0.0)
    cache = prepare_cache(tiny, tmp_path / "cache", config, progress=False)
    index = json.loads((cache / "index.json").read_text())
    assert index["frames"] == 24 and [v["name"] for v in index["videos"]] == ["seq1", "seq2", "seq3"]
    frames, cached = FrameCanvases(tiny, config), CachedCanvases(cache, config)
    for video, frame in ((0, 0), (2, 5)):
        (c1, b1), (c2, b2) = frames.canvas(video, frame), cached.canvas(video, frame)
        assert np.abs(c1.astype(float) - c2).mean() < 3.0  # JPEG quality 95
        assert np.allclose(b1, b2, atol=1e-3)
    first, second = PairDataset([PairSource(frames)], config, seed=1)[3], PairDataset([PairSource(cached)], config,
                                                                                     seed=1)[3]
    assert np.array_equal(first["label_cls"], second["label_cls"])
    assert np.abs(first["search"] - second["search"]).mean() < 3.0
    stamp = (cache / "seq1" / "000001.jpg").stat().st_mtime_ns
    prepare_cache(tiny, cache, config, progress=False)  # finished sequences are kept
    assert (cache / "seq1" / "000001.jpg").stat().st_mtime_ns == stamp


def test_video_canvases_are_decoded_once_in_order_and_equal_the_crop_cache(tmp_path, monkeypatch):
    write_uav_video_dataset(tmp_path / "vids", count=2, frames=30)
    dataset = open_dataset(tmp_path / "vids")
    config = PairConfig(pairs_per_epoch=4, neg=0.0)
    cached = CachedCanvases(prepare_cache(dataset, tmp_path / "cache", config, progress=False), config)
    reads = []
    for seq in dataset:
        monkeypatch.setattr(seq.store, "read", lambda i, read=seq.store.read, name=seq.name: reads.append((name, i))
                            or read(i))
    frames = FrameCanvases(dataset, config)
    for video, frame in ((1, 29), (0, 3), (1, 0), (0, 17), (1, 28), (0, 3)):
        (c1, b1), (c2, b2) = frames.canvas(video, frame), cached.canvas(video, frame)
        assert np.array_equal(c1, c2) and np.allclose(b1, b2, atol=1e-3)  # the JPEG mlkd prepare writes
    assert reads == [("vid2", i) for i in range(30)] + [("vid1", i) for i in range(30)]
    assert all(seq.store._capture is None for seq in dataset)  # decoders released after their pass


def test_video_canvases_past_the_memory_budget_are_read_per_frame(tmp_path):
    write_uav_video_dataset(tmp_path / "vids", count=2, frames=20)
    dataset = open_dataset(tmp_path / "vids")
    config = PairConfig()
    frames = FrameCanvases(dataset, config, memory_budget=1)
    with pytest.warns(UserWarning, match="exceed the memory budget.*run mlkd prepare"):
        frames.canvas(0, 5)
    canvas, box = frames.canvas(1, 7)
    expected, expected_box = frame_canvas(dataset[1].frame(7), dataset[1].gt[7], config)
    assert np.array_equal(canvas, expected) and np.allclose(box, expected_box)


def test_cache_errors_name_the_folder_and_the_fix(tiny, tmp_path):
    with pytest.raises(SourceError, match=r"not a crop cache.*mlkd prepare"):
        CachedCanvases(tmp_path, PairConfig())
    cache = prepare_cache(tiny, tmp_path / "c", PairConfig(), progress=False)
    with pytest.raises(InputError, match="canvas_size=511.*wants 383"):
        CachedCanvases(cache, PairConfig(canvas_size=383))
    (cache / "seq2" / "000003.jpg").unlink()
    with pytest.raises(SourceError, match=r"cannot read .*000003.jpg"):
        CachedCanvases(cache, PairConfig()).canvas(1, 3)


