"""`python -m igllm_ros.camera_sim`: a camera publishing rendered scenes (igllm_ros.ros.camera_sim).

rclpy is imported only when the simulator runs, so `import igllm_ros` keeps working on a
training machine without ROS.
"""


def main(args=None) -> None:
    from igllm_ros.ros.camera_sim import main as sim_main

    sim_main(args)


if __name__ == "__main__":
    main()
