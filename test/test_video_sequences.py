"""Sequences stored as videos (``data_seq/<seq>.mp4``): decoded when read, exact in any order, bad files named."""
import pickle

import cv2
import numpy as np
import pytest

from dataset_fixtures import box_lines, textured_frames, write_uav_dataset, write_uav_video_dataset, write_video
from mlkd_tracker.errors import SourceError
from mlkd_training.data.readers import open_dataset
from mlkd_training.data.sequence import VideoFrames

REAL_CLIPS = ("wakeboard7", "MountainBike6")  # 67 and 81 frames


def decoded_in_order(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture
def uav_real(shared_data):
    root = shared_data / "uav_real"
    if not (root / "data_seq" / f"{REAL_CLIPS[0]}.mp4").is_file():
        pytest.skip(f"real clips not found under {root}")
    return root


@pytest.mark.parametrize("suffix,fourcc", [(".mp4", "mp4v"), (".avi", "MJPG"), (".mkv", "mp4v")])
def test_video_dataset_reads_every_frame_exactly_in_any_order(tmp_path, suffix, fourcc):
    gts = write_uav_video_dataset(tmp_path / "vids", count=2, frames=40, suffix=suffix, fourcc=fourcc)
    ds = open_dataset(tmp_path / "vids")
    assert [s.name for s in ds] == ["vid1", "vid2"]
    seq = ds["vid2"]
    np.testing.assert_array_equal(seq.gt, gts["vid2"])
    assert len(seq) == 40 and isinstance(seq.store, VideoFrames) and seq.store.fps == pytest.approx(10)
    reference = decoded_in_order(tmp_path / "vids" / "data_seq" / f"vid2{suffix}")
    assert len(reference) == 40
    in_order = list(seq.frames())
    assert all(np.array_equal(a, b) for a, b in zip(in_order, reference))
    # backward jumps, jumps past keyframes (mp4v: every 12 frames), repeats, the last frame
    for i in [39, 0, 25, 24, 13, 14, 2, 37, 37, 11, 12, 30, 5]:
        assert np.array_equal(seq.frame(i), reference[i]), i
    clone = pickle.loads(pickle.dumps(seq))  # worker processes get a copy without the open decoder
    assert np.array_equal(clone.frame(17), reference[17])


def test_real_clips_random_access_matches_sequential_decoding(uav_real):
    ds = open_dataset(uav_real, sequences=REAL_CLIPS)
    for seq in ds:
        assert len(seq) == len(seq.gt) and seq.valid.all()
        reference = list(seq.frames())
        assert len(reference) == len(seq) and reference[0].shape[1] == 640
        order = np.random.default_rng(0).permutation(len(seq))[:12]
        for i in order:
            assert np.array_equal(seq.frame(int(i)), reference[i]), (seq.name, i)


def test_real_clip_with_a_box_file_of_another_length_is_refused(uav_real, tmp_path):
    root = tmp_path / "cut"
    (root / "data_seq").mkdir(parents=True)
    (root / "data_seq" / "wakeboard7.mp4").symlink_to(uav_real / "data_seq" / "wakeboard7.mp4")
    lines = (uav_real / "anno" / "wakeboard7.txt").read_text().splitlines(True)
    (root / "anno").mkdir()
    for count in (len(lines) - 1, len(lines) + 5):
        (root / "anno" / "wakeboard7.txt").write_text("".join((lines * 2)[:count]))
        with pytest.raises(SourceError, match=rf"wakeboard7\.txt: {count} boxes but video .*wakeboard7\.mp4 has "
                                              rf"{len(lines)} frames \(frame i of the video goes with line i"):
            open_dataset(root)


def test_one_box_for_a_video_is_an_init_box(tmp_path):
    write_uav_video_dataset(tmp_path / "v", count=1, frames=15)
    anno = tmp_path / "v" / "anno" / "vid1.txt"
    anno.write_text(anno.read_text().splitlines(True)[0])
    seq = open_dataset(tmp_path / "v")["vid1"]
    assert len(seq) == 15 and seq.valid.tolist() == [True] + [False] * 14


def _zero_the_second_half_of_the_frames(path):
    data = bytearray(path.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")  # OpenCV writes the sample tables last
    assert 0 < start < end
    middle = start + (end - start) // 2
    data[middle:end - 8] = bytes(end - 8 - middle)
    path.write_bytes(bytes(data))


def test_bad_videos_get_one_line_errors_naming_the_file(tmp_path):
    root = tmp_path / "bad"
    write_uav_video_dataset(root, count=1, frames=30)
    video = root / "data_seq" / "vid1.mp4"
    _zero_the_second_half_of_the_frames(video)  # the container still lists 30 frames
    seq = open_dataset(root)["vid1"]
    with pytest.raises(SourceError, match=r"video .*vid1\.mp4 has no frame \d+ \(it ends early or is damaged\), "
                                          r"but its box file .*vid1\.txt has 30 boxes"):
        list(seq.frames())
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))  # garbage after a valid-looking header
    with pytest.raises(SourceError, match=r"cannot open video .*vid1\.mp4 \(unreadable, corrupt"):
        open_dataset(root)
    write_video(root / "data_seq" / "vid1.mp4", textured_frames(30))
    write_video(root / "data_seq" / "stray.mp4", textured_frames(5))
    with pytest.raises(SourceError, match=r"video .*stray\.mp4 has no box file .*anno/stray\.txt"):
        open_dataset(root)
    (root / "data_seq" / "stray.mp4").rename(root / "data_seq" / "vid1.avi")
    with pytest.raises(SourceError, match="two videos for sequence vid1"):
        open_dataset(root)


def test_truncated_container_counts_its_packets(tmp_path):
    """Matroska stores no frame count: a cut file has fewer frames than its duration says."""
    write_uav_video_dataset(tmp_path / "mkv", count=1, frames=30, suffix=".mkv")
    video = tmp_path / "mkv" / "data_seq" / "vid1.mkv"
    video.write_bytes(video.read_bytes()[: video.stat().st_size * 6 // 10])
    frames = len(decoded_in_order(video))
    assert 0 < frames < 30
    with pytest.raises(SourceError, match=rf"30 boxes but video .*vid1\.mkv has {frames} frames"):
        open_dataset(tmp_path / "mkv")


def test_frame_folders_and_videos_mix_in_one_dataset(tmp_path):
    root = tmp_path / "mixed"
    write_uav_dataset(root, count=1, frames=6)
    write_uav_video_dataset(root, count=1, frames=9)
    ds = open_dataset(root)
    assert {s.name: len(s) for s in ds} == {"seq1": 6, "vid1": 9}
    assert ds["seq1"].store.cheap_random_access and not ds["vid1"].store.cheap_random_access
    (root / "anno" / "vid2.txt").write_text(box_lines([(1, 1, 5, 5)] * 3))
    with pytest.raises(SourceError, match=r"no frame folder vid2/ or video vid2\.mp4 .* box file .*vid2\.txt"):
        open_dataset(root)
