"""``mlkd darken`` on a whole dataset: same layout at night, a camera per sequence, resumable, never half-written."""
import json

import cv2
import numpy as np
import pytest

from dataset_fixtures import box_lines, textured_frames, write_frames, write_uav_video_dataset
from mlkd_tracker.cli import main
from mlkd_training.data.readers import open_dataset
from test_video_sequences import _zero_the_second_half_of_the_frames


@pytest.fixture
def day(tmp_path):
    root = tmp_path / "day"
    gts = write_uav_video_dataset(root, count=2, frames=10)  # vid1.mp4, vid2.mp4
    write_frames(root / "data_seq" / "seq1", textured_frames(6, seed=7))  # seq1/000001.jpg ...
    gts["seq1"] = np.array([(5 + i, 9, 20, 30) for i in range(6)], np.float64)
    (root / "anno" / "seq1.txt").write_text(box_lines(gts["seq1"]))
    (root / "anno" / "att").mkdir()
    (root / "anno" / "att" / "vid2.txt").write_text("0,1,0,0,0,0,0,0,1,0,0,0\n")
    return root, gts


def jpeg_bytes(folder):
    return [p.read_bytes() for p in sorted(folder.glob("*.jpg"))]


def test_a_dataset_becomes_a_night_dataset_in_the_same_layout(day, tmp_path, capsys):
    root, gts = day
    out = tmp_path / "night"
    assert main(["darken", str(root), str(out), "--seed", "3", "--quiet"]) == 0
    assert "3 sequences darkened (26 frames)" in capsys.readouterr().out
    assert (out / "data_seq" / "vid1.mp4").is_file() and (out / "data_seq" / "seq1" / "000006.jpg").is_file()
    night, daylight = open_dataset(out), open_dataset(root)
    assert sorted(s.name for s in night) == ["seq1", "vid1", "vid2"]
    for seq in night:
        np.testing.assert_allclose(seq.gt, gts[seq.name])
        assert np.mean([f.mean() for f in seq.frames()]) < 0.6 * np.mean([f.mean() for f in daylight[seq.name].frames()])
    assert night["vid2"].attrs == daylight["vid2"].attrs and night["vid2"].attrs["ARC"]
    index = json.loads((out / "darken.json").read_text())
    assert index["seed"] == 3 and {n: e["store"] for n, e in index["sequences"].items()} == \
        {"vid1": "video", "vid2": "video", "seq1": "jpeg"}
    entry = index["sequences"]["seq1"]
    assert entry["frames"] == 6 and "full_well" in entry["params"] and entry["exposure"] > 0
    read_back = np.mean([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).mean() for f in night["seq1"].frames()])
    assert entry["mean_grey"] == pytest.approx(read_back, abs=1.0)  # JPEG keeps the mean
    assert not (out / ".partial").exists()


def test_a_sequence_at_night_depends_only_on_the_seed_and_its_name(day, tmp_path, capsys):
    root, _ = day
    assert main(["darken", str(root), str(tmp_path / "all"), "--to", "jpeg", "--quiet"]) == 0
    assert main(["darken", str(root), str(tmp_path / "one"), "--to", "jpeg", "--sequences", "vid2",
                 "--max-frames", "4", "--quiet"]) == 0
    full, alone = jpeg_bytes(tmp_path / "all" / "data_seq" / "vid2"), jpeg_bytes(tmp_path / "one" / "data_seq" / "vid2")
    assert len(alone) == 4 and alone == full[:4]
    assert len(open_dataset(tmp_path / "one")["vid2"].gt) == 4  # box file cut with the frames
    assert full != jpeg_bytes(tmp_path / "all" / "data_seq" / "vid1")[:len(full)]
    assert main(["darken", str(root), str(tmp_path / "seed1"), "--to", "jpeg", "--seed", "1", "--sequences", "vid2",
                 "--quiet"]) == 0
    assert jpeg_bytes(tmp_path / "seed1" / "data_seq" / "vid2") != full


def test_interrupted_runs_leave_no_half_sequence_and_resume(day, tmp_path, capsys):
    root, _ = day
    out = tmp_path / "night"
    good = (root / "data_seq" / "vid2.mp4").read_bytes()
    _zero_the_second_half_of_the_frames(root / "data_seq" / "vid2.mp4")
    assert main(["darken", str(root), str(out), "--to", "jpeg", "--quiet"]) == 2
    assert "vid2.mp4 has no frame" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "data_seq").iterdir()) == ["seq1", "vid1"]  # vid2 stopped half-way
    assert sorted(p.name for p in (out / "anno").glob("*.txt")) == ["seq1.txt", "vid1.txt"]
    assert [s.name for s in open_dataset(out)] == ["seq1", "vid1"]  # what is there is complete and readable
    first = jpeg_bytes(out / "data_seq" / "vid1")
    (root / "data_seq" / "vid2.mp4").write_bytes(good)
    assert main(["darken", str(root), str(out), "--to", "jpeg", "--quiet"]) == 0
    assert "1 sequences darkened (10 frames), 2 finished earlier kept" in capsys.readouterr().out
    assert jpeg_bytes(out / "data_seq" / "vid1") == first and not (out / ".partial").exists()
    assert len(open_dataset(out)) == 3
    for args, message in ((["--to", "jpeg", "--seed", "5"], "made with other settings (seed)"),
                          (["--to", "video"], "made with other settings (store)")):
        assert main(["darken", str(root), str(out), "--quiet", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["darken", str(root), str(tmp_path / "other"), "--quiet"]) == 2
    assert "not a night dataset of mlkd darken" in capsys.readouterr().err


def test_real_clips_at_night(shared_data, tmp_path):
    uav_real = shared_data / "uav_real"
    if not (uav_real / "data_seq" / "wakeboard7.mp4").is_file():
        pytest.skip(f"real clips not found under {uav_real}")
    out = tmp_path / "night"
    assert main(["darken", str(uav_real), str(out), "--sequences", "wakeboard7,S0601", "--max-frames", "8",
                 "--quiet"]) == 0
    night = open_dataset(out)
    assert [len(s) for s in night] == [8, 8] and night["S0601"].frame(7).shape == (338, 640, 3)
    index = json.loads((out / "darken.json").read_text())
    for seq in night:
        entry = index["sequences"][seq.name]
        assert 2.0 < entry["mean_grey"] < 60.0  # night, within the span of real night frames (3.9 .. 66.4)
        read_back = np.mean([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).mean() for f in seq.frames()])
        assert read_back == pytest.approx(entry["mean_grey"], abs=4.0)  # mp4v and OpenCV's YUV decode cost ~1-3
