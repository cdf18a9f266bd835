"""The tracker node with real rclpy on loopback: topics, QoS, lifecycle, services, parameters, diagnostics.

Each test runs the node and a peer node in this process on a random ROS domain limited to
localhost; the deterministic planted-peak backend (``fakes.py``) makes the expected boxes exact.
The console-script test runs the node as its own process with a real (tiny, random-weight)
torch checkpoint and stops it with SIGINT. ``ros2 launch`` itself: ``test_ros_launch.py``.
"""
from __future__ import annotations

import itertools
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels or a ROS install) is needed for node tests")
pytest.importorskip("vision_msgs", reason="vision_msgs is needed for node tests: a ROS install, or scripts/setup_env.sh "
                                          "with ../shared/ros_src (generates it for the ROS wheels)")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Point32, PolygonStamped  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from fakes import PlantedPeakBackend, brightest_blob_offset, moving_square_frames  # noqa: E402
from mlkd_tracker.backends import create_tracker  # noqa: E402
from mlkd_tracker.ros.convert import bgr_to_bytes, detection_box  # noqa: E402
from mlkd_tracker.ros.node import TrackerNode  # noqa: E402
from mlkd_tracker.tracker import SiameseTracker, Status, TrackResult  # noqa: E402
from ros_helpers import iou, ros_context_fixture, spin_in_background, stamp_ns  # noqa: E402

DOMAIN_ID = random.randint(1, 100)
CONFIG = Path(__file__).resolve().parents[1] / "config" / "mlkd_tracker.yaml"
_names = itertools.count()


ros_context = ros_context_fixture(DOMAIN_ID)


class FakeLoaded:
    name = "planted-peak"
    info = {"backend": "planted-peak", "device": "cpu", "precision": "fp32"}


def planted_factory(delay_s: float = 0.0):
    """A tracker factory for the node: the planted-peak backend, optionally slowed to ``delay_s`` per frame."""
    def factory(model, device, precision, overrides, backend="auto"):
        backend = PlantedPeakBackend(brightest_blob_offset)
        if delay_s:
            search = backend.search

            def slow_search(crop, kernels):
                time.sleep(delay_s)
                return search(crop, kernels)
            backend.search = slow_search
        tracker = SiameseTracker(backend)
        if overrides:
            tracker.config = tracker.config.replace(**overrides)
        return tracker, FakeLoaded()
    return factory


def image_msg(frame: np.ndarray, stamp: int, frame_id: str = "camera") -> Image:
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                data=bgr_to_bytes(frame))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def box_of(msg: Detection2DArray):
    """The box of a one-detection array (x, y, w, h)."""
    assert len(msg.detections) == 1
    return detection_box(msg.detections[0])


def score_of(msg: Detection2DArray) -> float:
    return msg.detections[0].results[0].hypothesis.score


def new_namespace() -> str:
    return f"/t{next(_names)}_{uuid.uuid4().hex[:6]}"


class Rig:
    """The node under test plus a peer node publishing camera frames and collecting every output."""

    def __init__(self, factory=None, params: dict | None = None, start: bool = True, ns: str | None = None):
        ns = ns or new_namespace()
        overrides = [Parameter(k, value=v) for k, v in (params or {}).items()]
        self.node = TrackerNode(tracker_factory=factory or planted_factory(), namespace=ns,
                                parameter_overrides=overrides)
        self.ns = ns
        self.peer = Node("peer", namespace=ns)
        self.arrays: list[Detection2DArray] = []  # every detections message
        self.boxes: list[tuple[float, Detection2DArray]] = []  # (receipt time, array with the target)
        self.empty: list[Detection2DArray] = []  # arrays without a target (idle or lost)
        self.statuses: list[str] = []
        self.diagnostics: list[dict] = []
        self.debug_images: list[Image] = []
        p = self.peer
        p.create_subscription(Detection2DArray, "detections", self._on_detections, 100)
        p.create_subscription(String, "target_status", lambda m: self.statuses.append(m.data), 100)
        p.create_subscription(Image, "debug_image", self.debug_images.append, 10)
        p.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.image_pub = p.create_publisher(Image, "image", 10)
        self.compressed_pub = p.create_publisher(CompressedImage, "image/compressed", 10)
        self.box_pub = p.create_publisher(PolygonStamped, "init_box", 10)
        self.roi_pub = p.create_publisher(RegionOfInterest, "init_roi", 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(p)
        self.thread = spin_in_background(self.executor)
        if start:
            assert self.node.start()
            images = self.compressed_pub if (params or {}).get("use_compressed") else self.image_pub
            self.wait(lambda: images.get_subscription_count() > 0 and self.roi_pub.get_subscription_count() > 0,
                      "discovery")

    def _on_detections(self, msg: Detection2DArray) -> None:
        self.arrays.append(msg)
        if msg.detections:
            self.boxes.append((time.time(), msg))
        else:
            self.empty.append(msg)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(self.node.get_fully_qualified_name() + ":"):
                self.diagnostics.append({"level": status.level[0], "message": status.message,
                                         **{kv.key: kv.value for kv in status.values}})

    def wait(self, predicate, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def send(self, frame: np.ndarray, stamp: int, frame_id: str = "camera") -> None:
        self.image_pub.publish(image_msg(frame, stamp, frame_id))

    def feed(self, frames, stamps) -> None:
        """Send frames one by one, each once the node has the previous (no loss on a best-effort topic)."""
        for frame, stamp in zip(frames, stamps):
            count = self.node.stats.received
            self.send(frame, stamp)
            self.wait(lambda: self.node.stats.received > count, "a frame to arrive")

    def init_roi(self, box) -> None:
        x, y, w, h = (int(v) for v in box)
        self.roi_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))

    def init_polygon(self, box, stamp: int) -> None:
        x, y, w, h = box
        msg = PolygonStamped()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        msg.polygon.points = [Point32(x=float(x), y=float(y)), Point32(x=float(x + w), y=float(y + h))]
        self.box_pub.publish(msg)

    def call(self, name: str) -> Trigger.Response:
        client = self.peer.create_client(Trigger, f"{self.ns}/{self.node.get_name()}/{name}")
        assert client.wait_for_service(5.0)
        future = client.call_async(Trigger.Request())
        self.wait(future.done, f"service {name}")
        return future.result()

    def set_params(self, **values):
        client = self.peer.create_client(SetParameters, f"{self.ns}/{self.node.get_name()}/set_parameters")
        assert client.wait_for_service(5.0)
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]))
        self.wait(future.done, "set_parameters")
        return future.result().results

    def latest_diagnostics(self) -> dict:
        count = len(self.diagnostics)
        self.wait(lambda: len(self.diagnostics) > count, "a diagnostics message")
        return self.diagnostics[-1]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()
        self.thread.join(5.0)


@pytest.fixture
def rig_factory():
    rigs = []

    def make(*args, **kwargs) -> Rig:
        rigs.append(Rig(*args, **kwargs))
        return rigs[-1]
    yield make
    for r in rigs:
        r.close()


def test_detections_follow_the_target_with_the_image_header(rig_factory):
    rig = rig_factory(params={"diagnostics_period": 0.2, "target_class": "vehicle"})
    frames, truth = moving_square_frames(30)
    t0 = 1_700_000_000 * 10**9
    rig.send(frames[0], t0)
    rig.wait(lambda: rig.empty, "an empty array for the frame before any target")
    assert stamp_ns(rig.empty[0]) == t0 and rig.empty[0].header.frame_id == "camera"
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    for i in range(1, 30):
        rig.send(frames[i], t0 + i * 33_000_000, frame_id=f"cam{i}")
        rig.wait(lambda: len(rig.boxes) > i, f"box for frame {i}")
    assert box_of(rig.boxes[0][1]) == pytest.approx(truth[0])
    for i, (_, msg) in enumerate(rig.boxes[1:], start=1):
        assert stamp_ns(msg) == t0 + i * 33_000_000 and msg.header.frame_id == f"cam{i}"
        assert iou(box_of(msg), truth[i]) > 0.7, (i, box_of(msg), truth[i])
        detection = msg.detections[0]
        assert detection.header == msg.header and detection.id == "1"
        assert detection.bbox.center.theta == 0.0 and len(detection.results) == 1
        assert detection.results[0].hypothesis.class_id == "vehicle" and score_of(msg) > 0.9
    assert rig.statuses == ["idle", "tracking"]  # latched, on change
    assert len(rig.empty) == 1
    diag = rig.latest_diagnostics()
    assert diag["status"] == "tracking" and diag["lifecycle_state"] == "active" and diag["track_id"] == "1"
    assert int(diag["frames_tracked"]) == 29 and diag["backend"] == "planted-peak"
    for key in ("fps", "latency_p50_ms", "latency_p99_ms", "frames_dropped", "model"):
        assert key in diag
    assert math.isfinite(float(diag["latency_p99_ms"])) and 0 <= float(diag["model_load_s"]) < 5


def test_a_lost_target_gives_empty_arrays_and_a_lost_status(rig_factory):
    # every score is under a threshold of 1.0: the status turns lost after 2 weak frames, tracking goes on
    rig = rig_factory(params={"lost_threshold": 1.0, "lost_frames": 2})
    frames, truth = moving_square_frames(6)
    rig.feed(frames[:1], [10**9])
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    for i in range(1, 6):  # one at a time: the node tracks the newest frame, a frame sent too early is dropped
        rig.send(frames[i], (i + 1) * 10**9)
        rig.wait(lambda: stamp_ns(rig.arrays[-1]) == (i + 1) * 10**9, f"the array for frame {i}")
    assert [stamp_ns(m) for _, m in rig.boxes] == [10**9, 2 * 10**9]  # the init box and one weak frame
    assert [stamp_ns(m) for m in rig.empty[1:]] == [(i + 1) * 10**9 for i in range(2, 6)]
    assert rig.statuses == ["idle", "tracking", "lost"]
    assert rig.node._tracker.initialized  # tracking went on: a target found again comes back as a detection


def test_default_model_follows_the_target_through_a_generated_night_clip(rig_factory, tmp_path):
    pytest.importorskip("torch")
    from mlkd_training.commands.demo import make_clip

    seq = make_clip(tmp_path, 150, (640, 360), seed=7)  # mlkd demo's night clip; its first 60 frames here
    n = 60
    init = tuple(float(int(v)) for v in seq.init_box)  # a RegionOfInterest holds whole pixels
    offline, _ = create_tracker(None, "cpu")
    offline.init(seq.frame(0), init)
    expected = [TrackResult(init, 1.0, Status.TRACKING)] + [offline.update(seq.frame(i)) for i in range(1, n)]

    rig = rig_factory(factory=create_tracker, params={"device": "cpu"})  # model parameter unset: MLKD-Track
    stamps = [3 * 10**9 + i * 33_000_000 for i in range(n)]
    rig.send(seq.frame(0), stamps[0])
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(init)
    rig.wait(lambda: rig.boxes, "the init box", timeout=30)
    arrays = [rig.boxes[0][1]]
    for i in range(1, n):
        rig.send(seq.frame(i), stamps[i], frame_id="night_cam")
        rig.wait(lambda: stamp_ns(rig.arrays[-1]) == stamps[i], f"the array for frame {i}", timeout=30)
        arrays.append(rig.arrays[-1])
    # the node is the library tracker, frame for frame: the same box while tracking, an empty array when lost
    assert [len(m.detections) for m in arrays] == [int(r.status == Status.TRACKING) for r in expected]
    assert sum(r.status == Status.LOST for r in expected) < n / 2  # this clip loses the target after frame 40
    for msg, result in zip(arrays, expected):
        if msg.detections:
            np.testing.assert_allclose(box_of(msg), result.box_xywh, atol=0.01)
    boxes = [r.box_xywh for r in expected]
    frames = [i for i in range(1, n) if seq.valid[i] and arrays[i].detections]
    tracked = np.mean([iou(boxes[i], seq.gt[i]) for i in frames])
    standing = np.mean([iou(init, seq.gt[i]) for i in frames])  # a box that never moves
    assert tracked > 0.4 and tracked > standing + 0.3, (tracked, standing)
    assert rig.latest_diagnostics()["model"] == "MLKD-Track"


def test_stamped_init_uses_the_frame_it_was_drawn_on_and_catches_up(rig_factory):
    frames, truth = moving_square_frames(24)
    t0 = 5 * 10**9
    stale = 8  # the click was made on frame 8; the target has moved 15 * (6, 3) px since

    def run(stamped: bool):
        rig = rig_factory(params={"catchup_max_frames": 5})
        rig.feed(frames, [t0 + i * 40_000_000 for i in range(len(frames))])
        if stamped:
            rig.init_polygon(truth[stale], t0 + stale * 40_000_000)
        else:  # the same box without a stamp lands on the newest frame, where the target no longer is
            rig.init_roi(truth[stale])
        rig.wait(lambda: rig.boxes, "the first box")
        return rig.boxes[0][1]

    caught_up = run(stamped=True)
    assert stamp_ns(caught_up) == t0 + 23 * 40_000_000
    assert iou(box_of(caught_up), truth[-1]) > 0.7
    unstamped = run(stamped=False)
    assert stamp_ns(unstamped) == t0 + 23 * 40_000_000
    assert iou(box_of(unstamped), truth[-1]) == 0.0


def test_stamp_outside_the_buffer_is_rejected_and_counted(rig_factory):
    rig = rig_factory(params={"frame_buffer_size": 3, "diagnostics_period": 0.2})
    frames, truth = moving_square_frames(6)
    rig.feed(frames, [(i + 1) * 10**9 for i in range(6)])
    rig.init_polygon(truth[0], 1 * 10**9)  # frame 0 fell out of a 3-frame buffer
    rig.wait(lambda: rig.node.stats.rejected["init"] == 1, "the init rejection")
    assert "matches no buffered frame" in rig.node.stats.last_rejection and not rig.boxes
    assert rig.latest_diagnostics()["rejected_init_boxes"] == "1"


def test_flood_of_720p_frames_drops_instead_of_queueing(rig_factory):
    delay = 0.03  # a tracker slower than the camera: 100 Hz in, at most ~33 Hz out
    rig = rig_factory(planted_factory(delay))
    frames, truth = moving_square_frames(2, size=(720, 1280), start=(600.0, 300.0), step=(2.0, 1.0), side=40)
    messages = [image_msg(f, 0) for f in frames]
    rig.send(frames[0], time.time_ns())
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    received0, tracked0, dropped0 = rig.node.stats.received, rig.node.stats.processed, rig.node.stats.dropped
    boxes0 = len(rig.boxes)
    sent_stamps = []
    next_t = time.monotonic()
    for i in range(150):
        msg = messages[i % 2]
        stamp = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        rig.image_pub.publish(msg)
        sent_stamps.append(stamp)
        next_t += 0.01
        time.sleep(max(0.0, next_t - time.monotonic()))
    flood_end = time.time()
    time.sleep(6 * delay + 0.3)
    stats = rig.node.stats
    received, tracked, dropped = (stats.received - received0, stats.processed - tracked0, stats.dropped - dropped0)
    assert received > 100  # best effort may lose some on the way, most arrive
    assert dropped > 0.3 * received  # the tracker could not keep up, so frames were dropped ...
    assert received - 1 <= tracked + dropped <= received  # ... and every frame is either tracked or counted
    flood_boxes = rig.boxes[boxes0:]
    assert len(flood_boxes) == tracked
    # no backlog: after the flood only the frame in progress, the one waiting and what the middleware's
    # 5-deep sensor-data queue still held come out (a queueing node would still owe ~100 boxes)
    assert sum(1 for t, _ in flood_boxes if t > flood_end) <= 7
    assert stamp_ns(flood_boxes[-1][1]) in sent_stamps[-10:]
    latencies = [t - stamp_ns(m) / 1e9 for t, m in flood_boxes]
    assert max(latencies) < 1.0, f"box latency grew to {max(latencies):.3f} s: a backlog"


def test_malformed_messages_leave_the_node_alive_and_tracking(rig_factory):
    ns = new_namespace()
    override = f"qos_overrides.{ns}/image.subscription."
    # a reliable, deep subscription through the QoS override parameters: nothing of the corpus is lost
    rig = rig_factory(ns=ns, params={"diagnostics_period": 0.2, "max_image_pixels": 1280 * 720,
                                     override + "reliability": "reliable", override + "depth": 100})
    frames, truth = moving_square_frames(40)
    t0 = 10**9
    rig.send(frames[0], t0)
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    infos = rig.peer.get_subscriptions_info_by_topic(f"{ns}/image")
    assert [i.qos_profile.reliability for i in infos] == [QoSReliabilityPolicy.RELIABLE]
    assert qos_profile_sensor_data.reliability == QoSReliabilityPolicy.BEST_EFFORT  # the override stayed local
    assert qos_profile_sensor_data.depth == 5

    good = frames[1]
    bad_images = [
        Image(height=360, width=640, encoding="32FC1", step=640 * 4, data=bgr_to_bytes(np.zeros((360, 640, 4), np.uint8))),
        Image(height=360, width=640, encoding="bgr8", step=100, data=bgr_to_bytes(good)),
        Image(height=360, width=640, encoding="bgr8", step=640 * 3, data=bgr_to_bytes(good[:100])),
        Image(height=0, width=0, encoding="bgr8", step=0),
        Image(height=100000, width=100000, encoding="bgr8", step=300000),
        Image(height=360, width=641, encoding="yuv422", step=641 * 2, data=bgr_to_bytes(np.zeros((360, 641, 2), np.uint8))),
    ]
    other_size = image_msg(np.zeros((200, 300, 3), np.uint8), 0)  # valid, but not the tracked camera size
    bad_inits = [lambda: rig.init_roi((5000, 5000, 20, 20)),  # outside the image
                 lambda: rig.roi_pub.publish(RegionOfInterest()),  # zero size
                 lambda: rig.init_polygon((float("nan"), 3.0, 10.0, 10.0), 0),
                 lambda: rig.box_pub.publish(PolygonStamped())]  # no points
    step = 1
    for n, bad in enumerate(bad_images + [other_size], start=1):
        bad.header.stamp.sec = 99
        rig.image_pub.publish(bad)
        rig.wait(lambda: sum(rig.node.stats.rejected.values()) == n, f"bad message {n} to be rejected")
        rig.send(frames[step], t0 + step * 10**8)
        rig.wait(lambda: len(rig.boxes) > step, f"box after bad message {step}")
        step += 1
    for send_bad in bad_inits:
        send_bad()
        rig.send(frames[step], t0 + step * 10**8)
        rig.wait(lambda: len(rig.boxes) > step, f"box after bad init {step}")
        step += 1
    rig.wait(lambda: rig.node.stats.rejected["init"] == 4, "the init rejections")
    for i in range(step, 40):
        rig.send(frames[i], t0 + i * 10**8)
        rig.wait(lambda: len(rig.boxes) > i, f"box for frame {i}")
    for i, (_, msg) in enumerate(rig.boxes):
        assert iou(box_of(msg), truth[i]) > 0.7, i
    diag = rig.latest_diagnostics()
    assert (diag["rejected_images"], diag["rejected_frames"], diag["rejected_init_boxes"]) == ("6", "1", "4")
    assert diag["tracking_errors"] == "0" and diag["status"] == "tracking"
    assert rig.statuses[-1] == "tracking"


def test_stop_and_reset_services(rig_factory):
    rig = rig_factory()
    frames, truth = moving_square_frames(10)
    assert not rig.call("reset").success  # nothing to reset yet
    rig.send(frames[0], 10**9)
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    rig.send(frames[1], 2 * 10**9)
    rig.wait(lambda: len(rig.boxes) == 2, "a tracked box")
    reset = rig.call("reset")
    assert reset.success and "template refreshed" in reset.message
    rig.wait(lambda: len(rig.boxes) == 3, "the box of the reset")
    assert rig.boxes[-1][1].detections[0].id == "1"  # the same target
    empty_before = len(rig.empty)
    stop = rig.call("stop")
    assert stop.success
    rig.wait(lambda: rig.statuses[-1] == "idle", "idle status")
    rig.wait(lambda: len(rig.empty) > empty_before, "an empty array")  # "no target" for consumers at once
    count = len(rig.boxes)
    rig.send(frames[2], 3 * 10**9)
    rig.wait(lambda: stamp_ns(rig.empty[-1]) == 3 * 10**9, "an empty array for the frame while idle")
    assert len(rig.boxes) == count
    assert not rig.call("reset").success
    rig.init_roi(truth[2])
    rig.wait(lambda: len(rig.boxes) > count, "the box of a new selection")
    assert rig.boxes[-1][1].detections[0].id == "2"  # a new target


def test_parameters_are_validated_and_applied_at_runtime(rig_factory):
    rig = rig_factory(params={"lost_threshold": 0.5})
    assert rig.node._tracker.config.lost_threshold == 0.5  # a set parameter overrides the model file
    assert rig.node._tracker.config.penalty_k == pytest.approx(0.14)  # an unset one keeps it
    results = rig.set_params(penalty_k=2.0)
    assert not results[0].successful and "penalty_k" in results[0].reason
    results = rig.set_params(model="other.pth")
    assert not results[0].successful and "applied at configure" in results[0].reason
    results = rig.set_params(image_topic="cam2")
    assert not results[0].successful and "applied at activate" in results[0].reason
    results = rig.set_params(crop="exact")
    assert not results[0].successful and "crop must be one of fast, pysot" in results[0].reason
    results = rig.set_params(lost_frames=3, window_influence=0.2, debug_image=True, crop="pysot")
    assert all(r.successful for r in results)
    config = rig.node._tracker.config
    assert (config.lost_frames, config.window_influence, config.crop) == (3, 0.2, "pysot")
    results = rig.set_params(autostart=False)
    assert not results[0].successful
    frames, truth = moving_square_frames(3)
    rig.send(frames[0], 10**9)
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    rig.send(frames[1], 2 * 10**9, frame_id="cam")
    rig.wait(lambda: len(rig.debug_images) >= 2, "debug images")
    debug = rig.debug_images[-1]
    assert (debug.encoding, debug.height, debug.width, stamp_ns(debug)) == ("bgr8", 360, 640, 2 * 10**9)
    drawn = np.frombuffer(debug.data, np.uint8).reshape(360, 640, 3)
    assert not np.array_equal(drawn, frames[1])  # the box was drawn


def test_configure_failure_is_reported_and_the_node_recovers(rig_factory, tmp_path):
    torch = pytest.importorskip("torch")
    from mlkd_tracker.nets import SiamRPN
    from mlkd_tracker.nets.checkpoint import save_checkpoint

    rig = rig_factory(factory=create_tracker, params={"diagnostics_period": 0.2, "precision": "fp64"}, start=False)
    assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE  # a start-up value is checked too
    assert "precision must be one of" in rig.node._last_error
    spec = tmp_path / "untrained.yaml"
    spec.write_text("name: Untrained\narch: {width: 0.25}\n")
    assert rig.set_params(precision="auto", model=str(spec))[0].successful
    assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE  # a model config without weights
    diag = rig.latest_diagnostics()
    assert diag["level"] == 2 and "names no weights file" in diag["message"]
    assert diag["lifecycle_state"] == "unconfigured"
    torch.manual_seed(0)
    model = save_checkpoint(SiamRPN(width=0.25), tmp_path / "tiny.pth", {"name": "tiny"})
    assert rig.set_params(model=str(model), backend="onnxruntime")[0].successful
    assert rig.node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "the onnxruntime backend cannot open tiny.pth" in rig.node._last_error
    assert rig.set_params(backend="torch")[0].successful
    assert rig.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert rig.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    diag = rig.latest_diagnostics()
    assert (diag["model"], diag["backend"], diag["lifecycle_state"]) == ("tiny", "torch", "active")
    assert rig.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    assert rig.node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert rig.node._tracker is None


def test_config_yaml_parameters_are_declared_and_accepted(rig_factory):
    params = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["/**"]["ros__parameters"]
    rig = rig_factory(params=params, start=False)
    for name, value in params.items():  # an undeclared name would raise here
        assert rig.node.get_parameter(name).value == value


def test_compressed_input(rig_factory):
    rig = rig_factory(params={"use_compressed": True})
    frames, truth = moving_square_frames(12)

    def send(frame, i):
        msg = CompressedImage(format="png", data=cv2.imencode(".png", frame)[1].tobytes())
        msg.header.stamp.sec = i
        rig.compressed_pub.publish(msg)

    send(frames[0], 0)
    rig.wait(lambda: rig.node.stats.received >= 1, "first frame")
    rig.init_roi(truth[0])
    rig.wait(lambda: rig.boxes, "the init box")
    garbage = CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg")
    rig.compressed_pub.publish(garbage)
    rig.wait(lambda: rig.node.stats.rejected["frame"] == 1, "the undecodable frame")
    for i in range(1, 12):
        send(frames[i], i)
        rig.wait(lambda: len(rig.boxes) > i, f"box {i}")
    assert all(iou(box_of(m), truth[i]) > 0.7 for i, (_, m) in enumerate(rig.boxes))


def test_console_script_tracks_with_a_real_model_and_exits_cleanly_on_sigint(tmp_path):
    torch = pytest.importorskip("torch")
    from mlkd_tracker.nets import SiamRPN
    from mlkd_tracker.nets.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = save_checkpoint(SiamRPN(width=0.25), tmp_path / "tiny.pth", {"name": "tiny"})
    ns = f"/proc_{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "mlkd_tracker.ros.node", "--ros-args", "-r", f"__ns:={ns}",
                             "--params-file", str(CONFIG),
                             "-p", f"model:={model}", "-p", "device:=cpu", "-p", "diagnostics_period:=0.2",
                             "-p", "lost_threshold:=0.0",  # random weights, low scores: never "lost" here
                             # reliable input across processes, set the way a user overrides QoS
                             "-p", f"qos_overrides.{ns}/image.subscription.reliability:=reliable"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peer = Node("console_peer", namespace=ns)
    boxes, received = [], []

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name.startswith(f"{ns}/mlkd_tracker:"):
                received.extend(int(kv.value) for kv in status.values if kv.key == "frames_received")
    peer.create_subscription(Detection2DArray, "detections", lambda m: m.detections and boxes.append(m), 10)
    peer.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    pub = peer.create_publisher(Image, "image", 10)
    roi = peer.create_publisher(RegionOfInterest, "init_roi", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    spin_in_background(executor)
    try:
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 or roi.get_subscription_count() == 0:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the node never subscribed"
            time.sleep(0.05)
        frames, truth = moving_square_frames(6)
        while not received or received[-1] == 0:  # the node has the first frame before the target is selected
            assert time.monotonic() < deadline, "the node never received a frame"
            pub.publish(image_msg(frames[0], 10**9))
            time.sleep(0.2)
        x, y, w, h = truth[0]
        roi.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
        while not boxes:
            assert time.monotonic() < deadline, "no box from the node"
            time.sleep(0.05)
        for i in range(1, 6):
            pub.publish(image_msg(frames[i], (i + 1) * 10**9))
            while len(boxes) <= i and time.monotonic() < deadline:
                time.sleep(0.02)
        assert len(boxes) == 6
        for msg in boxes:
            x, y, w, h = box_of(msg)
            assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 360 and w > 0 and h > 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "model ready" in err + out
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        peer.destroy_node()


def test_other_cdr_representations_fall_back_to_rclpy(rig_factory, monkeypatch):
    from rclpy.serialization import serialize_message

    from mlkd_tracker.errors import InputError
    from mlkd_tracker.ros import convert, node as node_module

    rig = rig_factory(start=False)
    raw = serialize_message(image_msg(moving_square_frames(1)[0][0], 7 * 10**9))

    def unsupported(data, compressed=False):
        raise convert.UnsupportedSerialization("not read directly")
    monkeypatch.setattr(node_module, "parse_serialized_image", unsupported)
    msg = rig.node._parse(raw)
    assert isinstance(msg, Image) and msg.header.stamp.sec == 7 and msg.width == 640
    with pytest.raises(InputError, match="cannot deserialise the image message"):
        rig.node._parse(b"\x00\x03\x00\x00" + b"\xff" * 3)
