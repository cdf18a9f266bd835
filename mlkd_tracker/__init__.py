"""MLKD-Track onboard runtime: tracker core, inference backends, ROS 2 node.

The tracker core (crop, anchors, decoding, penalties) depends on numpy and OpenCV only;
PyTorch, ONNX Runtime and TensorRT are imported only by the backend that is chosen.
"""

__version__ = "0.1.0"
