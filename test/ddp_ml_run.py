"""Run by ``torchrun --nproc_per_node 2`` from test_ddp.py: a short ML-room run under DDP (gloo, CPU).

Every rank writes ``rank<N>.json`` with a checksum of each student's weights and the election
counts, so the test can check that the processes stayed in step.
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from training_data import TinyEnhancer  # noqa: E402

from mlkd_tracker.nets import SiamRPN  # noqa: E402
from mlkd_training.data.sequence import Dataset, FrameFiles, Sequence  # noqa: E402
from mlkd_training.pairs import FrameCanvases, PairSource  # noqa: E402
from mlkd_training.train_config import load_train_config  # noqa: E402
from mlkd_training.trainer import Trainer  # noqa: E402


def main(out: Path, data: Path) -> None:
    config = load_train_config(mode="ml", overrides={
        "optim.epochs": 2, "optim.batch_size": 2, "optim.warmup.epochs": 1, "pairs.pairs_per_epoch": 8,
        "pairs.exemplar_size": 103, "pairs.search_size": 151, "pairs.canvas_size": 303,
        "targets.search_size": 151, "targets.output_size": 7, "workers": 0, "log_every": 1})
    listing = json.loads((data / "dataset.json").read_text())  # written once by the test
    dataset = Dataset("tiny", [Sequence(s["name"], FrameFiles([Path(f) for f in s["frames"]]), s["gt"]) for s in listing])
    torch.manual_seed(0)
    teacher = SiamRPN(0.25, enhancer=TinyEnhancer())
    students = {f"student_{f}": SiamRPN(0.25) for f in config.students}
    trainer = Trainer(config, out, [PairSource(FrameCanvases(dataset, config.pairs))], models=students,
                      teacher=teacher, device="cpu", progress=False)
    trainer.fit()
    sums = {n: float(sum(p.double().sum() for p in m.parameters())) for n, m in trainer.models.items()}
    report = {"rank": trainer.dist.rank, "world": trainer.dist.world, "checksums": sums,
              "elections": trainer.room.elections, "steps": trainer.step}
    (out / f"rank{trainer.dist.rank}.json").write_text(json.dumps(report))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
