"""Small shared output helpers: aligned text tables, percentiles, atomic file/text/JSON writes."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], floatfmt: str = ".2f") -> str:
    """A plain aligned text table (numbers right-aligned, floats formatted with ``floatfmt``)."""
    def cell(v: Any) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = [bool(body) and all(_is_number(r[i]) for r in body) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def latency_stats(values_ms: Sequence[float]) -> dict[str, float]:
    """mean / p50 / p90 / p99 of a list of milliseconds (NaN when empty)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {k: float("nan") for k in ("mean", "p50", "p90", "p99")}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: permissions of the files we write follow the user's umask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write to; it becomes ``path`` only if the block succeeds.

    Nothing is ever half-written: on an error (or Ctrl-C) the temp file is removed and ``path``
    keeps its old content. The result gets the permissions of any newly created file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".partial")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write a file via a temp file in the same folder and a rename (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
