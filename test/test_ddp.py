"""A short 2-process DDP run of the mutual-learning room on the CPU (torchrun, gloo backend)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from training_data import write_dataset

HERE = Path(__file__).resolve().parent


def test_two_process_ml_run_stays_in_step(tmp_path):
    dataset = write_dataset(tmp_path / "data", sequences=2, frames=6)
    (tmp_path / "data" / "dataset.json").write_text(json.dumps(
        [{"name": s.name, "frames": [str(f) for f in s.store.paths], "gt": s.gt.tolist()} for s in dataset]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_ml_run.py"), str(tmp_path / "run"), str(tmp_path / "data")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in reports] == [2, 2]
    # each process took 2 steps per epoch (8 pairs = 2 steps x 2 per process x 2 processes), 2 epochs
    assert reports[0]["steps"] == reports[1]["steps"] == 4
    # gradients were averaged and every decision (election, KD gate, skips) taken on global figures:
    # both processes hold the same weights and counted the same elections
    assert reports[0]["checksums"] == reports[1]["checksums"]
    assert reports[0]["elections"] == reports[1]["elections"] and sum(reports[0]["elections"]) == 4
    state = torch.load(tmp_path / "run" / "checkpoints" / "epoch_002.pt", weights_only=True)
    assert state["world_size"] == 2 and state["elections"] == reports[0]["elections"]
    assert sorted(p.name for p in (tmp_path / "run").glob("student_*.pth")) == \
        ["student_l2.pth", "student_spatial.pth", "student_threshold.pth"]
