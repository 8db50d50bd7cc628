# igllm_ros: every target sets the environment up first (idempotent, seconds when done).
SHELL := /bin/bash
ENV := source scripts/env.sh &&
MODEL ?= models/igllm-lite0-cycles2
FRAMES ?= 20

.PHONY: setup test demo bench bench-data bench-model bench-node bench-reliability bench-accuracy data train clean

setup:
	@bash scripts/setup_env.sh

test: setup
	@$(ENV) python -m pytest

demo: setup
	@$(ENV) python -m igllm_ros.ros.demo --model $(MODEL) --frames $(FRAMES) --out out/demo

bench: bench-data bench-model bench-node

bench-data: setup
	@$(ENV) python bench/bench_data.py

bench-model: setup
	@$(ENV) python bench/bench_model.py --model $(MODEL) --threads 1

bench-node: setup
	@$(ENV) python bench/bench_node.py --model $(MODEL)

bench-reliability: setup
	@$(ENV) python bench/bench_reliability.py

bench-accuracy: setup
	@$(ENV) python bench/bench_accuracy.py

.PHONY: bench-domain-loss
# The training objective on each split's images (no gradient): a domain gap on few scenes.
bench-domain-loss: setup
	@$(ENV) python bench/bench_domain_loss.py

.PHONY: bench-node-accuracy
# The same metrics through igllm_node over DDS, this script an outside client (data/<split>, rendered when missing).
bench-node-accuracy: setup
	@$(ENV) python bench/bench_node_accuracy.py --markdown out/bench_node_accuracy/table.md

.PHONY: cycles-env bench-cycles
# The Blender Cycles environment (.venv-cycles; ~40 s, a 520 MB download on first use).
cycles-env:
	@bash scripts/setup_cycles_env.sh

# Cycles next to moderngl: seconds per image, mask agreement, docs/figures/cycles_val.png.
bench-cycles: setup cycles-env
	@$(ENV) python -m igllm_ros.data.cycles_sheet --out docs/figures/cycles_val.png

clean:
	rm -rf build install log out
