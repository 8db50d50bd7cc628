#!/usr/bin/env python3
"""Export a training run as a shipped model directory (float16 weights, card, log, curves).

    python scripts/export_model.py runs/lite0-float models/igllm-lite0-float
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_suite import export_dir  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run, target = Path(sys.argv[1]), Path(sys.argv[2])
    if not (run / "final").is_dir() and not (run / "checkpoint").is_dir():
        sys.exit(f"export_model: {run} holds neither final/ nor checkpoint/")
    export_dir(run, target)
    print(f"exported {run} to {target}")
