"""Test session setup: an isolated ROS domain and a quiet, small CPU footprint."""
import os
import random

# Each pytest run gets its own DDS domain, so concurrent runs on one machine never cross-talk.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(_root, "config", "fastdds_shm.xml"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
