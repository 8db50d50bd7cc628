"""The ROS 2 side of igllm_ros: the node, the camera simulator, and what they share.

Modules that need rclpy import it themselves; image_conversion and pinhole are plain
numpy/PIL so they can be tested (and reused) without ROS.
"""
