"""Start the MLKD-Track node: ``ros2 launch mlkd_tracker track.launch.py model:=/models/mlkd_track.onnx``.

Arguments: model, backend, image_topic, use_compressed, params_file, namespace, log_level.
The node configures and activates itself (parameter ``autostart``); it is a lifecycle node, so
``ros2 lifecycle set`` works on it too.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ("model", "", "model file: .engine/.plan (TensorRT), .onnx, .pth/.safetensors or a models/*.yaml; "
                  "empty = the bundled MLKD-Track"),
    ("backend", "auto", "auto (by the model file), torch, onnxruntime or tensorrt"),
    ("image_topic", "/camera/image_raw", "camera topic (sensor_msgs/Image)"),
    ("use_compressed", "false", "subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage) instead"),
    ("params_file", PathJoinSubstitution([FindPackageShare("mlkd_tracker"), "config", "mlkd_tracker.yaml"]),
     "node parameters (YAML)"),
    ("namespace", "", "namespace of the node and its topics"),
    ("log_level", "info", "debug, info, warn, error"),
]


def generate_launch_description() -> LaunchDescription:
    """The launch arguments and the tracker node."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    node = LifecycleNode(
        package="mlkd_tracker",
        executable="mlkd_tracker_node",
        name="mlkd_tracker",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "backend": ParameterValue(LaunchConfiguration("backend"), value_type=str),
                "image_topic": ParameterValue(LaunchConfiguration("image_topic"), value_type=str),
                "use_compressed": ParameterValue(LaunchConfiguration("use_compressed"), value_type=bool),
            },
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    return LaunchDescription([*declared, node])
