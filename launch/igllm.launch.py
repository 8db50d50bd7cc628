"""igllm_node (a lifecycle node), optionally with the camera simulator.

    ros2 launch igllm_ros igllm.launch.py image:=/camera/image_rect camera_info:=/camera/camera_info
    ros2 launch igllm_ros igllm.launch.py use_sim:=true

Arguments: namespace, model, params_file, image, camera_info, device, autostart, use_sim.
The node configures and activates itself unless autostart:=false; then drive it with
`ros2 lifecycle set /igllm_node configure` and `... activate`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("igllm_ros")
    namespace = LaunchConfiguration("namespace")
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node (and simulator)"),
        DeclareLaunchArgument("model", default_value="models/igllm-lite0-cycles2",
                              description="model directory; relative paths are also tried in the package share"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "igllm.yaml"]),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("image", default_value="image", description="input image topic (rectified)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info", description="its camera_info topic"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("autostart", default_value="true", description="configure and activate at start"),
        DeclareLaunchArgument("use_sim", default_value="false", description="also start igllm_camera_sim"),
    ]
    remappings = [
        ("image", image),
        ("image/compressed", [image, "/compressed"]),
        ("camera_info", camera_info),
    ]
    return LaunchDescription(
        arguments
        + [
            # The shipped shared-memory transport: large images are dropped without it.
            SetEnvironmentVariable(
                "FASTDDS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([share, "config", "fastdds_shm.xml"])
            ),
            LifecycleNode(
                package="igllm_ros",
                executable="igllm_node",
                name="igllm_node",
                namespace=namespace,
                parameters=[
                    LaunchConfiguration("params_file"),
                    {
                        "model_path": ParameterValue(LaunchConfiguration("model"), value_type=str),
                        "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                        "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
                    },
                ],
                remappings=remappings,
                output="screen",
            ),
            Node(
                package="igllm_ros",
                executable="igllm_camera_sim",
                name="igllm_camera_sim",
                namespace=namespace,
                parameters=[PathJoinSubstitution([share, "config", "camera_sim.yaml"])],
                remappings=[("image", image), ("image/compressed", [image, "/compressed"]), ("camera_info", camera_info)],
                condition=IfCondition(LaunchConfiguration("use_sim")),
                output="screen",
            ),
        ]
    )
