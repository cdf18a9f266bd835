#!/usr/bin/env bash
# Create ./.venv with everything the runtime, the training side and the tests need (CPU build of torch).
# Set MLKD_SKIP_ROS_WHEELS=1 on a machine with a ROS 2 install (rclpy then comes from /opt/ros).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.13.0            # CPU build; install a CUDA build yourself on a GPU machine
$PIP install -q -e ".[torch,train,onnx,ros,dev]"
if [ "${MLKD_SKIP_ROS_WHEELS:-0}" != "1" ]; then
  # ROS 2 (kilted) Python wheels from PyPI: a working rclpy without a ROS install
  $PIP install -q ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-std-msgs ros-geometry-msgs \
    ros-std-srvs ros-diagnostic-msgs
fi
echo "environment ready: $(pwd)/.venv"
