"""``mlkd enhance``: brighten an image, a folder of images, a video or a camera with DarkLighter."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mlkd_tracker.errors import InputError, SourceError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="image file, folder of images (natural sort), video file or camera index")
    p.add_argument("--weights", required=True,
                   help="DarkLighter weights: the official .pth, a train-enhancer checkpoint, or a teacher checkpoint")
    p.add_argument("--output", default=None,
                   help="output image / folder / video; without it, beside the input with an _enhanced suffix "
                        "(a camera is then only shown)")
    p.add_argument("--side-by-side", action="store_true",
                   help="preview: write (and show) the input and the enhanced image side by side")
    p.add_argument("--show", action="store_true", help="show the result live (needs a display; q quits)")
    p.add_argument("--as-teacher", action="store_true",
                   help="feed BGR channels as they are, as the MLKD teacher does; otherwise RGB, as the official "
                        "weights were trained (weights trained with --channel-order bgr are always fed BGR)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32 or fp16")
    p.add_argument("--tile", type=int, default=512,
                   help="enhance in overlapping tiles of at most this side (px): same result, as fast as one pass "
                        "on a CPU, bounded memory (512: 0.3 GB at 1280x720, 0.5 GB at 1920x1080); 0 = the whole "
                        "frame in one pass (about 1.4 GB per megapixel)")
    p.add_argument("--max-frames", type=int, default=None, help="stop a video or camera after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def side_by_side(original: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """The input and the enhanced image next to each other, labelled."""
    import cv2

    panel = np.concatenate([original, enhanced], axis=1)
    scale = max(original.shape[0] / 720.0, 0.4)
    if original.shape[1] < 160 * scale:  # too small to label legibly
        return panel
    for label, x in (("input", 8), ("DarkLighter", original.shape[1] + 8)):
        org = (x, int(28 * scale))
        cv2.putText(panel, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def _default_output(source: Path, kind: str) -> Path:
    if kind == "folder":
        return source.with_name(source.name + "_enhanced")
    if kind == "video":
        return source.with_name(source.stem + "_enhanced.mp4")
    return source.with_name(source.stem + "_enhanced" + source.suffix)


def _write_image(path: Path, image: np.ndarray) -> None:
    import cv2

    from mlkd_tracker.report import write_bytes_atomic

    ok, data = cv2.imencode(path.suffix, image)
    if not ok:
        raise SourceError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())


def run(args: argparse.Namespace) -> int:
    import cv2
    from tqdm import tqdm

    from mlkd_tracker.backends.torch_backend import resolve_device
    from mlkd_tracker.cli.track import VideoOut, _has_display
    from mlkd_tracker.frames import as_bgr_frame
    from mlkd_tracker.nets.darklighter import enhance_bgr_image, load_darklighter
    from mlkd_tracker.report import format_table, latency_stats
    from mlkd_tracker.sources import IMAGE_SUFFIXES, open_source, read_image

    if args.show and not _has_display():
        raise InputError("--show needs a display and an OpenCV build with GUI support")
    if args.tile < 0:
        raise InputError(f"--tile must be >= 0, got {args.tile}")
    source = Path(args.source)
    camera = args.source.isdigit() and not source.exists()
    if not camera and not source.exists():
        raise SourceError(f"input not found: {source} (expected an image, an image folder, a video or a camera index)")
    kind = ("camera" if camera else "folder" if source.is_dir()
            else "image" if source.suffix.lower() in IMAGE_SUFFIXES else "video")
    if camera and not (args.output or args.show):
        raise InputError("a camera needs --output VIDEO or --show")
    output = Path(args.output) if args.output else (None if camera else _default_output(source, kind))
    if output is not None and not camera and output.resolve() == source.resolve():
        raise InputError(f"--output {output} would overwrite the input")
    if kind == "image" and not cv2.haveImageWriter(str(output)):
        raise InputError(f"cannot encode an image as {output.suffix!r} for {output}; use .png or .jpg")

    device, dtype = resolve_device(args.device, args.precision)
    model, meta = load_darklighter(args.weights, args.tile or None)
    model = model.to(device, dtype)
    feed_bgr = args.as_teacher or meta.get("channel_order") == "bgr"  # weights trained on BGR say so

    def process(frame: np.ndarray) -> tuple[np.ndarray, float]:
        frame = as_bgr_frame(frame)
        t0 = time.perf_counter()
        enhanced = enhance_bgr_image(model, frame, as_teacher=feed_bgr)
        ms = (time.perf_counter() - t0) * 1e3
        return (side_by_side(frame, enhanced) if args.side_by_side else enhanced), ms

    times: list[float] = []
    if kind == "image":
        result, ms = process(read_image(source))
        times.append(ms)
        _write_image(output, result)
        if args.show:
            cv2.imshow("mlkd enhance", result)
            cv2.waitKey(0)
    else:
        stream = open_source(source if not camera else args.source)
        names = [p.name for p in stream.paths] if kind == "folder" else None
        total = stream.length if args.max_frames is None else min(stream.length or args.max_frames, args.max_frames)
        video = None
        bar = tqdm(total=total, unit="frame" if names is None else "image", disable=args.quiet, desc="enhancing")
        try:
            for index, frame in enumerate(stream):
                if args.max_frames is not None and index >= args.max_frames:
                    break
                result, ms = process(frame)
                times.append(ms)
                if names is not None:
                    _write_image(output / names[index], result)
                elif output is not None:
                    if video is None:
                        video = VideoOut(str(output), stream.fps or 30.0, result.shape[1::-1])
                    video.write(result)
                bar.update(1)
                bar.set_postfix(ms=f"{ms:.0f}")
                if args.show:
                    cv2.imshow("mlkd enhance", result)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
        finally:
            bar.close()
            stream.close()
            if video is not None:
                video.close()
    if args.show:
        cv2.destroyAllWindows()

    stats = latency_stats(times)
    print(f"DarkLighter [{device.type}, {'fp16' if dtype.itemsize == 2 else 'fp32'}, "
          f"{'BGR in' if feed_bgr else 'RGB in'}]  source: {source if not camera else 'camera ' + args.source}")
    print(format_table(["images" if kind in ("image", "folder") else "frames", "mean ms", "p50 ms", "p90 ms"],
                       [[len(times), stats["mean"], stats["p50"], stats["p90"]]]))
    if output is not None:
        print(f"output: {output}")
    return 0
