"""Start the MLKD-Track node: ``ros2 launch mlkd_tracker track.launch.py model:=/models/mlkd_track.onnx``.

Arguments: model, backend, image_topic, use_compressed, params_file, namespace, log_level, autostart.
``ros2 launch mlkd_tracker track.launch.py --show-args`` lists them with their defaults.

The node is a lifecycle node. With ``autostart:=true`` (default) it configures and activates itself,
as it does when started without launch. With ``autostart:=false`` this launch description drives it
instead: configure at start, activate once configured; the transitions appear in launch's output and
can be hooked from an including launch file (``OnStateTransition``).
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

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
    ("autostart", "true", "the node configures and activates itself; false: this launch description does it "
                          "through lifecycle transitions"),
]


def generate_launch_description() -> LaunchDescription:
    """The launch arguments, the tracker node and, with autostart:=false, its lifecycle transitions."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, default, text in ARGUMENTS]
    autostart = LaunchConfiguration("autostart")
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
                "autostart": ParameterValue(autostart, value_type=bool),
            },
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )

    def transition(transition_id: int, **kwargs) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id),
                         **kwargs)

    launch_managed = UnlessCondition(autostart)
    configure = transition(Transition.TRANSITION_CONFIGURE, condition=launch_managed)
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                          entities=[transition(Transition.TRANSITION_ACTIVATE)]),
        condition=launch_managed)
    return LaunchDescription([*declared, node, activate_when_configured, configure])
