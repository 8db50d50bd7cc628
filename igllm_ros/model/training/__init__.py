"""Pieces of igllm-train and igllm-eval: presets, data, schedule, checkpoints, logs, devices."""
