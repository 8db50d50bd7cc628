#!/usr/bin/env bash
# The Blender Cycles environment for igllm_ros.data.cycles: .venv-cycles with bpy (Blender
# as a Python module) and numpy < 2, from requirements-cycles.txt. It is separate from
# .venv because bpy pins Python 3.11 and numpy 1.x. Idempotent: a stamp of its inputs makes
# a second run return at once. bpy is a ~520 MB download; pip shows a progress bar.
# Environment: IGLLM_CYCLES_VENV (where, default .venv-cycles), PYTHON (a Python 3.11).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${IGLLM_CYCLES_VENV:-$root/.venv-cycles}"
python="${PYTHON:-python3.11}"
say() { echo "[setup-cycles] $*" >&2; }

# One setup at a time: a second caller waits here, then finds the stamp and returns.
mkdir -p "$venv"
exec 9>"$venv/.igllm-setup.lock"
if command -v flock >/dev/null; then flock 9; fi

stamp=$(cat requirements-cycles.txt scripts/setup_cycles_env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.igllm-cycles-stamp" 2>/dev/null)" = "$stamp" ]; then
  say "ready: $venv"
  exit 0
fi

command -v "$python" >/dev/null || { say "error: $python not found; bpy needs Python 3.11 (set PYTHON=...)"; exit 1; }
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$version" = "3.11" ] || { say "error: $python is Python $version; bpy 4.2 wheels need 3.11 (set PYTHON=...)"; exit 1; }

say "creating the Blender Cycles environment in $venv (first use only)"
say "downloading bpy (~520 MB) and numpy<2; this takes about a minute on a fast link"
rm -f "$venv/.igllm-cycles-stamp"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r requirements-cycles.txt >&2

say "checking that bpy imports and Cycles is there"
"$venv/bin/python" - >&2 <<'EOF'
import bpy
bpy.context.scene.render.engine = "CYCLES"  # raises if the wheel lacks Cycles
print(f"[setup-cycles] bpy {bpy.app.version_string} imports; Cycles present")
EOF
echo "$stamp" > "$venv/.igllm-cycles-stamp"
say "ready: $venv"
