"""The synthetic night generator: layout, reader round trip, exact boxes, determinism, resume, CLI, darken."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mlkd_tracker.cli import main
from mlkd_tracker.errors import InputError, SourceError
from mlkd_training.data.readers import open_dataset
from mlkd_training.data.synth import (SynthConfig, SyntheticSequence, builtin_photo_paths, config_with,
                                      MIN_VISIBLE, generate_dataset, list_photo_sources, motion_kernel)

SMALL = SynthConfig(sequences=2, frames=(10, 14), width=160, height=120, name="Tiny")


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    summary = generate_dataset(out, SMALL, seed=5, workers=1, progress=False)
    return out, summary


def test_builtin_photos_ship_with_scikit_image():
    names = {p.name for p in builtin_photo_paths()}
    assert {"astronaut.png", "coffee.png", "grass.png", "gravel.png"} <= names


def test_layout_and_reader_round_trip(tiny_set):
    out, summary = tiny_set
    assert summary.sequences == ["tiny_0001", "tiny_0002"] and summary.generated == summary.sequences
    night, day = open_dataset(out / "night"), open_dataset(out / "day")
    night_txt = open_dataset(out / "night", "uav")
    assert night.name == "Tiny-night" and day.name == "Tiny-day" and [s.name for s in night] == [s.name for s in day] == summary.sequences
    for n, d, u in zip(night, day, night_txt):
        assert 10 <= len(n) <= 14 and len(n) == len(d) == len(u) == len(list((out / "night" / "data_seq" / n.name).iterdir()))
        np.testing.assert_array_equal(n.gt, d.gt)  # twins share the geometry
        np.testing.assert_array_equal(n.absent, np.isnan(u.gt).all(axis=1))  # absent frames have NaN rows
        np.testing.assert_allclose(n.gt[n.valid], u.gt[n.valid], atol=1e-3)
        assert n.valid[0] and n.frame(0).shape == (120, 160, 3)
        assert n.frame(0).mean() < d.frame(0).mean() * 0.6  # night is darker
    meta = json.loads((out / "meta" / "tiny_0001.json").read_text())
    assert set(meta["attributes"]["day"]) <= set(meta["attributes"]["night"])
    assert set(meta["attributes"]["night"]) - set(meta["attributes"]["day"]) <= {"IV"}
    assert night["tiny_0001"].attrs == {a: True for a in meta["attributes"]["night"]}
    settings = json.loads((out / "synth.json").read_text())
    assert settings["seed"] == 5 and settings["config"]["width"] == 160


def test_boxes_are_the_rendered_silhouette():
    seq = SyntheticSequence(config_with(SMALL, frames=(12, 12)), 11, 0)
    checked = 0
    for frame in seq.frames():
        cam = seq.camera_matrix(frame.index)
        m = (cam @ seq.target.matrix(frame.index))[:2]
        alpha = cv2.warpAffine(seq.target.bgra[..., 3], m, (160, 120), flags=cv2.INTER_LINEAR)
        ys, xs = np.nonzero(alpha >= 128)
        if not frame.in_view > 0.999 or not np.isfinite(frame.box).all():
            continue
        pixel_box = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
        np.testing.assert_allclose(frame.box, pixel_box, atol=1.0)
        checked += 1
    assert checked >= 6


@pytest.mark.parametrize("dx, dy", [(6.0, 1.5), (-2.0, 5.0), (4.0, -4.0), (1.2, 0.9)])
def test_motion_blur_smears_a_point_along_the_displacement(dx, dy):
    blur = motion_kernel(dx, dy)
    if np.hypot(dx, dy) < 1.5:
        assert blur is None
        return
    kernel, anchor = blur
    assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-6 and kernel.any(axis=0).all() and kernel.any(axis=1).all()
    image = np.zeros((41, 41), np.float32)
    image[20, 20] = 1.0
    smear = cv2.filter2D(image, -1, kernel, anchor=anchor)
    ys, xs = np.mgrid[0:41, 0:41]
    # filter2D correlates: the smear of a point is the kernel mirrored, centred on the point
    assert abs((smear * xs).sum() - 20) < 0.05 and abs((smear * ys).sum() - 20) < 0.05
    along = ((xs - 20) * dx + (ys - 20) * dy) / np.hypot(dx, dy)
    across = ((xs - 20) * dy - (ys - 20) * dx) / np.hypot(dx, dy)
    assert abs(np.sqrt((smear * along ** 2).sum()) - np.hypot(dx, dy) / np.sqrt(12)) < 0.3  # a uniform segment
    assert np.sqrt((smear * across ** 2).sum()) < 0.6


def test_sequences_show_occlusion_out_of_view_distractors_and_camera_motion():
    config = SynthConfig(sequences=1, frames=(200, 200), width=256, height=144, name="Events")
    seen = {"full occlusion": 0, "partial occlusion": 0, "out of view": 0, "look-alike in view": 0,
            "zoom": 0, "roll": 0, "speed change": 0}
    for index in range(6):
        seq = SyntheticSequence(config, 3, index)
        frames = list(seq.frames())
        visible = np.array([f.visible for f in frames])
        in_view = np.array([f.in_view for f in frames])
        seen["full occlusion"] += bool(((visible < MIN_VISIBLE) & (in_view > 0.9)).any())
        seen["partial occlusion"] += bool(((visible < 0.8 * in_view) & (visible >= MIN_VISIBLE)).any())
        seen["out of view"] += bool((in_view < 0.5).any())
        seen["look-alike in view"] += any(f.distractor_in_view for f in frames)
        seen["zoom"] += bool(seq.cam_zoom.max() / seq.cam_zoom.min() > 1.1)
        seen["roll"] += bool(np.ptp(seq.cam_roll) > 2.0)
        speed = np.linalg.norm(np.diff(seq.target.position, axis=0), axis=1)
        seen["speed change"] += bool(speed.max() > 1.5 * max(speed.min(), 1e-3))
        hidden = [f for f in frames if f.visible < MIN_VISIBLE]  # hidden or gone: no ground truth
        assert all(np.isnan(f.box).all() for f in hidden)
    assert all(count >= 1 for count in seen.values()), seen


def test_first_frame_always_shows_the_whole_target():
    config = config_with(SynthConfig(), frames=(40, 40), occlusion_probability=1.0, occluders=(3, 3))
    for index in range(6):
        first = next(SyntheticSequence(config, 21, index).frames())
        assert first.visible > 0.97 and np.isfinite(first.box).all(), index


def test_same_seed_same_bytes_any_worker_count(tiny_set, tmp_path):
    out, _ = tiny_set
    generate_dataset(tmp_path / "again", SMALL, seed=5, workers=2, progress=False)
    for kind in ("night", "day"):
        for path in sorted((out / kind / "data_seq" / "tiny_0002").iterdir()):
            assert path.read_bytes() == (tmp_path / "again" / kind / "data_seq" / "tiny_0002" / path.name).read_bytes()
        json_name = f"Tiny-{kind}.json"
        assert (out / kind / json_name).read_text() == (tmp_path / "again" / kind / json_name).read_text()
    other = SyntheticSequence(SMALL, 6, 1)
    assert other.length != len(open_dataset(out / "night")["tiny_0002"]) or \
        not np.allclose(next(other.frames()).box, open_dataset(out / "night")["tiny_0002"].gt[0])


def test_resume_regenerates_only_missing_sequences(tmp_path):
    out = tmp_path / "set"
    generate_dataset(out, SMALL, seed=1, progress=False)
    first = (out / "night" / "data_seq" / "tiny_0001" / "000003.jpg").stat().st_mtime_ns
    (out / "meta" / "tiny_0002.json").unlink()  # as if interrupted while writing the second sequence
    again = generate_dataset(out, SMALL, seed=1, progress=False)
    assert again.generated == ["tiny_0002"]
    assert (out / "night" / "data_seq" / "tiny_0001" / "000003.jpg").stat().st_mtime_ns == first
    assert len(open_dataset(out / "night")) == 2 and not list(out.rglob("*.partial*"))
    with pytest.raises(InputError, match="another seed or config"):
        generate_dataset(out, SMALL, seed=2, progress=False)


def test_user_photo_folders(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for _ in range(12):
        writer.write(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8))
    writer.release()
    sources = list_photo_sources((str(folder),), builtin=False)
    assert len(sources) == 1 + 8 and sources[1].frame is not None
    seq = SyntheticSequence(SynthConfig(sequences=1, frames=(3, 3), width=96, height=64, image_dirs=(str(folder),),
                                        builtin_images=False), 0, 0)
    assert len(list(seq.frames())) == 3
    with pytest.raises(SourceError, match="image folder not found"):
        list_photo_sources((str(tmp_path / "nope"),))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images or readable videos"):
        list_photo_sources((str(tmp_path / "empty"),))


def test_config_changes_are_validated():
    cfg = config_with(SMALL, mean_level=(0.02, 0.03), target_speed=(1, 2), sequences=3)
    assert cfg.night.mean_level == (0.02, 0.03) and cfg.motion.target_speed == (1.0, 2.0) and cfg.sequences == 3
    with pytest.raises(InputError, match="unknown night parameter"):
        config_with(SMALL, wobble=1)
    with pytest.raises(InputError, match="frames per sequence"):
        SynthConfig(frames=(10, 5))


def test_mlkd_synth_cli(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", str(out), "--sequences", "1", "--frames", "6,6", "--size", "128x96", "--seed", "3",
                 "--set", "mean_level=0.03,0.05", "--quiet"]) == 0
    meta = json.loads((out / "meta" / "mlkdsynth_0001.json").read_text())
    assert 0.03 <= meta["night_params"]["mean_level"] <= 0.05
    assert "frames/s" in capsys.readouterr().out
    assert main(["synth", str(tmp_path / "t"), "--set", "wobble=1", "--quiet"]) == 2
    assert "unknown night parameter" in capsys.readouterr().err


def _day_frames(folder: Path, n: int = 5) -> None:
    folder.mkdir()
    base = np.random.default_rng(0).integers(40, 230, (12, 16, 3), dtype=np.uint8)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i + 1}.png"), np.roll(np.kron(base, np.ones((8, 8, 1), np.uint8)), 2 * i, axis=1))


def test_mlkd_darken_folder_and_video(tmp_path, capsys):
    _day_frames(tmp_path / "day")
    assert main(["darken", str(tmp_path / "day"), str(tmp_path / "night"), "--seed", "2", "--quiet"]) == 0
    outs = sorted((tmp_path / "night").glob("*.jpg"))
    assert [p.name for p in outs] == [f"{i:06d}.jpg" for i in range(1, 6)]
    day0, night0 = cv2.imread(str(tmp_path / "day" / "f1.png")), cv2.imread(str(outs[0]))
    assert night0.shape == day0.shape and night0.mean() < 0.5 * day0.mean()
    meta = json.loads((tmp_path / "night" / "darken.json").read_text())
    assert meta["frames"] == 5 and meta["seed"] == 2 and "full_well" in meta["params"]
    assert main(["darken", str(tmp_path / "day"), str(tmp_path / "n.avi"), "--no-lights", "--max-frames", "3",
                 "--quiet"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "n.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    assert json.loads((tmp_path / "n.json").read_text())["params"]["lamps"] == []
    capsys.readouterr()
    assert main(["darken", str(tmp_path / "day"), str(tmp_path / "night"), "--quiet"]) == 2
    assert "is not an empty folder" in capsys.readouterr().err


def test_help_lists_the_night_data_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("synth", "darken", "test", "eval"))
    for name, words in (("synth", "daylight"), ("darken", "low-light"), ("test", "peer"), ("eval", "protocol")):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        assert words in capsys.readouterr().out
