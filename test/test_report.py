"""Atomic outputs: a file appears whole or not at all, with ordinary permissions."""
import os
import stat

import pytest

from mlkd_tracker.report import atomic_output, format_table, latency_stats, write_json_atomic, write_text_atomic


def test_atomic_write_replaces_whole_and_uses_the_umask(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_text_atomic(path, "first\n")
    write_text_atomic(path, "second\n")
    assert path.read_text() == "second\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    assert os.listdir(path.parent) == ["out.txt"]


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "res.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert os.listdir(tmp_path) == ["res.json"]


def test_table_and_percentiles():
    table = format_table(["name", "ms"], [["crop", 0.5], ["network", 12.25]])
    assert table.splitlines()[2].endswith(" 0.50") and "network" in table
    stats = latency_stats([1.0, 2.0, 3.0, 4.0])
    assert stats["p50"] == 2.5 and stats["mean"] == 2.5
