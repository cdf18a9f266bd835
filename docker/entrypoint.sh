#!/usr/bin/env bash
# Jetson container entrypoint: source ROS 2 and the workspace, then launch the tracker node.
# Arguments are launch arguments (image_topic:=... namespace:=...); MLKD_MODEL / MLKD_BACKEND pick
# the model. A command instead (mlkd ..., ros2 ..., bash) runs that command in the same environment.
set -eo pipefail
# shellcheck disable=SC1091
source "/opt/ros/${ROS_DISTRO:-humble}/setup.bash"
# shellcheck disable=SC1091
source /opt/mlkd_ws/install/setup.bash
case "${1:-}" in
  mlkd|ros2|bash|python3) exec "$@" ;;
esac
if [[ -n "${MLKD_MODEL}" && ! -e "${MLKD_MODEL}" ]]; then
  echo "entrypoint: MLKD_MODEL=${MLKD_MODEL} does not exist; mount the models folder with -v HOST_DIR:/models" >&2
  exit 2
fi
exec ros2 launch mlkd_tracker track.launch.py model:="${MLKD_MODEL}" backend:="${MLKD_BACKEND:-auto}" "$@"
