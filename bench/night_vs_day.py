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

import numpy as np

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
    made = generate_dataset(out / "synth", config, args.seed, args.workers)
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
    rng = np.random.default_rng(0)
    for tracker in args.trackers.split(","):
        day_ev, night_ev = scores[(tracker, "day")], scores[(tracker, "night")]
        day, night = day_ev.overall, night_ev.overall
        # paired per-sequence differences (night - day) and a bootstrap 95 % interval of their mean
        diff = np.array([night_ev.per_sequence[k].success.mean() - day_ev.per_sequence[k].success.mean()
                         for k in day_ev.per_sequence])
        boot = rng.choice(diff, (10000, len(diff))).mean(axis=1)
        low, high = np.percentile(boot, [2.5, 97.5])
        rows.append([tracker, day.auc, night.auc, night.auc - day.auc, f"[{low:.3f}, {high:.3f}]",
                     f"{int((diff < 0).sum())}/{len(diff)}", day.precision_20, night.precision_20])
        report["trackers"][tracker] = {"day": day.to_dict(curves=False), "night": night.to_dict(curves=False),
                                       "auc_drop": day.auc - night.auc,
                                       "relative_auc_drop": (day.auc - night.auc) / day.auc if day.auc else None,
                                       "delta_auc_ci95": [float(low), float(high)],
                                       "sequences_worse_at_night": int((diff < 0).sum()),
                                       "per_sequence_delta_auc": diff.tolist()}
    print(f"\n{args.sequences} synthetic sequences ({lo}-{hi} frames, seed {args.seed}); {len(made.generated)} "
          f"generated in this run ({synth_s:.0f} s), the rest reused from {out}")
    print(format_table(["tracker", "day AUC", "night AUC", "delta AUC", "delta 95% CI", "worse at night",
                        "day P@20", "night P@20"], rows, ".3f"))
    write_json_atomic(args.json, report)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
