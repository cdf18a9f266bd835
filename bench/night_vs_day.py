"""Does the synthetic night hurt classical trackers the way real night footage does?

Generates a synthetic set (night + daylight twin, same geometry), runs OpenCV CSRT and KCF on
both with ``mlkd test``'s runner and evaluates with ``mlkd eval``'s metrics; prints the table and
writes JSON. Usage::

    python bench/night_vs_day.py --out /tmp/nvd --sequences 24 --workers 2 --json bench_night_vs_day.json
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlkd_tracker.report import format_table, write_json_atomic  # noqa: E402
from mlkd_training.data.readers import open_dataset  # noqa: E402
from mlkd_training.data.synth import SynthConfig, generate_dataset  # noqa: E402
from mlkd_training.evaluation.results import evaluate_results  # noqa: E402
from mlkd_training.evaluation.runner import TrackerSpec, run_tracker  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/mlkd_night_vs_day", help="work folder (synthetic set and results)")
    p.add_argument("--sequences", type=int, default=24)
    p.add_argument("--frames", default="150,250", metavar="MIN,MAX")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--trackers", default="csrt,kcf")
    p.add_argument("--json", default="bench_night_vs_day.json")
    args = p.parse_args()

    out = Path(args.out)
    lo, hi = (int(v) for v in args.frames.split(","))
    config = SynthConfig(sequences=args.sequences, frames=(lo, hi), name="NightVsDay")
    t0 = time.perf_counter()
    generate_dataset(out / "synth", config, args.seed, args.workers)
    synth_s = time.perf_counter() - t0
    rows, report = [], {"sequences": args.sequences, "seed": args.seed, "frames": [lo, hi],
                        "machine": platform.processor() or platform.machine(), "trackers": {}}
    scores = {}
    for kind in ("day", "night"):
        dataset = open_dataset(out / "synth" / kind, name=f"NightVsDay-{kind}")
        names = []
        for tracker in args.trackers.split(","):
            run_tracker(dataset, TrackerSpec(tracker, tracker), out / "results", args.workers)
            names.append(tracker)
        for ev in evaluate_results(dataset, out / "results" / dataset.name, names):
            scores[(ev.name, kind)] = ev
    for tracker in args.trackers.split(","):
        day, night = scores[(tracker, "day")].overall, scores[(tracker, "night")].overall
        rows.append([tracker, day.auc, night.auc, night.auc - day.auc, day.precision_20, night.precision_20,
                     night.precision_20 - day.precision_20])
        report["trackers"][tracker] = {"day": day.to_dict(curves=False), "night": night.to_dict(curves=False),
                                       "auc_drop": day.auc - night.auc,
                                       "relative_auc_drop": (day.auc - night.auc) / day.auc if day.auc else None}
    print(f"\n{args.sequences} synthetic sequences ({lo}-{hi} frames, seed {args.seed}), generated in {synth_s:.0f} s")
    print(format_table(["tracker", "day AUC", "night AUC", "delta AUC", "day P@20", "night P@20", "delta P@20"],
                       rows, ".3f"))
    write_json_atomic(args.json, report)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
