"""``mlkd track --bag``: rosbag2 files (mcap and sqlite3) written with ``rosbags`` and replayed, no ROS needed.

One test records the tracker node's real output (rclpy, ``vision_msgs``) into a bag and reads it back.
"""
from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

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


class Serialized(NamedTuple):
    """A message already in CDR bytes (as rclpy sent it)."""

    msgtype: str
    data: bytes


def write_bag(path, topics: dict[str, list[tuple[int, object]]], storage=StoragePlugin.MCAP, typestore=TS):
    """A rosbag2 at ``path`` with ``{topic: [(log_time_ns, message or Serialized), ...]}`` and its type definitions."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for topic, messages in topics.items():
            first = messages[0][1]
            msgtype = first.msgtype if isinstance(first, Serialized) else first.__msgtype__
            conn = writer.add_connection(topic, msgtype, typestore=typestore)
            for log_time, msg in messages:
                data = msg.data if isinstance(msg, Serialized) else typestore.serialize_cdr(msg, msgtype)
                writer.write(conn, log_time, data)
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
    (lambda d, m: ["track", "--bag", str(d / "two"), "--topic", "/a"],
     "no PolygonStamped / RegionOfInterest / Detection2DArray topic"),
    (lambda d, m: ["track", "--bag", str(d / "two"), "--topic", "/a", "--init", "1,1,5,5", "--recorded-output",
                   str(d / "rec.txt")], "has no Detection2DArray topic"),
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


def record_node_output(frames, stamps, init_box) -> list[tuple[int, bytes]]:
    """The tracker node (planted-peak backend) on ``frames``: its ``detections`` as (header stamp, CDR bytes sent)."""
    rclpy = pytest.importorskip("rclpy", reason="recording the node's output needs rclpy")
    pytest.importorskip("vision_msgs", reason="the node's output type needs vision_msgs (a ROS install, or "
                                              "scripts/setup_env.sh with ../shared/ros_src)")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image as RosImage, RegionOfInterest
    from vision_msgs.msg import Detection2DArray

    from fakes import PlantedPeakBackend, brightest_blob_offset
    from mlkd_tracker.ros.convert import bgr_to_bytes
    from mlkd_tracker.ros.node import TrackerNode
    from mlkd_tracker.tracker import SiameseTracker

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(1, 101))  # 0-101: DDS ports below the ephemeral range
    node = TrackerNode(tracker_factory=lambda *a, **k: (SiameseTracker(PlantedPeakBackend(brightest_blob_offset)),
                                                        None), context=context, namespace="/rec")
    peer = rclpy.create_node("recorder", namespace="/rec", context=context)
    sent: list[bytes] = []
    peer.create_subscription(Detection2DArray, "detections", sent.append, 100, raw=True)
    images = peer.create_publisher(RosImage, "image", 10)
    roi = peer.create_publisher(RegionOfInterest, "init_roi", 10)
    executor = SingleThreadedExecutor(context=context)
    for n in (node, peer):
        executor.add_node(n)

    def spin_until(predicate, what: str) -> None:
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            executor.spin_once(timeout_sec=0.01)
    try:
        assert node.start()
        spin_until(lambda: images.get_subscription_count() and roi.get_subscription_count(), "discovery")
        for i, (frame, stamp) in enumerate(zip(frames, stamps)):
            msg = RosImage(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                           data=bgr_to_bytes(frame))
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
            count = len(sent)
            images.publish(msg)
            spin_until(lambda: len(sent) > count, f"the array for frame {i}")
            if i == 1:  # the target is selected on the second frame
                x, y, w, h = init_box
                roi.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
                spin_until(lambda: len(sent) > count + 1, "the init box")
    finally:
        executor.shutdown()
        node.destroy_node()
        peer.destroy_node()
        rclpy.shutdown(context=context)
    headers = [deserialize_message(data, Detection2DArray).header.stamp for data in sent]
    return [(h.sec * 10**9 + h.nanosec, data) for h, data in zip(headers, sent)]


def vision_msgs_typestore():
    """The Humble typestore plus vision_msgs, read from the installed package's .msg files."""
    from ament_index_python.packages import get_package_share_directory
    from rosbags.typesys import get_types_from_msg

    typestore = get_typestore(Stores.ROS2_HUMBLE)
    for path in sorted(Path(get_package_share_directory("vision_msgs"), "msg").glob("*.msg")):
        typestore.register(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    return typestore


STAMPS = [T0 + i * PERIOD for i in range(N)]


@pytest.fixture(scope="module")
def node_output(tmp_path_factory, sequence):
    """A bag of the camera and the node's real ``detections`` (target selected on frame 1), its messages, its typestore."""
    frames, truth = sequence
    sent = record_node_output(frames, STAMPS, truth[1])
    assert len(sent) == N + 1  # frame 0 (idle: empty), the init box on frame 1, then one array per frame
    detections = [(t + 5_000_000, Serialized("vision_msgs/msg/Detection2DArray", d)) for t, d in sent]
    typestore = vision_msgs_typestore()
    bag = write_bag(tmp_path_factory.mktemp("bag") / "flight", {"/camera/image_raw": camera_messages(frames),
                                                                "/rec/detections": detections}, typestore=typestore)
    return bag, detections, typestore


def test_replay_reads_the_node_output_back(tmp_path, sequence, model_file, node_output, capsys):
    frames, truth = sequence
    stamps = STAMPS
    bag, detections, typestore = node_output
    node_boxes = BagSource(bag).recorded_boxes()
    assert node_boxes[stamps[0]] is None and node_boxes[stamps[1]] == pytest.approx(truth[1])
    assert all(node_boxes[s] == pytest.approx(truth[i], abs=1.0) for i, s in enumerate(stamps[2:], start=2))

    # no selection recorded: the replay starts from the node's first box, on the frame its header names
    out, rec = tmp_path / "res.txt", tmp_path / "rec.txt"
    assert main(["track", "--bag", str(bag), "--model", str(model_file), "--output", str(out),
                 "--recorded-output", str(rec), "--quiet"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == N - 1 and tuple(map(float, lines[0].split(","))) == pytest.approx(truth[1])
    recorded = np.loadtxt(rec, delimiter=",")
    np.testing.assert_allclose(recorded, [node_boxes[s] for s in stamps[1:]], atol=1e-4)
    assert f"a box on {N - 1} of {N - 1} replayed frames" in capsys.readouterr().out
    assert main(["track", "--bag", str(bag), "--init", "40,30,24,24", "--model", str(model_file),
                 "--recorded-output", str(rec), "--quiet"]) == 0
    assert rec.read_text().splitlines()[0] == "nan,nan,nan,nan"  # frame 0: the node had no target yet
    assert len(rec.read_text().splitlines()) == N

    # a recorded selection comes first; the node's boxes are still written for the replayed frames
    x, y, w, h = truth[4]
    ROI = TS.types["sensor_msgs/msg/RegionOfInterest"]
    both = write_bag(tmp_path / "both", {
        "/camera/image_raw": camera_messages(frames), "/rec/detections": detections,
        "/rec/init_roi": [(stamps[4] + 10_000_000, ROI(x_offset=x, y_offset=y, width=w, height=h, do_rectify=False))]},
        typestore=typestore)
    assert main(["track", "--bag", str(both), "--model", str(model_file), "--output", str(out),
                 "--recorded-output", str(rec), "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == N - 4 == len(rec.read_text().splitlines())
    assert main(["track", "--bag", str(both), "--init-topic", "/rec/detections", "--model", str(model_file),
                 "--output", str(out), "--quiet"]) == 0
    assert len(out.read_text().splitlines()) == N - 1


def test_replay_and_the_runtime_import_no_ros_package(tmp_path, model_file, node_output):
    """``mlkd track --bag`` on the node's output bag with every ROS Python package made unimportable."""
    bag, _, _ = node_output
    blocked = ("rclpy", "vision_msgs", "launch", "launch_ros", "sensor_msgs", "std_msgs", "geometry_msgs",
               "rosidl_runtime_py", "ament_index_python", "cv_bridge")
    code = f"""
import sys
class NoRos:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError("ROS package imported: " + name)
sys.meta_path.insert(0, NoRos())
import mlkd_tracker, mlkd_tracker.sources, mlkd_tracker.ros.convert, mlkd_tracker.cli.track
from mlkd_tracker.cli import main
sys.exit(main(sys.argv[1:]))
"""
    rec = tmp_path / "rec.txt"
    result = subprocess.run([sys.executable, "-c", code, "track", "--bag", str(bag), "--model", str(model_file),
                             "--recorded-output", str(rec), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(rec.read_text().splitlines()) == N - 1  # started from the node's first box, read without ROS
