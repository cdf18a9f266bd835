"""``mlkd train-enhancer``: train or fine-tune DarkLighter on a folder of low-light images."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", help="folder of low-light images (searched recursively; no reference images needed)")
    p.add_argument("--out", default="runs/enhancer",
                   help="output folder: last.pth, epoch_NNN.pth, darklighter.pth, history.json, losses.png, preview.png")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="WEIGHTS",
                       help="fine-tune from these DarkLighter weights instead of training from scratch")
    start.add_argument("--resume", nargs="?", const="", metavar="LAST_PTH",
                       help="continue a run from its last.pth; without a path, the one in --out")
    p.add_argument("--epochs", type=int, default=200, help="total epochs (a resumed run continues up to this)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step")
    p.add_argument("--size", type=int, default=256, help="training images are resized to SIZE x SIZE")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="Adam weight decay")
    p.add_argument("--grad-clip", type=float, default=0.1, help="gradient norm clip")
    p.add_argument("--loss", dest="loss_weights", action="append", default=[], metavar="NAME=VALUE",
                   help="change a loss weight or setting: illumination (1600), colour (50), exposure (10), noise "
                        "(50), perceptual (0.001), exposure_target (0.6), exposure_patch (16); repeatable")
    p.add_argument("--vgg16", metavar="WEIGHTS",
                   help="torchvision VGG16 weights (.pth); enables the perceptual term (off without them)")
    p.add_argument("--channel-order", choices=("rgb", "bgr"), default="rgb",
                   help="channel order the network sees: rgb as the official weights, bgr as the MLKD teacher feeds it")
    p.add_argument("--save-every", type=int, default=10, help="epochs between epoch_NNN.pth snapshots")
    p.add_argument("--workers", type=int, default=2, help="data loading processes")
    p.add_argument("--seed", type=int, default=0, help="seed for the initial weights and the shuffling")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlkd_tracker.report import format_table
    from mlkd_training.enhancer.train import LAST, EnhancerTrainConfig, parse_loss_weights, train_enhancer

    config = EnhancerTrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, image_size=args.size, lr=args.lr,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, workers=args.workers, seed=args.seed,
        channel_order=args.channel_order, save_every=args.save_every, device=args.device,
        weights=parse_loss_weights(args.loss_weights))
    resume = None if args.resume is None else (args.resume or str(Path(args.out) / LAST))
    summary = train_enhancer(args.images, args.out, config, init=args.init, resume=resume, vgg16=args.vgg16,
                             progress=not args.quiet)
    if summary.resumed_from_epoch:
        print(f"resumed from epoch {summary.resumed_from_epoch}")
    if summary.history:
        names = [k for k in summary.history[-1] if k not in ("epoch", "skipped")]
        shown = summary.history[-3:]
        print(format_table(["epoch", *names], [[h["epoch"], *(h[k] for k in names)] for h in shown], ".4g"))
    print(f"weights: {summary.final}\nresumable state: {summary.last}\nplots: {summary.out_dir / 'losses.png'}, "
          f"{summary.out_dir / 'preview.png'}")
    return 0
