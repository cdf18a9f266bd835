"""Helpers of the ROS tests (modules import this after checking that rclpy is installed)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import rclpy
from rclpy.executors import ExternalShutdownException

from mlkd_training.evaluation.metrics import iou as iou_rows


def ros_context_fixture(domain_id: int):
    """A module-wide rclpy context on ``domain_id``, discovery limited to this machine."""
    @pytest.fixture(scope="module", autouse=True)
    def ros_context():
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        rclpy.init(domain_id=domain_id)
        yield
        rclpy.shutdown()
    return ros_context


def iou(a, b) -> float:
    """IoU of two ``x, y, w, h`` boxes."""
    return float(iou_rows(np.array([a], np.float64), np.array([b], np.float64))[0])


def stamp_ns(msg) -> int:
    """The header stamp of a message in nanoseconds."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def spin_in_background(executor) -> threading.Thread:
    """Spin ``executor`` in a daemon thread until it is shut down."""
    def spin():
        try:
            executor.spin()
        except ExternalShutdownException:
            pass
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return thread
