"""Tracking datasets: sequences with lazily read frames and per-frame ground truth."""
from mlkd_training.data.sequence import Dataset, Sequence

__all__ = ["Dataset", "Sequence"]
