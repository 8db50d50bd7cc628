"""`python -m igllm_ros.node`: the IG-LLM scene reconstruction node (igllm_ros.ros.node).

rclpy is imported only when the node runs, so `import igllm_ros` keeps working on a
training machine without ROS.
"""


def main(args=None) -> None:
    from igllm_ros.ros.node import main as node_main

    node_main(args)


if __name__ == "__main__":
    main()
