"""Pieces of igllm-train: presets, the batch stream, schedule, training state, logs."""
