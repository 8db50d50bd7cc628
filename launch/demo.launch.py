"""The demo as a launch file: the camera simulator and igllm_node with the shipped model.

    ros2 launch igllm_ros demo.launch.py            # then: rviz2 (MarkerArray on /markers,
                                                    # Image on /debug_image, fixed frame camera_optical_frame)

For the printed comparison with the ground truth and the MCAP recording, run
`python -m igllm_ros.ros.demo` (or `make demo`) instead.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("igllm_ros")
    return LaunchDescription(
        [
            DeclareLaunchArgument("model", default_value="models/igllm-lite0-cycles2", description="model directory"),
            DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "igllm.launch.py"])),
                launch_arguments={
                    "model": LaunchConfiguration("model"),
                    "device": LaunchConfiguration("device"),
                    "use_sim": "true",
                }.items(),
            ),
        ]
    )
