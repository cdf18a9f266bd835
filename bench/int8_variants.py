"""int8 quantisation variants on this CPU: search-branch speed-up over ONNX Runtime fp32, and output error.

Quantises one fp32 export several ways (QOperator vs QDQ, per-channel, reduce_range, layers kept
in fp32), times each variant's search graph interleaved with the fp32 one (same run, same load),
and compares outputs with fp32 on held-out night crops. Prints a table and writes JSON.

    python bench/int8_variants.py                      # the bundled MLKD-Track
    python bench/int8_variants.py --model student.pth --json int8_variants.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.report import format_table, latency_stats, write_json_atomic  # noqa: E402
from mlkd_training.export.int8 import (QuantOptions, generated_night_sequences, quantize_int8,  # noqa: E402
                                       record_calibration_feeds)
from mlkd_training.export.onnx_export import export_model  # noqa: E402

VARIANTS = {
    "qoperator u8s8 per-channel reduce-range": QuantOptions(),
    "qoperator u8s8 per-channel": QuantOptions(reduce_range=False),
    "qoperator u8s8 per-tensor reduce-range": QuantOptions(per_channel=False),
    "qoperator u8u8 per-tensor": QuantOptions(per_channel=False, reduce_range=False, weight_type="u8"),
    "qoperator u8s8 pc rr, first+last fp32": QuantOptions(keep_fp32=("first", "last")),
    "qoperator u8s8 pc rr, xcorr fp32": QuantOptions(keep_fp32=("xcorr",)),
    "qdq u8s8 per-channel reduce-range": QuantOptions(quant_format="qdq"),
    "qdq s8s8 per-channel": QuantOptions(quant_format="qdq", activation_type="s8", reduce_range=False),
}


def fp32_export(model: str | None, folder: Path) -> Path:
    """The fp32 search graph to quantise: given, or exported from a checkpoint / the bundled config."""
    if model and model.endswith(".onnx"):
        return Path(model)
    return export_model(model, folder / "model", allow_random_weights=True)["search"]


def conv_profile(path: Path, feed: dict, runs: int, folder: Path) -> list[float]:
    """Milliseconds per convolution, in execution order, from ONNX Runtime's profiler (mean of ``runs``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / f"profile_{path.stem}")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs + 1):
        session.run(None, feed)
    times: dict[str, list[float]] = {}
    for event in json.loads(Path(session.end_profiling()).read_text()):
        if (event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
                and "Conv" in event["args"].get("op_name", "")):
            times.setdefault(event["name"], []).append(event["dur"] / 1e3)
    return [float(np.mean(v[1:])) for v in times.values()]  # the first run allocates: left out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="fp32 .onnx export, checkpoint or model YAML (default: the bundled MLKD-Track)")
    p.add_argument("--calib-clips", type=int, default=16, help="calibration clips (5 frames each)")
    p.add_argument("--held-out-clips", type=int, default=8, help="night clips (5 frames) for the output errors")
    p.add_argument("--repeats", type=int, default=30, help="timed search runs per variant (and as many fp32)")
    p.add_argument("--variants", nargs="*", help=f"subset of: {', '.join(VARIANTS)}")
    p.add_argument("--profile", action="store_true",
                   help="also print ONNX Runtime's time per convolution, fp32 against each variant")
    p.add_argument("--json", metavar="PATH", help="write the table as JSON")
    args = p.parse_args(argv)
    import onnxruntime as ort

    chosen = {k: v for k, v in VARIANTS.items() if not args.variants or k in args.variants}
    with tempfile.TemporaryDirectory(prefix="mlkd-int8-variants-") as tmp:
        folder = Path(tmp)
        fp32 = fp32_export(args.model, folder)
        calibration = record_calibration_feeds(fp32, generated_night_sequences(args.calib_clips, seed=0))
        held_out = record_calibration_feeds(fp32, generated_night_sequences(args.held_out_clips, seed=1)).search_feeds
        options = ort.SessionOptions()
        options.log_severity_level = 3
        fp32_session = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
        reference = [fp32_session.run(None, feed) for feed in held_out]
        rows, results = [], {}
        for name, opts in chosen.items():
            paths = quantize_int8(fp32, calibration, opts, out_prefix=folder / name.replace(" ", "_").replace(",", ""))
            session = ort.InferenceSession(str(paths["search"]), options, providers=["CPUExecutionProvider"])
            feed = held_out[0]
            for s in (fp32_session, session):  # warm-up
                s.run(None, feed)
            times = {"fp32": [], "int8": []}
            for _ in range(args.repeats):  # interleaved: both see the same machine load
                for label, s in (("fp32", fp32_session), ("int8", session)):
                    t0 = time.perf_counter()
                    s.run(None, feed)
                    times[label].append((time.perf_counter() - t0) * 1e3)
            errors = {"cls": [], "loc": [], "rel": []}
            agree = 0
            for f, (ref_cls, ref_loc) in zip(held_out, reference):
                cls, loc = session.run(None, f)
                errors["cls"].append(np.abs(cls - ref_cls).max())
                errors["loc"].append(np.abs(loc - ref_loc).max())
                errors["rel"].append(max(np.abs(cls - ref_cls).max() / np.abs(ref_cls).max(),
                                         np.abs(loc - ref_loc).max() / np.abs(ref_loc).max()))
                fg = lambda c: (c.reshape(2, -1)[1] - c.reshape(2, -1)[0]).argmax()  # noqa: E731
                agree += int(fg(cls) == fg(ref_cls))
            fp32_ms, int8_ms = latency_stats(times["fp32"])["p50"], latency_stats(times["int8"])["p50"]
            if args.profile:
                layers = zip(conv_profile(fp32, feed, 5, folder), conv_profile(paths["search"], feed, 5, folder))
                print(format_table(["conv (execution order)", "fp32 ms", "int8 ms", "speed-up"],
                                   [[i + 1, a, b, a / b] for i, (a, b) in enumerate(layers)]))
            size = sum(Path(p).stat().st_size for p in paths.values())
            results[name] = {"fp32_search_p50_ms": fp32_ms, "int8_search_p50_ms": int8_ms,
                             "speedup": fp32_ms / int8_ms, "max_abs_diff_cls": float(np.max(errors["cls"])),
                             "max_abs_diff_loc": float(np.max(errors["loc"])),
                             "max_relative_diff": float(np.max(errors["rel"])),
                             "best_anchor_agreement": agree / len(held_out), "int8_bytes": size,
                             "options": {**opts.__dict__, "keep_fp32": list(opts.keep_fp32)}}
            rows.append([name, fp32_ms, int8_ms, fp32_ms / int8_ms, results[name]["max_abs_diff_cls"],
                         results[name]["max_abs_diff_loc"], results[name]["max_relative_diff"],
                         agree / len(held_out), size / 1e6])
            print(format_table(["variant", "fp32 ms", "int8 ms", "speed-up", "max|dcls|", "max|dloc|",
                                "rel. err", "same best anchor", "MB"], rows[-1:]), flush=True)
    print(f"\nsearch branch, ONNX Runtime CPU, {platform.processor() or platform.machine()}, "
          f"{args.repeats} interleaved runs each; errors on {len(held_out)} held-out night search crops")
    print(format_table(["variant", "fp32 ms", "int8 ms", "speed-up", "max|dcls|", "max|dloc|",
                        "rel. err", "same best anchor", "MB"], rows, ".3f"))
    print("rel. err: largest output error relative to the largest fp32 output; same best anchor: share of "
          "crops whose highest foreground logit sits on the same anchor (meaningful for trained weights only)")
    if args.json:
        write_json_atomic(args.json, {"machine": platform.processor() or platform.machine(), "variants": results})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
