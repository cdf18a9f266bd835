"""Shared fixtures: where ``../shared`` data lives, and small deterministic inputs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI layout), or ``$MLKD_SHARED_DIR`` when set."""
    return Path(os.environ.get("MLKD_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture
def shared_data() -> Path:
    """``shared/data``; tests needing a file in it skip with a reason when it is absent."""
    return shared_dir() / "data"
