"""igllm_ros: Inverse-Graphics LLM perception for ROS 2 (after Kulits et al. 2024)."""
import pkgutil

# The generated interfaces (igllm_ros.msg) live in the colcon install tree, this source in
# the repository: let the package span both so a source checkout runs without a rebuild.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"
