"""Benchmark of the ROS 2 tracker node on loopback: start-up, node overhead and latency under a 100 Hz flood.

    python bench/ros_node.py [--model FILE] [--launch-runs 3] [--frames 100] [--flood-seconds 5] [--json out.json]

1. Conversion: message -> BGR frame for each input encoding at the frame size (convert.py only).
2. Launch to first box: ``ros2 launch mlkd_tracker track.launch.py`` started as a subprocess while a
   camera publishes 1280x720 frames at 30 Hz; from process start to the node subscribed, to its first
   ``Detection2DArray`` (no target yet), and, with the target selected as soon as it answered, to the
   first array holding the box; the model load time (from /diagnostics) is reported apart.
3. Overhead: one 1280x720 bgr8 image at a time; for each frame, the node's own time (callback ->
   outputs published) and the time on the wire (publish -> array received by a peer) minus the
   tracker's ``update`` time for that frame.
4. Flood: a separate publisher process (like a camera driver) sends images at 100 Hz for a few
   seconds; box latency (array received - image stamp) p50/p99 against the tracker's per-frame time
   measured in the same run, frames tracked and dropped.

Targets: overhead < 2 ms (issues 7, 13); flood p99 latency < 2x the tracker's per-frame time (issue 7);
launch to first box reported with the model load apart (issue 13). For 3 and 4 the node and the
receiving peer run in this process (two executors); everything runs on a random ROS domain limited to
localhost. Default model: the bundled MLKD-Track.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="model file (default: the bundled MLKD-Track)")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    p.add_argument("--size", default="1280x720", help="frame size WxH")
    p.add_argument("--launch-runs", type=int, default=3, help="ros2 launch starts to time (0: skip)")
    p.add_argument("--frames", type=int, default=100, help="frames for the overhead measurement")
    p.add_argument("--flood-hz", type=float, default=100.0, help="flood publishing rate")
    p.add_argument("--flood-seconds", type=float, default=5.0, help="flood duration")
    p.add_argument("--input-reliability", default="reliable", choices=["reliable", "best_effort"],
                   help="QoS of the node's image subscription (the node's default is best_effort)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--publish-flood", metavar="TOPIC", help=argparse.SUPPRESS)  # the child publisher process
    return p.parse_args(argv)


def publish_flood(args: argparse.Namespace) -> int:
    """Child process: publish the bench frames on ``args.publish_flood`` at ``flood_hz``, stamped when sent."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from mlkd_tracker.cli.bench import bench_frames
    from mlkd_tracker.ros.convert import bgr_to_bytes

    w, h = (int(v) for v in args.size.lower().split("x"))
    frames, _ = bench_frames((w, h), 64)
    messages = [Image(height=h, width=w, encoding="bgr8", step=w * 3, data=bgr_to_bytes(f)) for f in frames]
    rclpy.init()
    node = Node("bench_camera")
    pub = node.create_publisher(Image, args.publish_flood, 10)
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # let discovery settle both ways
    total = int(args.flood_seconds * args.flood_hz)
    next_t = time.monotonic()
    for i in range(total):
        msg = messages[(32 + i) % len(messages)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        msg.header.frame_id = "camera"
        pub.publish(msg)
        next_t += 1.0 / args.flood_hz
        time.sleep(max(0.0, next_t - time.monotonic()))
    print(total, flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def conversion_times(frame: np.ndarray, repeats: int = 30) -> list[list]:
    """ms to turn each kind of image message into a BGR frame (median of ``repeats``)."""
    from types import SimpleNamespace

    from mlkd_tracker.ros.convert import compressed_to_bgr, image_to_bgr

    h, w = frame.shape[:2]
    yuyv = np.zeros((h, w, 2), np.uint8)
    yuyv[:, :, 0] = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    yuyv[:, :, 1] = 128
    cases = {
        "bgr8": SimpleNamespace(encoding="bgr8", height=h, width=w, step=w * 3, data=frame.tobytes()),
        "rgb8": SimpleNamespace(encoding="rgb8", height=h, width=w, step=w * 3, data=frame[:, :, ::-1].tobytes()),
        "mono8": SimpleNamespace(encoding="mono8", height=h, width=w, step=w, data=yuyv[:, :, 0].tobytes()),
        "yuv422_yuy2": SimpleNamespace(encoding="yuv422_yuy2", height=h, width=w, step=w * 2, data=yuyv.tobytes()),
        "jpeg (compressed)": SimpleNamespace(format="jpeg", data=cv2.imencode(".jpg", frame)[1].tobytes()),
    }
    rows = []
    for name, msg in cases.items():
        convert = compressed_to_bgr if hasattr(msg, "format") else image_to_bgr
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            convert(msg)
            times.append((time.perf_counter() - t0) * 1e3)
        rows.append([name, float(np.median(times))])
    return rows


def launch_to_first_box(args: argparse.Namespace, domain_id: int, frame: np.ndarray, box) -> list[dict]:
    """Seconds from starting ``ros2 launch`` to the node's milestones, one dict per run (module docstring, 2)."""
    import shutil
    import signal
    import subprocess
    import tempfile

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, RegionOfInterest
    from vision_msgs.msg import Detection2DArray

    from mlkd_tracker.ros.convert import bgr_to_bytes

    ros2 = shutil.which("ros2", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if ros2 is None:
        print("launch to first box: skipped, no ros2 command (ros2cli + ros2launch)")
        return []
    h, w = frame.shape[:2]
    image = Image(height=h, width=w, encoding="bgr8", step=w * 3, data=bgr_to_bytes(frame))
    x, y, bw, bh = (int(v) for v in box)
    runs = []
    for run in range(args.launch_runs):
        ns = f"/bench_launch_{run}"
        events: dict[str, float] = {}
        load_s: list[float] = []
        peer = rclpy.create_node(f"bench_launch_peer_{run}", namespace=ns)

        def on_array(msg, events=events) -> None:
            now = time.perf_counter()
            events.setdefault("first_array", now)
            if msg.detections:
                events.setdefault("first_box", now)

        def on_diagnostics(msg, ns=ns, load_s=load_s) -> None:
            load_s.extend(float(kv.value) for st in msg.status if st.name.startswith(f"{ns}/mlkd_tracker:")
                          for kv in st.values if kv.key == "model_load_s")
        peer.create_subscription(Detection2DArray, "detections", on_array, 10)
        peer.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        camera = peer.create_publisher(Image, "camera", 10)
        roi = peer.create_publisher(RegionOfInterest, "init_roi", 10)
        executor = SingleThreadedExecutor()
        executor.add_node(peer)
        threading.Thread(target=executor.spin, daemon=True).start()
        with tempfile.TemporaryDirectory() as tmp:
            params = Path(tmp) / "params.yaml"
            params.write_text(f"/**:\n  ros__parameters:\n    device: {args.device}\n    diagnostics_period: 0.1\n"
                              f"    qos_overrides.{ns}/camera.subscription.reliability: {args.input_reliability}\n")
            log = Path(tmp) / "launch.log"
            command = [ros2, "launch", "mlkd_tracker", "track.launch.py", "image_topic:=camera", f"namespace:={ns}",
                       f"params_file:={params}"] + ([f"model:={args.model}"] if args.model else [])
            with open(log, "w") as out:
                t0 = time.perf_counter()
                proc = subprocess.Popen(command, env={**os.environ, "ROS_DOMAIN_ID": str(domain_id)}, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                next_frame, deadline = t0, t0 + 120
                while "first_box" not in events and time.perf_counter() < deadline and proc.poll() is None:
                    now = time.perf_counter()
                    if "subscribed" not in events and camera.get_subscription_count() > 0:
                        events["subscribed"] = now
                    if now >= next_frame:  # a 30 Hz camera, running before the node starts
                        image.header.stamp.sec, image.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
                        camera.publish(image)
                        next_frame += 1 / 30
                    if "first_array" in events and "selected" not in events:  # the ground station clicks
                        roi.publish(RegionOfInterest(x_offset=x, y_offset=y, width=bw, height=bh))
                        events["selected"] = now
                    time.sleep(0.001)
                limit = time.perf_counter() + 3
                while not load_s and time.perf_counter() < limit:
                    time.sleep(0.01)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)
                    proc.wait(30)
            executor.shutdown()
            peer.destroy_node()
            if "first_box" not in events:
                print(f"launch run {run}: no box; ros2 launch output:\n{log.read_text()[-3000:]}", file=sys.stderr)
                continue
        runs.append({"subscribed_s": events["subscribed"] - t0, "model_load_s": load_s[-1] if load_s else float("nan"),
                     "first_array_s": events["first_array"] - t0, "first_box_s": events["first_box"] - t0})
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if args.publish_flood:
        return publish_flood(args)
    import subprocess
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import Image, RegionOfInterest
    from tqdm import tqdm
    from vision_msgs.msg import Detection2DArray

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.cli.bench import bench_frames
    from mlkd_tracker.report import format_table, latency_stats, write_json_atomic
    from mlkd_tracker.ros.convert import bgr_to_bytes
    from mlkd_tracker.ros.node import TrackerNode

    w, h = (int(v) for v in args.size.lower().split("x"))
    frames, first_box = bench_frames((w, h), 64)  # the same night sequence as mlkd bench
    results: dict = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                     "load_average_at_start": os.getloadavg(),
                     "frame_size": [w, h], "input_reliability": args.input_reliability}

    conversion = conversion_times(frames[0])
    print(f"\nmessage -> BGR frame at {w}x{h}")
    print(format_table(["input", "ms (median)"], conversion, ".3f"))
    results["conversion_ms"] = {name: ms for name, ms in conversion}

    domain_id = random.randint(1, 100)
    rclpy.init(domain_id=domain_id)

    if args.launch_runs:
        runs = launch_to_first_box(args, domain_id, frames[0], first_box)
        if runs:
            keys = ("subscribed_s", "model_load_s", "first_array_s", "first_box_s")
            median = {k: float(np.median([r[k] for r in runs])) for k in keys}
            print(f"\nros2 launch mlkd_tracker track.launch.py -> first Detection2DArray, s from process start "
                  f"({len(runs)} runs, camera {w}x{h} at 30 Hz, target selected once the node answered)")
            print(format_table(["run", "node subscribed", "of which model load", "first array (no target)",
                                "first box"], [[str(i + 1), *(r[k] for k in keys)] for i, r in enumerate(runs)]
                               + [["median", *(median[k] for k in keys)]], ".2f"))
            results["launch_s"] = {"runs": runs, "median": median}

    def factory(model, device, precision, overrides, backend="auto"):
        return create_tracker(model, device, precision, overrides, allow_random_weights=True, backend=backend)

    node = TrackerNode(tracker_factory=factory, parameter_overrides=[
        rclpy.parameter.Parameter("model", value=args.model or ""),
        rclpy.parameter.Parameter("device", value=args.device),
        rclpy.parameter.Parameter("frame_buffer_size", value=5),
        # 2.7 MB images between processes: best effort loses most of them on a default loopback setup
        rclpy.parameter.Parameter("qos_overrides./image.subscription.reliability", value=args.input_reliability)])
    if not node.start():
        print(f"node did not start: {node._last_error}", file=sys.stderr)
        return 2
    peer = Node("bench_peer")
    # (perf_counter at receipt, stamp ns, holds the target) of every Detection2DArray
    boxes: list[tuple[float, int, bool]] = []
    peer.create_subscription(Detection2DArray, "detections", lambda m: boxes.append(
        (time.perf_counter(), m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, bool(m.detections))), 100)
    image_pub = peer.create_publisher(Image, "image", 10)
    roi_pub = peer.create_publisher(RegionOfInterest, "init_roi", 10)
    executors = []
    for n in (node, peer):
        ex = SingleThreadedExecutor()
        ex.add_node(n)
        threading.Thread(target=ex.spin, daemon=True).start()
        executors.append(ex)
    messages = [Image(height=h, width=w, encoding="bgr8", step=w * 3, data=bgr_to_bytes(f)) for f in frames]

    def publish(i: int, stamp_ns: int) -> None:
        msg = messages[i % len(messages)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.header.frame_id = "camera"
        image_pub.publish(msg)

    def wait(predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.0005)
        return predicate()

    try:
        wait(lambda: image_pub.get_subscription_count() > 0 and roi_pub.get_subscription_count() > 0)
        while node.stats.received == 0:
            publish(0, 1)
            time.sleep(0.1)
        x, y, bw, bh = (int(v) for v in first_box)
        roi_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=bw, height=bh))
        if not wait(lambda: any(b[2] for b in boxes)):
            print("no box from the node", file=sys.stderr)
            return 2

        # 3. overhead: one frame in flight at a time
        wire, lost = [], 0
        node.stats.timings.clear()
        for i in tqdm(range(1, args.frames + 1), desc="overhead", unit="frame"):
            t_pub = time.perf_counter()
            publish(i, 2 * 10**9 + i)
            if wait(lambda: boxes[-1][1] == 2 * 10**9 + i, 2.0):
                wire.append((boxes[-1][0] - t_pub) * 1e3)
            else:
                lost += 1
            time.sleep(0.005)
        timings = list(node.stats.timings)
        tracker_ms = [t[1] for t in timings]
        in_node = latency_stats([t[0] - t[1] for t in timings])
        on_wire = latency_stats([a - t[1] for a, t in zip(wire, timings)]) if len(wire) == len(timings) else None
        tracker = latency_stats(tracker_ms)
        print(f"\nnode overhead at {w}x{h} bgr8 ({len(timings)} frames, {lost} lost on the way; "
              f"model {node._model_name}, {node._model_info.get('backend')} {node._model_info.get('device')})")
        rows = [["tracker.update", *(tracker[k] for k in ("mean", "p50", "p99"))],
                ["node: callback -> outputs, minus update", *(in_node[k] for k in ("mean", "p50", "p99"))]]
        if on_wire:
            rows.append(["wire: publish -> box received, minus update", *(on_wire[k] for k in ("mean", "p50", "p99"))])
        print(format_table(["ms", "mean", "p50", "p99"], rows, ".3f"))
        print(f"target: node overhead < 2 ms -> p50 {in_node['p50']:.3f} ms: "
              f"{'met' if in_node['p50'] < 2.0 else 'NOT met'}")
        results["overhead_ms"] = {"tracker_update": tracker, "node": in_node, "wire": on_wire,
                                  "frames": len(timings), "lost": lost}

        # 4. flood, from a camera-like publisher process
        stats = node.stats
        node.stats.timings.clear()
        base = (stats.received, stats.processed, stats.dropped, len(boxes))
        wall0 = time.time_ns() - time.perf_counter_ns()  # perf_counter -> wall clock
        print(f"\nflood: {args.flood_hz:.0f} Hz for {args.flood_seconds:.1f} s from a publisher process ...")
        child = subprocess.run(
            [sys.executable, __file__, "--publish-flood", image_pub.topic_name, "--size", args.size,
             "--flood-hz", str(args.flood_hz), "--flood-seconds", str(args.flood_seconds)],
            env={**os.environ, "ROS_DOMAIN_ID": str(domain_id)}, capture_output=True, text=True, timeout=120)
        if child.returncode != 0:
            print(f"flood publisher failed: {child.stderr[-2000:]}", file=sys.stderr)
            return 2
        total = int(child.stdout.split()[-1])
        time.sleep(1.0)
        received, tracked, dropped = (stats.received - base[0], stats.processed - base[1], stats.dropped - base[2])
        flood_timings = list(node.stats.timings)
        tracker_ms = latency_stats([t[1] for t in flood_timings])
        in_node = latency_stats([t[0] for t in flood_timings])
        end_to_end = latency_stats([(t * 1e9 + wall0 - stamp) / 1e6 for t, stamp, _ in boxes[base[3]:]])
        print(f"\n{args.flood_hz:.0f} Hz flood for {args.flood_seconds:.1f} s at {w}x{h} bgr8 "
              f"({args.input_reliability} input): sent {total}, received {received}, tracked {tracked}, "
              f"dropped {dropped}")
        rows = [[name, st["p50"], st["p99"], st["p99"] / tracker_ms["p50"], st["p99"] / tracker_ms["p99"]] for name, st in (
            ("tracker.update", tracker_ms),
            ("box latency in the node: image callback -> box published", in_node),
            ("end to end: image stamp -> box received (+ image transport)", end_to_end))]
        print(format_table(["ms", "p50", "p99", "p99 / tracker p50", "p99 / tracker p99"], rows, ".2f"))
        ratio = in_node["p99"] / tracker_ms["p50"]
        # each box against the tracker's time on its own frame: 2x or more would mean it waited a whole frame
        per_frame = latency_stats([t[0] / t[1] for t in flood_timings])
        print(f"target: box latency p99 < 2x tracker time -> {ratio:.2f}x the tracker's p50 in the node "
              f"({'met' if ratio < 2.0 else 'NOT met'}), {end_to_end['p99'] / tracker_ms['p50']:.2f}x end to end; "
              f"per box, latency / its own frame's update: p50 {per_frame['p50']:.2f}x, p99 {per_frame['p99']:.2f}x "
              f"({'met' if per_frame['p99'] < 2.0 else 'NOT met'})")
        results["flood"] = {"hz": args.flood_hz, "seconds": args.flood_seconds, "sent": total, "received": received,
                            "tracked": tracked, "dropped": dropped, "tracker_ms": tracker_ms,
                            "node_latency_ms": in_node, "end_to_end_latency_ms": end_to_end,
                            "node_p99_over_tracker_p50": ratio, "node_latency_over_own_update": per_frame}
    finally:
        for ex in executors:
            ex.shutdown()
        node.destroy_node()
        peer.destroy_node()
        rclpy.try_shutdown()
    results["load_average_at_end"] = os.getloadavg()
    print(f"machine load (1, 5, 15 min averages): {results['load_average_at_start']} at the start, "
          f"{results['load_average_at_end']} at the end, on {os.cpu_count()} CPUs")
    if args.json:
        write_json_atomic(args.json, results)
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
