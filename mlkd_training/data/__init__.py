"""Tracking datasets: sequences with lazily read frames (image files or a video) and per-frame ground truth."""
from mlkd_training.data.sequence import Dataset, FrameFiles, FrameStore, Sequence, VideoFrames

__all__ = ["Dataset", "FrameFiles", "FrameStore", "Sequence", "VideoFrames"]
