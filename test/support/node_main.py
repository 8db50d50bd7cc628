"""`python -m support.node_main --ros-args ...`: igllm_node as shipped, except that its model
directory may be a test double (support.doubles)."""
from igllm_ros.ros.node import main

from support import doubles

if __name__ == "__main__":
    main(model_loader=doubles.load)
