"""``mlkd prepare``: write the crop-511 cache of a dataset so training epochs skip full-frame decoding."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="dataset folder (any layout mlkd reads: UAVDark135, NAT2021, GOT-10k, pysot JSON, "
                                "mlkd synth output, ...)")
    p.add_argument("--out", required=True, help="cache folder to create (resumable: finished sequences are kept)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the cached crops")
    p.add_argument("--canvas-size", type=int, default=511, help="side of each cached crop (px)")
    p.add_argument("--exemplar-size", type=int, default=127, help="template crop side the canvas scale is set for")
    p.add_argument("--context", type=float, default=0.5, help="context amount around the target")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mlkd_tracker.errors import InputError
    from mlkd_training.pairs import PairConfig, open_dataset_folder, prepare_cache, read_cache_index

    if args.workers < 1 or not 1 <= args.quality <= 100 or args.canvas_size <= args.exemplar_size:
        raise InputError("need --workers >= 1, --quality in 1..100 and --canvas-size > --exemplar-size")
    dataset = open_dataset_folder(args.data)
    config = PairConfig(canvas_size=args.canvas_size, exemplar_size=args.exemplar_size, context_amount=args.context)
    out = prepare_cache(dataset, args.out, config, workers=args.workers, quality=args.quality,
                        progress=not args.quiet)
    index = read_cache_index(out)
    print(f"crop cache {out}: {len(index['videos'])} sequences, {index['frames']} frames "
          f"({args.canvas_size}x{args.canvas_size} JPEG); train with --data {out}")
    return 0
