"""Test plumbing for the ROS tests (not shipped): a probe that drives another process's
node over DDS, the node started with test doubles, and memory readings from /proc."""
