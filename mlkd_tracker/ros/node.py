"""``mlkd_tracker_node``: the ROS 2 lifecycle node over the tracker core.

A thin adapter: messages <-> numpy (``convert.py``), parameters, QoS, diagnostics. Images arrive
serialized; the callback reads their fields without deserialising (the pixels stay a view of the
received bytes), checks them (O(1)), and stores the frame in a short ring buffer and in a
one-slot "newest frame" box; a worker thread tracks whatever is newest, so a slow frame never
builds a backlog (frames replaced before the worker took them are counted as dropped). A stamped
init box is applied on the buffered frame it was drawn on, then the tracker catches up.

Outputs: ``detections`` (``vision_msgs/Detection2DArray`` with the source image's header, for every
frame the worker handles: one detection while tracking, empty while idle or lost) and
``target_status`` (``tracking`` / ``lost`` / ``idle``, latched, on change).

Lifecycle: configure loads the model (a TensorRT engine build is logged as it goes), activate
subscribes and starts tracking, deactivate stops; ``autostart`` (default) does both at start.
"""
from __future__ import annotations

import collections
import copy
import logging
import math
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PolygonStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image, RegionOfInterest
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from mlkd_tracker.backends import BACKENDS as BACKEND_MODULES_BY_NAME, create_tracker
from mlkd_tracker.crop import CROP_MODES
from mlkd_tracker.errors import InputError, MLKDError
from mlkd_tracker.report import latency_stats
from mlkd_tracker.ros.convert import (DEFAULT_MAX_PIXELS, UnsupportedSerialization, bgr_to_bytes, box_center_size,
                                      check_compressed, check_image, compressed_to_bgr, image_to_bgr,
                                      parse_serialized_image, points_to_box, roi_to_box, stamp_to_ns)
from mlkd_tracker.tracker import SiameseTracker, Status, TrackResult

NODE_NAME = "mlkd_tracker"
BACKENDS = ("auto", *BACKEND_MODULES_BY_NAME)
PRECISIONS = ("auto", "fp32", "fp16", "int8")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|(cuda|tensorrt)(:\d+)?)$")
LOAD_PARAMS = ("model", "backend", "device", "precision")           # applied at configure
TOPIC_PARAMS = ("image_topic", "use_compressed", "init_box_topic", "init_roi_topic")  # applied at activate
# tracking values overriding the model file's when set: name -> (type, min, max, description);
# a string's allowed values are in TRACKING_CHOICES instead of a range
TRACKING_PARAMS: dict[str, tuple[Parameter.Type, float, float, str]] = {
    "penalty_k": (Parameter.Type.DOUBLE, 0.0, 1.0, "scale / aspect-ratio change penalty"),
    "window_influence": (Parameter.Type.DOUBLE, 0.0, 1.0, "cosine-window blend weight"),
    "lr": (Parameter.Type.DOUBLE, 0.0, 1.0, "box size update rate"),
    "context_amount": (Parameter.Type.DOUBLE, 0.0, 2.0, "context around the box: amount * (w + h)"),
    "lost_threshold": (Parameter.Type.DOUBLE, 0.0, 1.0, "best score under this counts as a weak frame"),
    "lost_frames": (Parameter.Type.INTEGER, 1, 10000, "consecutive weak frames before status is 'lost'"),
    "crop": (Parameter.Type.STRING, 0, 0, "crop: fast (one warp) or pysot (pysot's get_subwindow pixel for pixel, "
             "to reproduce published numbers)"),
}
TRACKING_CHOICES = {"crop": CROP_MODES}
LOG_THROTTLE_S = 2.0
SERVICE_TIMEOUT_S = 10.0

# (model path or None, device, precision, tracking overrides, backend=, log=) -> (tracker, loaded model):
# create_tracker's shape
TrackerFactory = Callable[..., tuple[SiameseTracker, Any]]


def check_load_choices(values: dict[str, Any]) -> str | None:
    """Why ``backend`` / ``precision`` / ``device`` values are invalid, or None when they are fine."""
    if "backend" in values and values["backend"] not in BACKENDS:
        return f"backend must be one of {BACKENDS}, got {values['backend']!r}"
    if "precision" in values and values["precision"] not in PRECISIONS:
        return f"precision must be one of {PRECISIONS}, got {values['precision']!r}"
    if "device" in values and not DEVICE_PATTERN.match(str(values["device"])):
        return f"device must be auto, cpu, cuda[:N] or tensorrt[:N], got {values['device']!r}"
    return None


@dataclass
class BufferedFrame:
    """A checked image message as it arrived (converted to pixels only when tracked)."""

    seq: int
    stamp_ns: int
    msg: Any         # the image's fields (sensor_msgs/Image or CompressedImage names), pixels not copied
    received: float  # time.perf_counter() at the callback


@dataclass
class InitRequest:
    box: tuple[float, float, float, float]
    stamp_ns: int | None  # None: the newest frame
    source: str


@dataclass
class Command:
    """A service request handed to the worker; ``done`` is set with ``ok`` and ``message``."""

    name: str  # "reset" | "stop"
    done: threading.Event
    ok: bool = False
    message: str = ""


class NodeStats:
    """Counters and recent per-frame timings for /diagnostics (shared by two threads)."""

    def __init__(self, window: int = 500):
        self.lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.errors = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self.last_rejection = ""
        # (latency ms: callback -> outputs published, tracker ms: tracker.update)
        self.timings: collections.deque[tuple[float, float]] = collections.deque(maxlen=window)
        self.processed_at: collections.deque[float] = collections.deque(maxlen=window)

    def reject(self, kind: str, message: str) -> None:
        with self.lock:
            self.rejected[kind] += 1
            self.last_rejection = message

    def record(self, latency_ms: float, tracker_ms: float) -> None:
        with self.lock:
            self.processed += 1
            self.timings.append((latency_ms, tracker_ms))
            self.processed_at.append(time.monotonic())

    def fps(self, horizon_s: float = 2.0) -> float:
        """Frames tracked per second over the last ``horizon_s`` seconds."""
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.processed_at if now - t <= horizon_s]
        return len(recent) / horizon_s


class _RosLogHandler(logging.Handler):
    """Forwards Python ``logging`` records (backends building engines) to the node's ROS logger."""

    def __init__(self, ros_logger: Any):
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(text)
        else:
            self.ros_logger.info(text)


@contextmanager
def _python_logs_to_ros(ros_logger: Any) -> Iterator[None]:
    logger = logging.getLogger("mlkd_tracker")
    handler, old_level = _RosLogHandler(ros_logger), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


class TrackerNode(LifecycleNode):
    """Single-object tracker node; see the module docstring and the README's ROS 2 section."""

    def __init__(self, node_name: str = NODE_NAME, *, tracker_factory: TrackerFactory | None = None,
                 **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        self._factory = tracker_factory or create_tracker
        self._declare_parameters()
        self.stats = NodeStats()
        self._cond = threading.Condition()
        self._buffer: collections.deque[BufferedFrame] = collections.deque(
            maxlen=self.get_parameter("frame_buffer_size").value)
        self._pending: BufferedFrame | None = None
        self._commands: collections.deque[InitRequest | Command] = collections.deque()
        self._seq = 0
        self._worker: threading.Thread | None = None
        self._running = False
        self._tracker: SiameseTracker | None = None
        self._model_info: dict[str, Any] = {}
        self._model_name = ""
        self._configured = self._active = False
        self._last_error = ""
        self._last_seq = -1
        self._last_header = None
        self._last_box: tuple[float, float, float, float] | None = None
        self._status = Status.IDLE
        self._track_id = 0  # Detection2D.id: counts the targets selected since start
        self._model_load_s = math.nan
        self._inputs: list[Any] = []
        self._compressed = False
        self._outputs: dict[str, Any] = {}
        self._triggers: list[Any] = []
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10,
                                               qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._diag_timer = self.create_timer(self.get_parameter("diagnostics_period").value, self._publish_diagnostics)

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> None:
        def declare(name: str, default: Any, description: str, *, int_range=None, float_range=None,
                    read_only: bool = False, extra: str = "") -> None:
            d = ParameterDescriptor(description=description, read_only=read_only, additional_constraints=extra)
            if int_range:
                d.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
            if float_range:
                d.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                             to_value=float(float_range[1]), step=0.0)]
            self.declare_parameter(name, default, d)

        declare("model", "", "model file: .pth/.safetensors (torch), .onnx (ONNX Runtime), .engine (TensorRT) "
                "or a models/*.yaml; empty = the bundled MLKD-Track config. Applied at configure.")
        declare("backend", "auto", "inference backend; auto = chosen by the model file. Applied at configure.",
                extra="one of " + ", ".join(BACKENDS))
        declare("device", "auto", "auto, cpu, cuda[:N], or tensorrt[:N] (ONNX Runtime TensorRT provider). Applied at configure.")
        declare("precision", "auto", "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or int8. Applied at configure.",
                extra="one of " + ", ".join(PRECISIONS))
        declare("image_topic", "image", "camera topic (sensor_msgs/Image, or <topic>/compressed with "
                "use_compressed). Applied at activate.")
        declare("use_compressed", False, "subscribe to sensor_msgs/CompressedImage on <image_topic>/compressed")
        declare("init_box_topic", "init_box", "geometry_msgs/PolygonStamped target selection (pixels); its stamp "
                "picks the buffered frame it was drawn on")
        declare("init_roi_topic", "init_roi", "sensor_msgs/RegionOfInterest target selection on the newest frame")
        declare("target_class", "target", "class_id of the published detections (the tracker is class-agnostic: "
                "name what you select)")
        declare("debug_image", False, "publish debug_image (sensor_msgs/Image bgr8) with the box drawn")
        declare("frame_buffer_size", 30, "recent frames kept for stamped init boxes", int_range=(1, 600))
        declare("init_stamp_tolerance", 0.05, "seconds an init box stamp may differ from its frame's stamp",
                float_range=(0.0, 5.0))
        declare("catchup_max_frames", 30, "most buffered frames tracked to catch up after a stamped init "
                "(evenly spaced, the newest always included)", int_range=(1, 600))
        declare("max_image_pixels", DEFAULT_MAX_PIXELS, "larger images are rejected", int_range=(1, 1 << 30))
        declare("diagnostics_period", 1.0, "seconds between /diagnostics messages", float_range=(0.1, 60.0))
        declare("autostart", True, "configure and activate at start (the node then runs like a plain node)",
                read_only=True)
        for name, (ptype, low, high, text) in TRACKING_PARAMS.items():
            d = ParameterDescriptor(description=text + "; unset = the model file's value")
            if ptype == Parameter.Type.INTEGER:
                d.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
            elif ptype == Parameter.Type.DOUBLE:
                d.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
            else:
                d.additional_constraints = "one of " + ", ".join(TRACKING_CHOICES[name])
            self.declare_parameter(name, ptype, d)

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _tracking_overrides(self) -> dict[str, Any]:
        """The tracking parameters that are set (the others keep the model file's values)."""
        overrides = {}
        for name in TRACKING_PARAMS:
            try:
                overrides[name] = self._param(name)
            except ParameterUninitializedException:
                pass
        return overrides

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate (and apply) parameter changes at runtime; a refused change names the reason."""
        changes = {p.name: p.value for p in params}

        def refuse(reason: str) -> SetParametersResult:
            return SetParametersResult(successful=False, reason=reason)

        for name in LOAD_PARAMS:
            if name in changes and self._configured:
                return refuse(f"{name} is applied at configure: deactivate and clean up the node first")
        for name in TOPIC_PARAMS:
            if name in changes and self._active:
                return refuse(f"{name} is applied at activate: deactivate the node first")
        problem = check_load_choices(changes)
        if problem:
            return refuse(problem)
        if "image_topic" in changes and not str(changes["image_topic"]).strip():
            return refuse("image_topic must not be empty")
        tracking = {k: v for k, v in changes.items() if k in TRACKING_PARAMS and v is not None}
        if tracking and self._tracker is not None:
            try:
                new_config = self._tracker.config.replace(**tracking)
            except InputError as exc:
                return refuse(str(exc))
            self._tracker.config = new_config  # read once per update by the worker
        if "frame_buffer_size" in changes:
            with self._cond:
                self._buffer = collections.deque(self._buffer, maxlen=int(changes["frame_buffer_size"]))
        if "diagnostics_period" in changes:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = self.create_timer(float(changes["diagnostics_period"]), self._publish_diagnostics)
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        model = self._param("model") or None
        backend, device, precision = self._param("backend"), self._param("device"), self._param("precision")
        log = self.get_logger()
        log.info(f"loading model {model or '<bundled MLKD-Track>'} (backend {backend}, device {device}, precision "
                 f"{precision}); a first TensorRT engine build can take minutes")
        t0 = time.perf_counter()
        problem = check_load_choices({"backend": backend, "device": device, "precision": precision})
        if problem:
            return self._configure_failed(problem)
        try:
            with _python_logs_to_ros(log):
                tracker, loaded = self._factory(model, device, precision, self._tracking_overrides(), backend=backend)
            info = dict(getattr(loaded, "info", {}) or {})
        except MLKDError as exc:
            return self._configure_failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a backend failing to load must not kill the node
            return self._configure_failed(f"{type(exc).__name__}: {exc}")
        self._tracker, self._model_info = tracker, info
        self._model_name = str(getattr(loaded, "name", model))
        self._model_load_s = time.perf_counter() - t0
        self._last_error = ""
        outputs = QoSProfile(depth=10)
        latched = QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        overridable = QoSOverridingOptions.with_default_policies()
        self._outputs = {
            "detections": self.create_lifecycle_publisher(Detection2DArray, "detections", outputs,
                                                          qos_overriding_options=overridable),
            "status": self.create_lifecycle_publisher(String, "target_status", latched,
                                                      qos_overriding_options=overridable),
            "debug": self.create_lifecycle_publisher(Image, "debug_image", QoSProfile(depth=2),
                                                     qos_overriding_options=overridable),
        }
        self._triggers = [self.create_service(Trigger, "~/reset", self._on_reset),
                          self.create_service(Trigger, "~/stop", self._on_stop)]
        self._configured = True
        log.info(f"model ready in {self._model_load_s:.1f} s: {self._model_name} {info}")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, message: str) -> TransitionCallbackReturn:
        self._last_error = f"configure failed: {message}"
        self.get_logger().error(self._last_error)
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        topic = self._param("image_topic")
        self._compressed = bool(self._param("use_compressed"))
        image_type, topic = (CompressedImage, f"{topic}/compressed") if self._compressed else (Image, topic)
        # a copy: rclpy writes QoS overrides into the profile it is given, and this one is module-wide
        image_sub = self.create_subscription(image_type, topic, self._on_image, copy.copy(qos_profile_sensor_data),
                                             raw=True,
                                             qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._inputs = [
            image_sub,
            self.create_subscription(PolygonStamped, self._param("init_box_topic"), self._on_init_box, 10),
            self.create_subscription(RegionOfInterest, self._param("init_roi_topic"), self._on_init_roi, 10),
        ]
        result = super().on_activate(state)
        self._start_worker()
        self._active = True
        self._set_idle(None, announce=True)
        self.get_logger().info(f"active: tracking on {image_sub.topic_name}; select the target on "
                               f"{self._param('init_box_topic')} or {self._param('init_roi_topic')}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for sub in self._inputs:
            self.destroy_subscription(sub)
        self._inputs = []
        if self._tracker is not None:
            self._tracker.reset()
        self._set_idle(self._last_header)
        self._active = False
        with self._cond:
            self._buffer.clear()
            self._pending = None
            self._commands.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        for pub in self._outputs.values():
            self.destroy_lifecycle_publisher(pub)
        for srv in self._triggers:
            self.destroy_service(srv)
        self._outputs, self._triggers = {}, []
        self._tracker, self._model_info, self._model_name = None, {}, ""
        self._configured = False

    def start(self) -> bool:
        """Configure then activate (what ``autostart`` does); False when a step failed."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _parse(self, data: bytes) -> Any:
        """The fields of a serialized image; rclpy deserialises the CDR representations not read directly."""
        try:
            return parse_serialized_image(data, self._compressed)
        except UnsupportedSerialization:
            try:
                return deserialize_message(data, CompressedImage if self._compressed else Image)
            except Exception as exc:  # noqa: BLE001 - rclpy raises its own error types for bad bytes
                raise InputError(f"cannot deserialise the image message: {exc}") from exc

    def _on_image(self, data: bytes) -> None:
        received = time.perf_counter()
        with self.stats.lock:
            self.stats.received += 1
        try:
            msg = self._parse(data)
            if self._compressed:
                check_compressed(msg)
            else:
                check_image(msg, self._param("max_image_pixels"))
        except InputError as exc:
            self._reject("image", f"rejected image message: {exc}")
            return
        with self._cond:
            self._seq += 1
            frame = BufferedFrame(self._seq, stamp_to_ns(msg.header.stamp), msg, received)
            self._buffer.append(frame)
            if self._pending is not None:
                with self.stats.lock:
                    self.stats.dropped += 1
            self._pending = frame
            self._cond.notify()

    def _on_init_box(self, msg: PolygonStamped) -> None:
        try:
            box = points_to_box(msg.polygon.points)
        except InputError as exc:
            self._reject("init", f"rejected init box: {exc}")
            return
        stamp = stamp_to_ns(msg.header.stamp)
        self._enqueue(InitRequest(box, stamp or None, "init_box"))  # a zero stamp means "the newest frame"

    def _on_init_roi(self, msg: RegionOfInterest) -> None:
        try:
            box = roi_to_box(msg)
        except InputError as exc:
            self._reject("init", f"rejected init ROI: {exc}")
            return
        self._enqueue(InitRequest(box, None, "init_roi"))

    def _enqueue(self, item: InitRequest | Command) -> None:
        with self._cond:
            self._commands.append(item)
            self._cond.notify()

    def _service(self, name: str, response: Trigger.Response) -> Trigger.Response:
        if not self._active:
            response.success, response.message = False, "node is not active"
            return response
        command = Command(name, threading.Event())
        self._enqueue(command)
        if not command.done.wait(SERVICE_TIMEOUT_S):
            response.success, response.message = False, f"{name} timed out after {SERVICE_TIMEOUT_S:.0f} s"
        else:
            response.success, response.message = command.ok, command.message
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._service("reset", response)

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._service("stop", response)

    def _reject(self, kind: str, message: str) -> None:
        self.stats.reject(kind, message)
        self.get_logger().warning(message, throttle_duration_sec=LOG_THROTTLE_S)

    # ------------------------------------------------------------------ worker thread
    def _start_worker(self) -> None:
        self._running = True
        self._worker = threading.Thread(target=self._work, name="mlkd-tracker-worker", daemon=True)
        self._worker.start()

    def _stop_worker(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _work(self) -> None:
        while True:
            with self._cond:
                while self._running and self._pending is None and not self._commands:
                    self._cond.wait()
                if not self._running:
                    return
                command = self._commands.popleft() if self._commands else None
                frame = None
                if command is None:
                    frame, self._pending = self._pending, None
            try:
                if isinstance(command, InitRequest):
                    self._initialise(command)
                elif command is not None:
                    self._run_command(command)
                elif frame is not None and frame.seq > self._last_seq:
                    if self._tracker.initialized:
                        self._track(frame)
                    else:
                        self._outputs["detections"].publish(Detection2DArray(header=self._header(frame.msg.header)))
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one bad frame or backend hiccup
                with self.stats.lock:
                    self.stats.errors += 1
                self.get_logger().error(f"tracking error ({type(exc).__name__}): {exc}",
                                        throttle_duration_sec=LOG_THROTTLE_S)

    def _to_bgr(self, frame: BufferedFrame) -> np.ndarray:
        if self._compressed:
            return compressed_to_bgr(frame.msg, self._param("max_image_pixels"))
        return image_to_bgr(frame.msg, self._param("max_image_pixels"))

    def _track(self, frame: BufferedFrame) -> None:
        try:
            image = self._to_bgr(frame)
            t0 = time.perf_counter()
            result = self._tracker.update(image)
            tracker_ms = (time.perf_counter() - t0) * 1e3
        except InputError as exc:
            self._reject("frame", f"frame not tracked: {exc}")
            return
        self._last_seq = frame.seq
        self._publish(frame.msg.header, result, image)
        self.stats.record((time.perf_counter() - frame.received) * 1e3, tracker_ms)

    def _initialise(self, request: InitRequest) -> None:
        with self._cond:
            frames = list(self._buffer)
        if not frames:
            self._reject("init", f"init box from {request.source} ignored: no image received yet")
            return
        start = len(frames) - 1
        if request.stamp_ns is not None:
            gaps = [abs(f.stamp_ns - request.stamp_ns) for f in frames]
            start = int(np.argmin(gaps))
            if gaps[start] > self._param("init_stamp_tolerance") * 1e9:
                self._reject("init", f"init box stamped {request.stamp_ns / 1e9:.3f} s matches no buffered frame "
                                     f"(buffer holds {frames[0].stamp_ns / 1e9:.3f} .. {frames[-1].stamp_ns / 1e9:.3f} s;"
                                     f" raise frame_buffer_size or init_stamp_tolerance)")
                return
        try:
            image = self._to_bgr(frames[start])
            self._tracker.init(image, request.box)
        except InputError as exc:
            self._reject("init", f"init box {request.box} from {request.source} rejected: {exc}")
            return
        self._track_id += 1
        self.get_logger().info(f"target {self._track_id} selected at {request.box} on frame "
                               f"{frames[start].stamp_ns / 1e9:.3f} s ({len(frames) - 1 - start} newer frames to catch up)")
        later = frames[start + 1:]
        limit = self._param("catchup_max_frames")
        if len(later) > limit:  # evenly spaced, always ending on the newest
            later = [later[i] for i in np.unique(np.linspace(0, len(later) - 1, limit).round().astype(int))]
        result, last, last_image = TrackResult(tuple(request.box), 1.0, Status.TRACKING), frames[start], image
        for frame in later:
            try:
                image = self._to_bgr(frame)
                result, last, last_image = self._tracker.update(image), frame, image
            except InputError as exc:
                self._reject("frame", f"frame not tracked while catching up: {exc}")
        self._last_seq = max(self._last_seq, last.seq)
        self._publish(last.msg.header, result, last_image)

    def _run_command(self, command: Command) -> None:
        if command.name == "stop":
            self._tracker.reset()
            self._set_idle(self._last_header)
            command.ok, command.message = True, "tracking stopped; send a new init box to start again"
        elif not self._tracker.initialized or self._last_box is None:
            command.ok, command.message = False, "no target to reset: send an init box first"
        else:
            with self._cond:
                newest = self._buffer[-1] if self._buffer else None
            box = self._last_box
            try:
                image = self._to_bgr(newest)
                self._tracker.init(image, box)
            except InputError as exc:
                command.ok, command.message = False, f"reset failed: {exc}"
            else:
                self._last_seq = max(self._last_seq, newest.seq)
                self._publish(newest.msg.header, TrackResult(box, 1.0, Status.TRACKING), image)
                command.ok, command.message = True, "template refreshed at box " + ",".join(f"{v:.1f}" for v in box)
        command.done.set()

    # ------------------------------------------------------------------ outputs
    @staticmethod
    def _header(source_header: Any) -> Header:
        """A ``std_msgs/Header`` with the stamp and frame_id of a received image (also of its parsed fields)."""
        return Header(stamp=Time(sec=source_header.stamp.sec, nanosec=source_header.stamp.nanosec),
                      frame_id=source_header.frame_id)

    def _detections(self, header: Header, result: TrackResult) -> Detection2DArray:
        """The frame's ``Detection2DArray``: the target while tracking, empty when lost."""
        out = Detection2DArray(header=header)
        if result.status == Status.TRACKING:
            detection = Detection2D(header=header, id=str(self._track_id))
            center = detection.bbox.center.position
            center.x, center.y, detection.bbox.size_x, detection.bbox.size_y = box_center_size(result.box_xywh)
            hypothesis = ObjectHypothesisWithPose()
            hypothesis.hypothesis.class_id = self._param("target_class")
            hypothesis.hypothesis.score = float(result.score)
            detection.results = [hypothesis]
            out.detections = [detection]
        return out

    def _publish(self, source_header: Any, result: TrackResult, image: np.ndarray | None) -> None:
        header = self._header(source_header)
        self._outputs["detections"].publish(self._detections(header, result))
        self._publish_status(result.status)
        self._last_header, self._last_box = header, result.box_xywh
        if self._param("debug_image") and image is not None:
            from mlkd_tracker.draw import draw_result

            drawn = draw_result(image.copy(), result)
            self._outputs["debug"].publish(Image(header=header, height=drawn.shape[0], width=drawn.shape[1],
                                                 encoding="bgr8", step=drawn.shape[1] * 3, data=bgr_to_bytes(drawn)))

    def _publish_status(self, status: Status, announce: bool = False) -> None:
        """``target_status`` when the status changes (or ``announce``: a new activation)."""
        changed = status != self._status
        self._status = status
        if (changed or announce) and self._outputs:
            self._outputs["status"].publish(String(data=status.value))

    def _set_idle(self, header: Any, announce: bool = False) -> None:
        """Status ``idle`` and, after a target, an empty detection array: "no target" for consumers."""
        self._last_box = None
        if self._outputs and header is not None:
            self._outputs["detections"].publish(Detection2DArray(header=header))
        self._publish_status(Status.IDLE, announce)

    def _lifecycle_state(self) -> str:
        return "active" if self._active else "inactive" if self._configured else "unconfigured"

    def _publish_diagnostics(self) -> None:
        stats = self.stats
        with stats.lock:
            timings = list(stats.timings)
            counts = {"frames_received": stats.received, "frames_tracked": stats.processed,
                      "frames_dropped": stats.dropped, "tracking_errors": stats.errors,
                      "rejected_images": stats.rejected["image"], "rejected_frames": stats.rejected["frame"],
                      "rejected_init_boxes": stats.rejected["init"]}
            last_rejection = stats.last_rejection
        latency = latency_stats([t[0] for t in timings])
        tracker = latency_stats([t[1] for t in timings])
        overhead = latency_stats([t[0] - t[1] for t in timings])
        state = self._lifecycle_state()
        status = DiagnosticStatus(name=f"{self.get_fully_qualified_name()}: tracker",
                                  hardware_id=str(self._model_info.get("device", "")))
        if self._last_error and not self._configured:
            status.level, status.message = DiagnosticStatus.ERROR, self._last_error
        elif self._status == Status.LOST:
            status.level, status.message = DiagnosticStatus.WARN, f"{state}, target lost"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{state}, {self._status.value}"
        values = {"lifecycle_state": state, "status": self._status.value, "track_id": self._track_id,
                  "model": self._model_name, "model_load_s": f"{self._model_load_s:.3f}",
                  "backend": self._model_info.get("backend", ""), "device": self._model_info.get("device", ""),
                  "precision": self._model_info.get("precision", ""), "fps": f"{stats.fps():.2f}",
                  "latency_p50_ms": f"{latency['p50']:.3f}", "latency_p99_ms": f"{latency['p99']:.3f}",
                  "tracker_p50_ms": f"{tracker['p50']:.3f}", "node_overhead_p50_ms": f"{overhead['p50']:.3f}",
                  **{k: str(v) for k, v in counts.items()}, "last_rejection": last_rejection}
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def destroy_node(self) -> None:
        self._stop_worker()
        super().destroy_node()


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first SIGINT stops the node; later ones (``ros2 launch`` forwards one more) must not break its cleanup."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Console script ``mlkd_tracker_node``: run the node until SIGINT (ROS arguments after ``--ros-args``)."""
    signal.signal(signal.SIGINT, _interrupt_once)  # before rclpy.init, whose handler hands SIGINT on to it
    rclpy.init(args=argv if argv is not None else sys.argv)
    try:
        node = TrackerNode()
    except ParameterException as exc:
        print(f"mlkd_tracker_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value and not node.start():
            node.get_logger().error("not active: fix the parameters, then configure and activate it "
                                    "(ros2 lifecycle set <node> configure)")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
