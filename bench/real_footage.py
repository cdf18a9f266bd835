"""Accuracy on real UAV footage by day and at night: the released NanoTracks, the bundled models, CSRT, KCF.

Night is the project's low-light camera model (``mlkd darken``: one camera drawn per sequence from
``--seed``) applied to the same real sequences, stored as JPEG frames (the camera's own bytes).
Trackers run through ``mlkd test``'s runner and are scored with ``mlkd eval``'s metrics (pysot
protocol). NanoTrack checkpoints are exported to ONNX first (ONNX Runtime, same outputs as torch
within 1e-4, see ``test/test_nanotrack_export.py``), only to make the run shorter. Prints the
table, writes JSON and success / precision plots per condition::

    python bench/real_footage.py --out /tmp/real_footage --workers 2 --json bench_real_footage.json
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlkd_tracker.config import SIAMRPN_MODEL_CONFIG, default_model_path  # noqa: E402
from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.data.darken import darken_dataset  # noqa: E402
from mlkd_training.data.readers import open_dataset  # noqa: E402
from mlkd_training.evaluation.plots import plot_all  # noqa: E402
from mlkd_training.evaluation.results import evaluate_results  # noqa: E402
from mlkd_training.evaluation.runner import TrackerSpec, run_tracker  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(SHARED / "uav_real"), help="real daytime dataset (UAV123 layout)")
    p.add_argument("--nanotrack", default=str(SHARED / "nanotrack"), help="folder with v1/ v2/ v3/ releases")
    p.add_argument("--out", default="/tmp/mlkd_real_footage", help="work folder (night set, exports, results)")
    p.add_argument("--seed", type=int, default=0, help="night camera seed")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sequences", metavar="A,B,...", help="only these sequences")
    p.add_argument("--trackers", nargs="+", default=None, metavar="SPEC",
                   help="model files or peers (default: NanoTrack v1-v3, the bundled MLKD-Track and its SiamRPN "
                        "reference model, csrt, kcf)")
    p.add_argument("--json", default="bench_real_footage.json")
    args = p.parse_args()

    from mlkd_training.export.onnx_export import export_model

    out = Path(args.out)
    wanted = [s.strip() for s in args.sequences.split(",")] if args.sequences else None
    day = open_dataset(args.data, sequences=wanted)
    t0 = time.perf_counter()
    darken_dataset(day, out / "night", seed=args.seed, store="jpeg")
    night = open_dataset(out / "night", sequences=wanted, name=f"{day.name}-night")
    darken_s = time.perf_counter() - t0
    specs = args.trackers
    if specs is None:
        specs = []
        for v in (1, 2, 3):
            prefix = out / "exports" / f"nanotrack_v{v}"
            if not prefix.with_name(prefix.name + ".search.onnx").is_file():
                export_model(Path(args.nanotrack) / f"v{v}" / f"nanotrackv{v}.pth", prefix)
            specs.append(str(prefix.with_name(prefix.name + ".search.onnx")))
        specs += [str(default_model_path()), str(default_model_path().with_name(SIAMRPN_MODEL_CONFIG)), "csrt", "kcf"]
    bundled = {str(default_model_path()): "MLKD-Track", str(default_model_path().with_name(SIAMRPN_MODEL_CONFIG)):
               "MLKD-Track SiamRPN"}
    names = {spec: bundled.get(spec, Path(spec).name.split(".")[0] if "/" in spec else spec) for spec in specs}
    table, report = [], {"dataset": day.name, "sequences": len(day), "frames": sum(len(s) for s in day),
                         "seed": args.seed, "machine": platform.processor() or platform.machine(),
                         "darken_seconds": darken_s, "trackers": {}}
    evaluations = {}
    for condition, dataset in (("day", day), ("night", night)):
        for spec, name in names.items():
            run_tracker(dataset, TrackerSpec(spec, name, "cpu", "auto", {}), out / "results", args.workers)
        evaluations[condition] = evaluate_results(dataset, out / "results" / dataset.name, list(names.values()))
        plot_all(evaluations[condition], out / "plots" / condition, dataset.name)
    for name in names.values():
        row, entry = [name], {}
        for condition in ("day", "night"):
            ev = next(e for e in evaluations[condition] if e.name == name)
            row += [ev.overall.auc, ev.overall.precision_20]
            entry[condition] = {"auc": ev.overall.auc, "precision_20": ev.overall.precision_20}
        row.append(entry["night"]["auc"] - entry["day"]["auc"])
        table.append(row)
        report["trackers"][name] = entry
    table.sort(key=lambda r: -r[3])
    print(f"{day.name}: {report['sequences']} sequences, {report['frames']} frames; night = mlkd darken, seed {args.seed}")
    print(format_table(["tracker", "day AUC", "day P@20", "night AUC", "night P@20", "night - day AUC"], table, ".3f"))
    write_json_atomic(args.json, report)
    print(f"JSON: {args.json}; plots: {out / 'plots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
