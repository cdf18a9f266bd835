"""Output tolerances of the deployment paths against the torch fp32 model, on night crops.

Rows: ONNX Runtime fp32, ONNX Runtime int8, and fp16 arithmetic. No GPU runs here, so fp16 is
emulated on the CPU with torch half precision (weights and activations rounded to fp16, as an
fp16 TensorRT engine stores them); the GPU test in test/test_tensorrt_backend.py checks real
engines. Crops are the ones the fp32 tracker sees on generated night clips. Table + JSON.

    python bench/tolerances.py --model student.pth --json tolerances.json
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.backends import load_model  # noqa: E402
from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.export.int8 import generated_night_sequences, quantize_int8, record_calibration_feeds  # noqa: E402
from mlkd_training.export.onnx_export import export_onnx  # noqa: E402


def error_stats(reference: list, outputs: list) -> dict[str, float]:
    """Max / p99 absolute error of cls and loc, error relative to the output range, same-best-anchor share."""
    def best(cls):
        c = cls.reshape(2, -1)
        return int((c[1] - c[0]).argmax())  # highest foreground logit

    diffs = np.concatenate([np.abs(o - r).ravel() for ref, out in zip(reference, outputs) for r, o in zip(ref, out)])
    return {"max_abs_cls": float(max(np.abs(o[0] - r[0]).max() for r, o in zip(reference, outputs))),
            "max_abs_loc": float(max(np.abs(o[1] - r[1]).max() for r, o in zip(reference, outputs))),
            "p99_abs": float(np.percentile(diffs, 99)),
            "max_relative": float(max(max(np.abs(o[k] - r[k]).max() / np.abs(r[k]).max() for k in (0, 1))
                                      for r, o in zip(reference, outputs))),
            "best_anchor_agreement": float(np.mean([best(o[0]) == best(r[0]) for r, o in zip(reference, outputs)]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint or model YAML (default: the bundled MLKD-Track)")
    p.add_argument("--clips", type=int, default=4, help="generated night clips (3 frames: 2 search crops each)")
    p.add_argument("--calib-clips", type=int, default=16, help="int8 calibration clips (another seed)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = p.parse_args(argv)
    import torch

    loaded = load_model(args.model, "cpu", "fp32", allow_random_weights=True, backend="torch")
    model = loaded.backend.model.eval()  # as the torch backend runs it (BatchNorm folded)
    with tempfile.TemporaryDirectory(prefix="mlkd-tolerances-") as tmp:
        paths = export_onnx(model, Path(tmp) / "model", loaded.config, loaded.name)
        crops = record_calibration_feeds(paths["search"], generated_night_sequences(args.clips, 3, seed=5), quiet=True)
        int8 = quantize_int8(paths["search"], record_calibration_feeds(
            paths["search"], generated_night_sequences(args.calib_clips, seed=10_000), quiet=True),
            out_prefix=Path(tmp) / "model.int8")
        sessions = {"onnxruntime fp32": load_model(paths["search"], "cpu").backend,
                    "onnxruntime int8": load_model(int8["search"], "cpu").backend}
        pairs = [(crops.template_feeds[t]["template"], feed["search"])
                 for t, feed in zip(crops.search_template, crops.search_feeds)]
        to_crop = lambda a: np.ascontiguousarray(a[0].transpose(1, 2, 0)).astype(np.uint8)  # noqa: E731

        def run_torch(net, dtype):
            with torch.no_grad():
                out = []
                for z, x in pairs:
                    kernels = net.template_kernels(torch.from_numpy(z).to(dtype))
                    out.append(tuple(t.float().numpy() for t in net.track(torch.from_numpy(x).to(dtype), *kernels)))
                return out

        reference = run_torch(model, torch.float32)
        outputs = {name: [backend.search(to_crop(x), backend.template(to_crop(z))) for z, x in pairs]
                   for name, backend in sessions.items()}
        outputs["fp16 (emulated: torch CPU half)"] = run_torch(copy.deepcopy(model).half(), torch.float16)
    results = {name: error_stats(reference, out) for name, out in outputs.items()}
    scale = {"cls": float(max(np.abs(r[0]).max() for r in reference)),
             "loc": float(max(np.abs(r[1]).max() for r in reference))}
    print(f"{loaded.name}: {len(pairs)} night search crops; reference torch fp32 (largest |cls| {scale['cls']:.3g}, "
          f"|loc| {scale['loc']:.3g})")
    print(format_table(["path", "max|dcls|", "max|dloc|", "p99 |d|", "rel. err", "same best anchor"],
                       [[k, *(f"{v[m]:.2e}" for m in ("max_abs_cls", "max_abs_loc", "p99_abs", "max_relative")),
                         f"{v['best_anchor_agreement']:.2f}"] for k, v in results.items()]))
    if args.json:
        write_json_atomic(args.json, {"model": loaded.name, "crops": len(pairs), "reference_scale": scale,
                                      "results": results})
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
