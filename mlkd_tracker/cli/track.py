"""``mlkd track``: run the tracker over a video, an image folder, a camera or a rosbag2 (field-test replay)."""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mlkd_tracker.errors import InputError, SourceError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", help="video file, folder of frames (natural sort), camera index (e.g. 0) "
                   "or rosbag2")
    p.add_argument("--bag", metavar="BAG", help="replay a rosbag2 instead: .mcap file, .db3 file or bag folder "
                   "(read with rosbags; no ROS install needed)")
    p.add_argument("--topic", help="image topic in the bag (sensor_msgs/Image or CompressedImage; default: its only one)")
    p.add_argument("--init-topic", metavar="TOPIC", help="bag topic with the recorded target, used when --init is "
                   "not given: a selection (PolygonStamped or RegionOfInterest; default: its only one), else the "
                   "node's first box (its Detection2DArray output)")
    p.add_argument("--recorded-output", metavar="TXT", help="write the boxes the node published in the bag for the "
                   "replayed frames (matched by image stamp), in the --output format; nan,nan,nan,nan where it "
                   "published no target")
    p.add_argument("--detections-topic", metavar="TOPIC", help="the node's Detection2DArray topic in the bag, for "
                   "--recorded-output (default: its only one)")
    p.add_argument("--model", default=None,
                   help="model file: .pth/.safetensors (torch), .onnx, .engine, or a models/*.yaml "
                        "(default: the bundled MLKD-Track)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                   help="inference backend; auto picks it from the model file (tensorrt on an .onnx builds or "
                        "reuses a cached engine beside it)")
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda or cuda:N (onnxruntime also: tensorrt[:N], its TensorRT provider)")
    p.add_argument("--precision", default="auto",
                   help="auto (fp16 on CUDA/TensorRT, else what the file holds), fp32, fp16 or int8 (picks the "
                        ".int8 export of an .onnx)")
    init = p.add_mutually_exclusive_group()
    init.add_argument("--init", metavar="X,Y,W,H", help="initial box on the first frame, pixels (a bag can "
                      "supply its recorded selection instead)")
    init.add_argument("--select", action="store_true", help="draw the initial box on the first frame (needs a display)")
    p.add_argument("--output", metavar="TXT", help="results file: one x,y,w,h line per frame, the first is the init box")
    p.add_argument("--save-video", metavar="MP4", help="write the frames with box, score and FPS drawn")
    p.add_argument("--latency", metavar="CSV", help="write per-frame stage times (ms) as CSV (with the header "
                   "stamp of each frame for bags)")
    p.add_argument("--show", action="store_true", help="show the tracking live (needs a display; q quits)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a tracking parameter, e.g. --set penalty_k=0.2 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["penalty_k=0.2", "lost_frames=10"]`` -> typed dict (YAML scalars)."""
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _has_display() -> bool:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.name == "nt"):
        return False
    import cv2
    try:  # headless OpenCV builds have no highgui
        cv2.namedWindow("mlkd")
        cv2.destroyWindow("mlkd")
        return True
    except cv2.error:
        return False


def select_box(frame) -> tuple[float, float, float, float]:
    """Let the user draw the initial box (OpenCV ROI selector)."""
    import cv2

    if not _has_display():
        raise InputError("--select needs a display and an OpenCV build with GUI support; use --init x,y,w,h")
    box = cv2.selectROI("mlkd: select the target, then ENTER", frame, showCrosshair=True)
    cv2.destroyAllWindows()
    if box[2] <= 0 or box[3] <= 0:
        raise InputError("no box selected")
    return tuple(float(v) for v in box)  # type: ignore[return-value]


class VideoOut:
    """An mp4 writer that appears under its final name only when closed."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]):
        import cv2

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.stem + ".partial" + self.path.suffix)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            raise SourceError(f"cannot write video {self.path}")

    def write(self, frame) -> None:
        self.writer.write(frame)

    def close(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)


def _results_text(boxes) -> str:
    """``x,y,w,h`` lines (OTB / pysot result format)."""
    return "".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in boxes)


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from mlkd_tracker.backends import create_tracker
    from mlkd_tracker.draw import draw_result
    from mlkd_tracker.frames import as_bgr_frame, parse_box
    from mlkd_tracker.report import format_table, latency_stats, write_text_atomic
    from mlkd_tracker.sources import BagSource, is_bag, open_source, split_first
    from mlkd_tracker.tracker import Status, TrackResult

    if args.show and not _has_display():
        raise InputError("--show needs a display and an OpenCV build with GUI support")
    if (args.source is None) == (args.bag is None):
        raise InputError("give one input: a video, frame folder, camera index or bag, or --bag FILE")
    bag = args.bag or (args.source if is_bag(Path(args.source)) else None)
    if (args.topic or args.init_topic or args.recorded_output or args.detections_topic) and bag is None:
        raise InputError("--topic, --init-topic, --recorded-output and --detections-topic need a bag (--bag FILE)")
    init_box = parse_box(args.init) if args.init else None
    if init_box is None and not args.select and bag is None:
        raise InputError("give the initial box with --init x,y,w,h or draw it with --select")
    tracker, loaded = create_tracker(args.model, args.device, args.precision, parse_overrides(args.overrides),
                                     backend=args.backend, log=None if args.quiet else print)
    source = BagSource(bag, args.topic) if bag else open_source(args.source)
    recorded = source.recorded_boxes(args.detections_topic) if args.recorded_output else None
    if init_box is None and not args.select and isinstance(source, BagSource):
        init_box, kind, when = source.recorded_init(args.init_topic)
        source.start_at_recorded_init(kind, when)
        print(f"target from the bag: {','.join(f'{v:g}' for v in init_box)} "
              f"({'on the frame stamped' if kind == 'stamp' else 'on the newest frame at'} {when / 1e9:.3f} s)")
    first, frames = split_first(source)
    if init_box is None:
        init_box = select_box(first)
    tracker.init(first, init_box)

    boxes = [tuple(float(v) for v in init_box)]
    times, latencies = [], []
    video = VideoOut(args.save_video, source.fps or 30.0, first.shape[1::-1]) if args.save_video else None
    if video:
        video.write(draw_result(first.copy(), TrackResult(boxes[0], 1.0, Status.TRACKING)))
    total = None if source.length is None else source.length - 1
    if args.max_frames is not None:
        total = args.max_frames if total is None else min(total, args.max_frames)
    bar = tqdm(total=total, unit="frame", disable=args.quiet, desc="tracking")
    stopped_early = False
    try:
        for frame in frames:
            if args.max_frames is not None and len(latencies) >= args.max_frames:
                break
            t0 = time.perf_counter()
            result = tracker.update(frame)
            latencies.append((time.perf_counter() - t0) * 1e3)
            boxes.append(result.box_xywh)
            times.append(result.times)
            fps = 1e3 / latencies[-1]
            bar.update(1)
            bar.set_postfix(score=f"{result.score:.2f}", status=result.status.value, fps=f"{fps:.1f}")
            if video or args.show:
                shown = draw_result(as_bgr_frame(frame).copy(), result, fps)
                if video:
                    video.write(shown)
                if args.show:
                    cv2.imshow("mlkd track", shown)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
    except KeyboardInterrupt:
        stopped_early = True
    finally:
        bar.close()
        source.close()
        if video:
            video.close()
        if args.show:
            cv2.destroyAllWindows()
        if args.output:
            write_text_atomic(args.output, _results_text(boxes))
        if recorded is not None:
            nan = (float("nan"),) * 4
            replayed = source.stamps[:len(boxes)]
            write_text_atomic(args.recorded_output, _results_text(recorded.get(s) or nan for s in replayed))
        if args.latency:
            stamps = getattr(source, "stamps", None)
            rows = ["frame,crop_ms,network_ms,post_ms,update_ms" + (",stamp_ns" if stamps else "")] + [
                f"{i + 1},{t.crop_ms:.4f},{t.network_ms:.4f},{t.post_ms:.4f},{lat:.4f}"
                + (f",{stamps[i + 1]}" if stamps else "")
                for i, (t, lat) in enumerate(zip(times, latencies))]
            write_text_atomic(args.latency, "\n".join(rows) + "\n")

    stats = latency_stats(latencies)
    fps_mean = 1e3 / stats["mean"] if latencies else float("nan")
    print(f"model: {loaded.name} [{loaded.info.get('backend')}, {loaded.info.get('device')}, "
          f"{loaded.info.get('precision')}]  source: {source.name}")
    print(format_table(["frames", "mean FPS", "p50 ms", "p90 ms", "p99 ms"],
                       [[len(latencies) + 1, fps_mean, stats["p50"], stats["p90"], stats["p99"]]]))
    if recorded is not None:
        replayed = source.stamps[:len(boxes)]
        print(f"recorded node output: a box on {sum(recorded.get(s) is not None for s in replayed)} of {len(replayed)} "
              f"replayed frames, {sum(s not in recorded for s in replayed)} frames without a recorded array")
    for label, path in (("results", args.output), ("recorded boxes", args.recorded_output), ("video", args.save_video),
                        ("latency", args.latency)):
        if path:
            print(f"{label}: {path}")
    if stopped_early:
        print("interrupted: outputs hold the frames tracked so far")
        return 130
    return 0
