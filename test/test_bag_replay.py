"""``mlkd track --bag``: rosbag2 files (mcap and sqlite3) written with ``rosbags`` and replayed, no ROS needed."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("rosbags", reason="bag replay needs the rosbags package")
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from fakes import moving_square_frames  # noqa: E402
from mlkd_tracker.cli import main  # noqa: E402
from mlkd_tracker.nets import SiamRPN  # noqa: E402
from mlkd_tracker.nets.checkpoint import save_checkpoint  # noqa: E402
from mlkd_tracker.sources import BagSource, open_source  # noqa: E402

TS = get_typestore(Stores.ROS2_HUMBLE)
T0 = 1_700_000_000 * 10**9
PERIOD = 50_000_000  # 20 Hz camera
N = 12


def _header(stamp_ns: int):
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="camera")


def image(frame: np.ndarray, stamp_ns: int, encoding: str = "bgr8"):
    Image = TS.types["sensor_msgs/msg/Image"]
    data = frame if encoding == "bgr8" else frame[:, :, ::-1]
    return Image(header=_header(stamp_ns), height=frame.shape[0], width=frame.shape[1], encoding=encoding,
                 is_bigendian=0, step=frame.shape[1] * 3, data=np.ascontiguousarray(data).reshape(-1))


def compressed(frame: np.ndarray, stamp_ns: int):
    CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
    return CompressedImage(header=_header(stamp_ns), format="png",
                           data=np.frombuffer(cv2.imencode(".png", frame)[1].tobytes(), np.uint8))


def polygon(box, stamp_ns: int):
    PolygonStamped, Polygon, Point32 = (TS.types[f"geometry_msgs/msg/{n}"] for n in ("PolygonStamped", "Polygon", "Point32"))
    x, y, w, h = box
    return PolygonStamped(header=_header(stamp_ns), polygon=Polygon(points=[Point32(x=x, y=y, z=0.0),
                                                                            Point32(x=x + w, y=y + h, z=0.0)]))


def write_bag(path, topics: dict[str, list[tuple[int, object]]], storage=StoragePlugin.MCAP):
    """A rosbag2 at ``path`` with ``{topic: [(log_time_ns, message), ...]}``."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, messages in topics.items():
            conn = writer.add_connection(topic, messages[0][1].__msgtype__, typestore=TS)
            for log_time, msg in messages:
                writer.write(conn, log_time, TS.serialize_cdr(msg, msg.__msgtype__))
    return path


@pytest.fixture(scope="module")
def sequence():
    return moving_square_frames(N, size=(120, 200), start=(40.0, 30.0), step=(3.0, 1.0))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(SiamRPN(width=0.25), tmp_path_factory.mktemp("m") / "tiny.pth", {"name": "tiny"})


def camera_messages(frames, make=image):
    # logged 3 ms after capture, as a recorder on the drone would
    return [(T0 + i * PERIOD + 3_000_000, make(f, T0 + i * PERIOD)) for i, f in enumerate(frames)]


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_replay_writes_results_video_and_latency_with_stamps(tmp_path, sequence, model_file, storage, capsys):
    frames, truth = sequence
    bag = write_bag(tmp_path / "flight", {"/camera/image_raw": camera_messages(frames),
                                          "/imu": [(T0, _header(T0))]}, storage)
    bag_file = next(bag.glob("*.mcap" if storage == StoragePlugin.MCAP else "*.db3"))
    out, video, lat = tmp_path / "res.txt", tmp_path / "out.mp4", tmp_path / "lat.csv"
    code = main(["track", "--bag", str(bag_file), "--topic", "/camera/image_raw", "--init", "40,30,24,24",
                 "--model", str(model_file), "--output", str(out), "--save-video", str(video),
                 "--latency", str(lat), "--quiet"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == N and lines[0] == "40.0000,30.0000,24.0000,24.0000"
    for line in lines:
        x, y, w, h = map(float, line.split(","))
        assert 0 <= x and 0 <= y and x + w <= 200 and y + h <= 120
    assert int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)) == N
    rows = lat.read_text().splitlines()
    assert rows[0].endswith(",stamp_ns") and len(rows) == N
    assert [int(r.split(",")[-1]) for r in rows[1:]] == [T0 + i * PERIOD for i in range(1, N)]
    assert "/camera/image_raw" in capsys.readouterr().out


def test_bag_folder_as_source_rgb8_and_compressed(tmp_path, sequence):
    frames, _ = sequence
    bag = write_bag(tmp_path / "rgb", {"/cam": camera_messages(frames, lambda f, t: image(f, t, "rgb8"))})
    source = open_source(bag)  # a bag folder is recognised, its only image topic taken
    got = list(source)
    assert isinstance(source, BagSource) and source.length == N and source.fps == pytest.approx(20.0, rel=0.01)
    np.testing.assert_array_equal(got[3], frames[3])
    bag = write_bag(tmp_path / "png", {"/cam/compressed": camera_messages(frames, compressed)})
    got = list(BagSource(bag))
    np.testing.assert_array_equal(got[5], frames[5])
    assert BagSource(bag).topic == "/cam/compressed"


def test_recorded_selection_starts_where_the_node_would(tmp_path, sequence, model_file, capsys):
    frames, truth = sequence
    click = 5  # the ground station clicked on frame 5; its message was logged 4 frames later
    stamped = write_bag(tmp_path / "stamped", {
        "/camera/image_raw": camera_messages(frames),
        "/mlkd_tracker/init_box": [(T0 + (click + 4) * PERIOD, polygon(truth[click], T0 + click * PERIOD))]})
    out = tmp_path / "res.txt"
    assert main(["track", "--bag", str(stamped), "--model", str(model_file), "--output", str(out), "--quiet"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == N - click
    assert tuple(map(float, lines[0].split(","))) == pytest.approx(truth[click])
    assert "target from the bag" in capsys.readouterr().out
    ROI = TS.types["sensor_msgs/msg/RegionOfInterest"]
    x, y, w, h = truth[7]
    unstamped = write_bag(tmp_path / "roi", {
        "/camera/image_raw": camera_messages(frames),
        "/init_roi": [(T0 + 7 * PERIOD + 10_000_000, ROI(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False))]})
    assert main(["track", str(unstamped), "--model", str(model_file), "--output", str(out), "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == N - 7  # the newest frame logged when the ROI arrived


@pytest.mark.parametrize("make_args,message", [
    (lambda d, m: ["track", "--bag", str(d / "absent.mcap"), "--init", "1,1,5,5"], "bag not found"),
    (lambda d, m: ["track", "--bag", str(d / "corrupt.mcap"), "--init", "1,1,5,5"], "cannot read bag"),
    (lambda d, m: ["track", "--bag", str(d / "two"), "--init", "1,1,5,5"], "choose one with --topic"),
    (lambda d, m: ["track", "--bag", str(d / "two"), "--topic", "/nope", "--init", "1,1,5,5"], "is not in the bag"),
    (lambda d, m: ["track", "--bag", str(d / "two"), "--topic", "/imu", "--init", "1,1,5,5"], "has type std_msgs/msg/Header"),
    (lambda d, m: ["track", "--bag", str(d / "two"), "--topic", "/a"], "no PolygonStamped / RegionOfInterest topic"),
    (lambda d, m: ["track", "--bag", str(d / "bad"), "--init", "1,1,5,5"], "message 1 is not a usable image"),
    (lambda d, m: ["track", "video.mp4", "--topic", "/a", "--init", "1,1,5,5"], "need a bag"),
    (lambda d, m: ["track", "video.mp4", "--bag", str(d / "two"), "--init", "1,1,5,5"], "give one input"),
])
def test_bad_bags_give_one_clear_error(tmp_path, sequence, model_file, capsys, make_args, message):
    frames, _ = sequence
    (tmp_path / "corrupt.mcap").write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 50)
    write_bag(tmp_path / "two", {"/a": camera_messages(frames[:2]), "/b": camera_messages(frames[:2]),
                                 "/imu": [(T0, _header(T0))]})
    broken = image(frames[1], T0 + PERIOD)
    broken.step = 7  # a recorder bug: wrong step
    write_bag(tmp_path / "bad", {"/cam": [(T0, image(frames[0], T0)), (T0 + PERIOD, broken)]})
    assert main(make_args(tmp_path, model_file) + ["--model", str(model_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
