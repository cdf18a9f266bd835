"""``mlkd prepare`` and ``mlkd train --data`` on a dataset folder opened by the readers."""
import json

import pytest

from dataset_fixtures import write_uav_video_dataset
from mlkd_tracker.cli import main
from training_data import single_thread, write_dataset  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = ["--epochs", "1", "--batch-size", "2", "--workers", "0", "--quiet", "--set", "pairs.pairs_per_epoch=4",
         "--set", "optim.warmup.epochs=0", "--set", "pairs.exemplar_size=103", "--set", "pairs.search_size=151",
         "--set", "pairs.canvas_size=303", "--set", "targets.search_size=151", "--set", "targets.output_size=7"]


def test_prepare_a_dataset_folder_and_train_from_folder_and_cache(tmp_path, capsys):
    root = tmp_path / "got10k_like"
    write_dataset(root, sequences=2, frames=5)  # <seq>/000001.jpg ... + <seq>/groundtruth.txt
    cache = tmp_path / "cache"
    assert main(["prepare", str(root), "--out", str(cache), "--workers", "1", "--canvas-size", "303",
                 "--exemplar-size", "103", "--quiet"]) == 0
    assert "2 sequences, 10 frames" in capsys.readouterr().out
    assert json.loads((cache / "index.json").read_text())["canvas_size"] == 303
    for data in (root, cache):  # frames decoded on the fly, or the cached crops
        out = tmp_path / f"run_{data.name}"
        assert main(["train", "base", "--data", str(data), "--out", str(out), *SMALL]) == 0
        assert (out / "base.pth").is_file()
    assert main(["prepare", str(tmp_path / "nowhere"), "--out", str(cache)]) == 2
    assert "dataset not found" in capsys.readouterr().err


def test_prepare_and_train_on_a_video_dataset(tmp_path, capsys):
    root = tmp_path / "videos"
    write_uav_video_dataset(root, count=2, frames=12)  # data_seq/<seq>.mp4 + anno/<seq>.txt
    cache = tmp_path / "cache"
    assert main(["prepare", str(root), "--out", str(cache), "--workers", "2", "--canvas-size", "303",
                 "--exemplar-size", "103", "--quiet"]) == 0  # worker processes open their own decoders
    assert "2 sequences, 24 frames" in capsys.readouterr().out
    assert len(list((cache / "vid2").glob("*.jpg"))) == 12
    assert not list(root.rglob("*.jpg"))  # frames were decoded in memory, never written out
    out = tmp_path / "run"
    assert main(["train", "base", "--data", str(root), "--out", str(out), *SMALL]) == 0
    assert (out / "base.pth").is_file()
