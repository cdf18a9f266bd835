#!/usr/bin/env bash
# Create ./.venv with everything the runtime, the training side and the tests need (CPU build of torch).
# Set MLKD_SKIP_ROS_WHEELS=1 on a machine with a ROS 2 install (rclpy, launch_ros, vision_msgs then come from
# /opt/ros); otherwise scripts/ros_dev_env.sh adds launch, the ros2 command and vision_msgs to the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# The CPU build of torch: this project's machines hold it on local disk; elsewhere PyPI's Linux wheel is a
# CUDA build of several GB, so set MLKD_TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one
# (or install the CUDA build you want first: an installed torch 2.13.0 is kept).
$PIP install -q torch==2.13.0 ${MLKD_TORCH_INDEX:+--index-url "$MLKD_TORCH_INDEX"}
$PIP install -q -e ".[torch,train,onnx,ros,dev]"
if [ "${MLKD_SKIP_ROS_WHEELS:-0}" != "1" ]; then
  # ROS 2 (kilted) Python wheels from PyPI: a working rclpy without a ROS install
  $PIP install -q ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-std-msgs ros-geometry-msgs \
    ros-std-srvs ros-diagnostic-msgs
  # launch_ros, `ros2 launch`, vision_msgs: from ../shared/ros_src, generated once, then cached
  bash scripts/ros_dev_env.sh
fi
echo "environment ready: $(pwd)/.venv"
