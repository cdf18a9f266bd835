"""ROS 2 side of the runtime: the tracker node (``node.py``, needs rclpy) and the message <->
numpy conversion (``convert.py``, numpy + OpenCV only, also used by bag replay without ROS).
"""
