"""``ros2 launch mlkd_tracker track.launch.py`` run for real, as a user runs it, and the ``ros2`` tooling on the node.

The command is started as a subprocess (the package found through the ament index of the installed
package) on a random ROS domain limited to localhost; a peer node in this process publishes the
camera and selects the target, receives ``vision_msgs/Detection2DArray``, checks that every launch
argument took effect, talks to the node's parameter, lifecycle and ``~/reset`` services, and stops the
launch with SIGINT to its process group, as Ctrl-C does. These archives have ``ros2 launch`` and
``ros2 pkg`` but not the ``param``, ``service`` and ``lifecycle`` verbs: their services are called with
rclpy here, which is what those verbs do.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from fakes import moving_square_frames

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels or a ROS install) is needed for launch tests")
pytest.importorskip("vision_msgs", reason="vision_msgs is needed: a ROS install, or scripts/setup_env.sh with "
                                          "../shared/ros_src (generates it for the ROS wheels)")
pytest.importorskip("launch_ros", reason="launch_ros is needed: a ROS install, or scripts/setup_env.sh with "
                                         "../shared/ros_src")
ROS2 = shutil.which("ros2", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
if ROS2 is None:
    pytest.skip("the ros2 command is not installed (ros2cli + ros2launch)", allow_module_level=True)
from ament_index_python.packages import PackageNotFoundError, get_package_prefix  # noqa: E402

try:
    PREFIX = Path(get_package_prefix("mlkd_tracker"))
except PackageNotFoundError:
    pytest.skip("mlkd_tracker is not in the ament index: colcon build it, or run scripts/setup_env.sh",
                allow_module_level=True)

from lifecycle_msgs.srv import GetState  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import DescribeParameters, GetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from mlkd_tracker.ros.convert import bgr_to_bytes, detection_box  # noqa: E402
from ros_helpers import iou, ros_context_fixture, spin_in_background, stamp_ns  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "models" / "mlkd_track.pth"
DOMAIN_ID = random.randint(1, 101)  # 0-101: DDS ports below the ephemeral range
ENV = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
START_TIMEOUT_S = 90  # process start, imports and model load on a busy 2-core machine


ros_context = ros_context_fixture(DOMAIN_ID)


def wait(predicate, what: str, timeout: float = 20.0, launch: "Launch | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if launch is not None and launch.proc.poll() is not None:
            raise AssertionError(f"ros2 launch exited ({launch.proc.returncode}) while waiting for {what}:\n"
                                 + launch.output())
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{launch.output()}" if launch else ""))
        time.sleep(0.01)


class Launch:
    """``ros2 launch mlkd_tracker track.launch.py ARGS`` in its own process group; its output is collected."""

    def __init__(self, *arguments: str):
        self.proc = subprocess.Popen([ROS2, "launch", "mlkd_tracker", "track.launch.py", *arguments], env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def output(self) -> str:
        return "".join(self.lines)

    def interrupt(self) -> str:
        """Ctrl-C: SIGINT to the whole process group (launch and the node); the output once all exited."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=30)
        self.reader.join(10)
        return self.output()

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Peer:
    """A node in this process: the camera and the ground station for the launched tracker, and its service client."""

    def __init__(self, ns: str, image_topic: str, compressed: bool = False):
        self.ns = ns
        self.node = rclpy.create_node(f"peer_{uuid.uuid4().hex[:6]}", namespace=ns)
        self.arrays: list[Detection2DArray] = []
        self.statuses: list[str] = []
        self.node.create_subscription(Detection2DArray, "detections", self.arrays.append, 100)
        self.node.create_subscription(String, "target_status", lambda m: self.statuses.append(m.data),
                                      QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        self.images = self.node.create_publisher(CompressedImage if compressed else Image,
                                                 f"{image_topic}/compressed" if compressed else image_topic, 10)
        self.roi = self.node.create_publisher(RegionOfInterest, "init_roi", 10)
        self.compressed = compressed
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = spin_in_background(self.executor)

    def send(self, frame: np.ndarray, stamp: int, frame_id: str = "night_cam") -> None:
        if self.compressed:
            msg = CompressedImage(format="png", data=cv2.imencode(".png", frame)[1].tobytes())
        else:
            msg = Image(height=frame.shape[0], width=frame.shape[1], encoding="bgr8", step=frame.shape[1] * 3,
                        data=bgr_to_bytes(frame))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 10**9)
        msg.header.frame_id = frame_id
        self.images.publish(msg)

    def array_for(self, stamp: int) -> Detection2DArray | None:
        """The newest array for the frame stamped ``stamp`` ns (the init box follows an empty one for the same frame)."""
        found = [m for m in self.arrays if stamp_ns(m) == stamp]
        return found[-1] if found else None

    def start_tracking(self, launch: Launch, frame: np.ndarray, stamp: int, box) -> Detection2DArray:
        """Send the first frame until the node answers it (an empty array: no target yet), then select the target."""
        wait(lambda: self.images.get_subscription_count() > 0 and self.roi.get_subscription_count() > 0,
             "the node's subscriptions", START_TIMEOUT_S, launch)
        deadline = time.monotonic() + 20
        while self.array_for(stamp) is None:  # best-effort input: resend until one arrives
            assert time.monotonic() < deadline, "no answer to the first frame:\n" + launch.output()
            self.send(frame, stamp)
            time.sleep(0.2)
        assert not self.array_for(stamp).detections
        x, y, w, h = (int(v) for v in box)
        self.roi.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
        wait(lambda: self.array_for(stamp).detections, "the init box", launch=launch)
        return self.array_for(stamp)

    def call(self, service_type, name: str, request):
        client = self.node.create_client(service_type, f"{self.ns}/mlkd_tracker/{name}")
        assert client.wait_for_service(10.0), f"no service {self.ns}/mlkd_tracker/{name}"
        future = client.call_async(request)
        wait(future.done, f"{name} to answer")
        self.node.destroy_client(client)
        return future.result()

    def parameters(self, *names: str) -> dict:
        values = self.call(GetParameters, "get_parameters", GetParameters.Request(names=list(names))).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values)}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.thread.join(5)


def assert_clean_exit(output: str, launch: Launch) -> None:
    assert launch.proc.returncode == 0, output
    assert "Traceback" not in output and "process has finished cleanly" in output, output


@pytest.fixture
def namespace() -> str:
    return f"/drone_{uuid.uuid4().hex[:8]}"


def test_launch_tracks_a_night_sequence_with_every_argument_applied(tmp_path, namespace):
    pytest.importorskip("torch")
    from mlkd_training.commands.demo import make_clip

    seq = make_clip(tmp_path, 150, (640, 360), seed=7)  # mlkd demo's night clip; its first 40 frames here
    n = 40
    params = tmp_path / "field.yaml"
    params.write_text("/**:\n  ros__parameters:\n    device: cpu\n    target_class: night_target\n"
                      "    frame_buffer_size: 12\n"
                      # reliable input: 690 kB frames between processes are often lost when best effort
                      f"    qos_overrides.{namespace}/night_cam.subscription.reliability: reliable\n")
    launch = Launch(f"model:={BUNDLED_MODEL}", "image_topic:=night_cam", f"namespace:={namespace}",
                    f"params_file:={params}", "log_level:=warn", "use_compressed:=false")
    peer = Peer(namespace, "night_cam")
    try:
        stamps = [1_800_000_000 * 10**9 + i * 33_000_000 for i in range(n)]
        init = tuple(float(int(v)) for v in seq.init_box)
        first = peer.start_tracking(launch, seq.frame(0), stamps[0], init)
        assert detection_box(first.detections[0]) == pytest.approx(init)
        arrays = [first]
        for i in range(1, n):
            peer.send(seq.frame(i), stamps[i])
            wait(lambda: peer.array_for(stamps[i]) is not None, f"the array for frame {i}", launch=launch)
            arrays.append(peer.array_for(stamps[i]))
        for msg, stamp in zip(arrays, stamps):
            assert stamp_ns(msg) == stamp
            assert msg.header.frame_id == "night_cam"
        tracked = [i for i in range(1, n) if arrays[i].detections and seq.valid[i]]
        assert len(tracked) > 0.75 * n
        for i in tracked:
            detection = arrays[i].detections[0]
            assert detection.id == "1" and detection.results[0].hypothesis.class_id == "night_target"  # params_file
            assert 0.0 < detection.results[0].hypothesis.score <= 1.0
        follows = np.mean([iou(detection_box(arrays[i].detections[0]), seq.gt[i]) for i in tracked])
        standing = np.mean([iou(init, seq.gt[i]) for i in tracked])  # a box that never moves
        assert follows > 0.4 and follows > standing + 0.3, (follows, standing)
        assert peer.statuses[-1] == "tracking"

        # namespace, image topic, params_file and the launch values, as the node holds them
        assert ("mlkd_tracker", namespace) in peer.node.get_node_names_and_namespaces()
        assert peer.parameters("model", "image_topic", "use_compressed", "frame_buffer_size", "autostart") == {
            "model": str(BUNDLED_MODEL), "image_topic": "night_cam", "use_compressed": False,
            "frame_buffer_size": 12, "autostart": True}
        # ros2 param describe
        described = peer.call(DescribeParameters, "describe_parameters", DescribeParameters.Request(
            names=["penalty_k", "lost_frames", "autostart", "image_topic"])).descriptors
        penalty_k, lost_frames, autostart, image_topic = described
        assert penalty_k.type == ParameterType.PARAMETER_DOUBLE and "penalty" in penalty_k.description
        assert (penalty_k.floating_point_range[0].from_value, penalty_k.floating_point_range[0].to_value) == (0, 1)
        assert (lost_frames.integer_range[0].from_value, lost_frames.integer_range[0].to_value) == (1, 10000)
        assert autostart.read_only and "applied at activate" in image_topic.description.lower()
        # ros2 service call <ns>/mlkd_tracker/reset std_srvs/srv/Trigger
        reset = peer.call(Trigger, "reset", Trigger.Request())
        assert reset.success and "template refreshed" in reset.message
        stop = peer.call(Trigger, "stop", Trigger.Request())
        assert stop.success
        wait(lambda: peer.statuses[-1] == "idle", "status idle", launch=launch)

        output = launch.interrupt()
        assert_clean_exit(output, launch)
        assert "model ready" not in output  # an INFO line: log_level:=warn took effect
    finally:
        launch.close()
        peer.close()


def test_launch_managed_lifecycle_with_compressed_input(namespace):
    launch = Launch("image_topic:=cam", f"namespace:={namespace}", "autostart:=false", "use_compressed:=true")
    peer = Peer(namespace, "cam", compressed=True)
    try:
        frames, truth = moving_square_frames(8)
        stamps = [(i + 1) * 10**9 for i in range(8)]
        peer.start_tracking(launch, frames[0], stamps[0], truth[0])
        # autostart:=false: the node did not start itself; the launch description configured and activated it
        assert peer.parameters("autostart", "use_compressed") == {"autostart": False, "use_compressed": True}
        state = peer.call(GetState, "get_state", GetState.Request()).current_state
        assert state.label == "active"
        for i in range(1, 8):
            deadline = time.monotonic() + 20
            while peer.array_for(stamps[i]) is None:  # best-effort input: resend until it arrives
                assert time.monotonic() < deadline, f"no array for frame {i}:\n" + launch.output()
                peer.send(frames[i], stamps[i])
                time.sleep(0.1)
        output = launch.interrupt()
        assert_clean_exit(output, launch)
        assert re.search(r"model ready in [\d.]+ s: MLKD-Track", output)  # the default model; INFO shown by default
        assert f"active: tracking on {namespace}/cam/compressed" in output
    finally:
        launch.close()
        peer.close()


def test_ros2_finds_the_package_its_executable_and_launch_arguments():
    prefix = subprocess.run([ROS2, "pkg", "prefix", "mlkd_tracker"], env=ENV, capture_output=True, text=True,
                            check=True).stdout.strip()
    assert Path(prefix) == PREFIX
    executables = subprocess.run([ROS2, "pkg", "executables", "mlkd_tracker"], env=ENV, capture_output=True,
                                 text=True, check=True).stdout.split()
    assert executables == ["mlkd_tracker", "mlkd_tracker_node"]
    assert os.access(PREFIX / "lib" / "mlkd_tracker" / "mlkd_tracker_node", os.X_OK)
    installed = PREFIX / "share" / "mlkd_tracker" / "launch" / "track.launch.py"
    assert installed.read_text() == (REPO / "launch" / "track.launch.py").read_text()  # this checkout's file
    shown = subprocess.run([ROS2, "launch", "mlkd_tracker", "track.launch.py", "--show-args"], env=ENV,
                           capture_output=True, text=True, check=True).stdout
    declared = re.findall(r"^\s+'(\w+)':", shown, flags=re.M)
    assert declared == ["model", "backend", "image_topic", "use_compressed", "params_file", "namespace", "log_level",
                        "autostart"]
    assert "(default: 'true')" in shown and "'mlkd_tracker.yaml'" in shown  # the installed config by default


def test_node_benchmark_times_the_launch_and_the_node(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(REPO / "bench" / "ros_node.py"), "--size", "320x180",
                             "--launch-runs", "1", "--frames", "5", "--flood-seconds", "1", "--json", str(out)],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    launch = figures["launch_s"]["runs"][0]
    # the milestones come in order, and the model loads inside the time before the node subscribes
    assert 0 < launch["model_load_s"] < launch["subscribed_s"] <= launch["first_array_s"] <= launch["first_box_s"]
    assert figures["overhead_ms"]["frames"] == 5 and figures["overhead_ms"]["node"]["p50"] > 0
    assert figures["flood"]["sent"] == 100 and figures["flood"]["tracked"] > 0
    assert "first box" in result.stdout and "node overhead < 2 ms" in result.stdout
