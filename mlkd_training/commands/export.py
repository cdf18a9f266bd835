"""``mlkd export``: a checkpoint as ONNX graphs, an int8 CPU model and TensorRT engines."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Export a SiamRPN or NanoTrack checkpoint (student or teacher) for deployment. --onnx writes PREFIX.template.onnx "
        "(crop -> correlation kernels, run once per target) and PREFIX.search.onnx (crop + kernels -> cls, loc, "
        "run per frame) with the tracking values inside; --int8 adds PREFIX.int8.*.onnx for CPUs; --engine "
        "builds TensorRT engines beside the ONNX. Any of these files then runs with 'mlkd track --model'.")
    p.add_argument("model", help="checkpoint (.pth / .safetensors), model YAML naming its weights, or an existing "
                                 "fp32 export (.onnx) for --int8 / --engine")
    p.add_argument("--onnx", action="store_true", help="write the fp32 ONNX pair (the default when nothing is asked)")
    p.add_argument("--int8", action="store_true", help="also write an int8 ONNX pair (static quantisation)")
    p.add_argument("--engine", action="store_true", help="also build TensorRT engines (needs an NVIDIA GPU)")
    p.add_argument("-o", "--output", metavar="PREFIX", help="output prefix (default: the model path without suffix)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a tracking value stored in the export, e.g. --set penalty_k=0.2 (repeatable)")
    q = p.add_argument_group("int8")
    q.add_argument("--calib", metavar="SOURCE",
                   help="calibration frames: a frames folder or a video (default: generated night clips)")
    q.add_argument("--calib-clips", type=int, default=16, help="calibration clips")
    q.add_argument("--calib-frames", type=int, default=5, help="frames per clip (first = template)")
    q.add_argument("--quant-format", choices=["qoperator", "qdq"], default="qoperator", help="int8 graph format")
    q.add_argument("--per-tensor", action="store_true", help="one weight scale per layer instead of per channel")
    q.add_argument("--full-range", action="store_true",
                   help="8-bit weights (default 7-bit, which avoids u8s8 saturation on AVX2 CPUs without VNNI)")
    q.add_argument("--keep-fp32", nargs="*", default=[], choices=["first", "last", "xcorr"],
                   help="layer groups left in fp32")
    t = p.add_argument_group("TensorRT")
    t.add_argument("--precision", nargs="+", default=["fp16"], choices=["fp16", "fp32"], help="engine precisions")
    t.add_argument("--device", default="cuda:0", help="CUDA device the engine is built for")
    t.add_argument("--via", choices=["onnx", "torch2trt"], default="onnx",
                   help="conversion path: TensorRT's ONNX parser, or torch2trt from the checkpoint")


def _sequences(args: argparse.Namespace):
    from mlkd_training.export.int8 import generated_night_sequences, source_sequences

    if args.calib:
        return source_sequences(args.calib, args.calib_clips, args.calib_frames)
    return generated_night_sequences(args.calib_clips, args.calib_frames)


def run(args: argparse.Namespace) -> int:
    from mlkd_tracker.backends.exported import ROLES, find_graph_pair, onnx_prefix, read_onnx_meta
    from mlkd_tracker.cli.track import parse_overrides
    from mlkd_tracker.errors import InputError
    from mlkd_tracker.report import format_table

    model_path = Path(args.model)
    is_onnx = model_path.suffix.lower() == ".onnx"
    if is_onnx and (args.onnx or args.overrides):
        raise InputError(f"{model_path} is already ONNX: --onnx and --set need the checkpoint")
    if is_onnx and not (args.int8 or args.engine):
        raise InputError(f"{model_path} is already an ONNX export: ask for --int8 and/or --engine")
    if args.via == "torch2trt" and is_onnx:
        raise InputError("--via torch2trt converts from the checkpoint, not from an .onnx")
    written: list[tuple[str, str, Path]] = []
    model = None
    if is_onnx:
        fp32 = find_graph_pair(model_path)["search"]
        meta, _ = read_onnx_meta(fp32)
        if meta.precision != "fp32":
            raise InputError(f"{fp32} is an {meta.precision} export; --int8 and --engine start from the fp32 one")
    else:
        from mlkd_tracker.backends import load_model
        from mlkd_training.export.onnx_export import export_onnx, parity

        loaded = load_model(model_path, "cpu", "fp32", backend="torch")
        tracking = loaded.config.replace(**parse_overrides(args.overrides)) if args.overrides else loaded.config
        model = loaded.backend.model
        prefix = Path(args.output) if args.output else model_path.with_suffix("")
        paths = export_onnx(model, prefix, tracking, loaded.name, args.opset, log=print)
        diffs = parity(model, paths, tracking)
        print(format_table(["ONNX Runtime vs torch", "kernel_cls", "kernel_loc", "cls", "loc"],
                           [["max abs diff", diffs["kernel_cls"], diffs["kernel_loc"], diffs["cls"], diffs["loc"]]],
                           ".2e"))
        if max(diffs["cls"], diffs["loc"]) >= 1e-3:
            print("warning: ONNX Runtime and torch differ by >= 1e-3; check the export")
        written += [("onnx", "fp32", paths[role]) for role in ROLES]
        fp32 = paths["search"]
    if args.int8:
        from mlkd_training.export.int8 import QuantOptions, quantize_int8, record_calibration_feeds

        options = QuantOptions(quant_format=args.quant_format, per_channel=not args.per_tensor,
                               reduce_range=not args.full_range, keep_fp32=tuple(args.keep_fp32))
        calibration = record_calibration_feeds(fp32, _sequences(args))
        paths = quantize_int8(fp32, calibration, options, log=print)
        written += [("onnx", "int8", paths[role]) for role in ROLES]
    if args.engine:
        from mlkd_tracker.backends import tensorrt_backend as trt_backend

        device = trt_backend.current_device(trt_backend.device_index(args.device))
        for precision in args.precision:
            if args.via == "torch2trt":
                meta, _ = read_onnx_meta(fp32)
                path = trt_backend.write_torch2trt_engine(model, meta, onnx_prefix(fp32), precision, device, print)
            else:
                path = trt_backend.ensure_engine(fp32, precision, device, trt_backend.build_serialized_engine, print)
            written.append(("tensorrt", precision, path))
    print(format_table(["file", "format", "precision", "MB"],
                       [[str(p), kind, precision, p.stat().st_size / 1e6] for kind, precision, p in written]))
    return 0
