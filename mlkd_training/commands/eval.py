"""``mlkd eval``: one-pass evaluation of result files (pysot-toolkit definitions), table, JSON and plots."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="the dataset the results are for (folder or pysot JSON, as for mlkd test)")
    p.add_argument("--results", default="results",
                   help="results root holding <dataset>/<tracker>/<seq>.txt, or the <dataset> folder itself")
    p.add_argument("-t", "--tracker", dest="trackers", action="append", metavar="NAME",
                   help="tracker folder to evaluate (repeatable; default: every tracker with results)")
    p.add_argument("--kind", default="auto", help="dataset layout: auto, uav, got10k, lasot or pysot")
    p.add_argument("--sequences", metavar="A,B,...", help="only these sequences")
    p.add_argument("--protocol", choices=["pysot", "skip"], default="pysot",
                   help="frames without ground truth: pysot = exactly as pysot-toolkit (comparable with "
                        "published tables); skip = left out of numerator and denominator")
    p.add_argument("--out", help="folder for eval.json and the PNG plots (default: <results>/<dataset>-eval)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--per-sequence", action="store_true", help="also print each sequence's success AUC")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlkd_tracker.report import format_table, write_json_atomic
    from mlkd_training.data.readers import open_dataset
    from mlkd_training.evaluation.metrics import NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS
    from mlkd_training.evaluation.results import attribute_sequences, evaluate_results

    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()] if args.sequences else None
    dataset = open_dataset(args.dataset, args.kind, sequences)
    results = Path(args.results)
    dataset_results = results / dataset.name if (results / dataset.name).is_dir() else results
    evaluations = evaluate_results(dataset, dataset_results, args.trackers, args.protocol)
    out_dir = Path(args.out) if args.out else dataset_results.parent / f"{dataset.name}-eval"

    def fps(value):
        return f"{value:.1f}" if value is not None else "-"

    print(f"dataset: {dataset.name} ({len(dataset)} sequences)  protocol: {args.protocol}")
    print(format_table(["tracker", "success AUC", "precision@20", "norm. precision@0.2", "FPS"],
                       [[ev.name, ev.overall.auc, ev.overall.precision_20, ev.overall.norm_precision_20, fps(ev.fps)]
                        for ev in evaluations], ".3f"))
    attributes = attribute_sequences(dataset)
    if attributes:
        print("\nsuccess AUC per attribute (sequences)")
        print(format_table(["attribute", "seqs", *[ev.name for ev in evaluations]],
                           [[attr, len(seqs), *[ev.attributes[attr].auc for ev in evaluations]]
                            for attr, seqs in attributes.items()], ".3f"))
    if args.per_sequence:
        print("\nsuccess AUC per sequence")
        print(format_table(["sequence", *[ev.name for ev in evaluations]],
                           [[s.name, *[float(ev.per_sequence[s.name].success.mean()) for ev in evaluations]]
                            for s in dataset], ".3f"))
    report = {"dataset": dataset.name, "sequences": len(dataset), "protocol": args.protocol,
              "results": str(dataset_results),
              "thresholds": {"success": SUCCESS_THRESHOLDS.tolist(), "precision": PRECISION_THRESHOLDS.tolist(),
                             "norm_precision": NORM_PRECISION_THRESHOLDS.tolist()},
              "attributes": attributes, "trackers": [ev.to_dict() for ev in evaluations]}
    json_path = write_json_atomic(out_dir / "eval.json", report)
    print(f"\nJSON: {json_path}")
    if not args.no_plots:
        from mlkd_training.evaluation.plots import plot_all

        paths = plot_all(evaluations, out_dir, dataset.name, attributes)
        print(f"plots: {len(paths)} PNG in {out_dir}")
    return 0
