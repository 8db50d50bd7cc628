"""An independent renderer: Blender Cycles with CLEVR's look, through a persistent worker.

bpy (Blender as a Python module) needs Python 3.11 and numpy < 2, so it lives in its own
environment, .venv-cycles, which ensure_environment() creates on first use from
requirements-cycles.txt (scripts/setup_cycles_env.sh). CyclesRenderer starts one worker
process in it (cycles_worker.py) and sends it each scene as plain JSON: the worker never
imports igllm_ros. Camera pose, intrinsics and pixel convention are this package's (the
same Scene renders to the same pixels as igllm_ros.data.render; test_data_cycles checks
the instance masks agree).

    r = CyclesRenderer(320, 240)  # engine="eevee": Blender's rasterizer draws the RGB instead
    rgb = r.render_rgb(scene)    # (H, W, 3) uint8
    mask = r.render_mask(scene)  # (H, W) int16: -1 background, i = index into scene.objects
    r.release()
"""
from __future__ import annotations

import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from igllm_ros import world
from igllm_ros.data.blender_looks import BlenderLook
from igllm_ros.scene import Scene, intrinsics

ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = ROOT / "scripts" / "setup_cycles_env.sh"
REQUIREMENTS = ROOT / "requirements-cycles.txt"
WORKER = Path(__file__).with_name("cycles_worker.py")
STARTUP_TIMEOUT_S = 180.0  # importing bpy and building the stage: seconds, slower when loaded
RENDER_TIMEOUT_S = 600.0
LOG_LIMIT_BYTES = 1 << 20
MAX_MASK_OBJECTS = 254  # the mask pass writes index + 1 into an 8-bit grey PNG
DEFAULT_SAMPLES = 16  # + OpenImageDenoise: 0.38 to 0.49/255 mean from 128 samples (docs/cycles.md)
ENGINES = {"cycles": "CYCLES", "eevee": "EEVEE"}  # what draws the RGB image -> the worker's --engine


class CyclesUnavailable(RuntimeError):
    """The Blender Cycles environment could not be created or started on this machine."""


class CyclesWorkerError(RuntimeError):
    """The worker failed a request or died."""


def venv_dir() -> Path:
    return Path(os.environ.get("IGLLM_CYCLES_VENV", ROOT / ".venv-cycles"))


def _inputs_stamp() -> str:
    """What scripts/setup_cycles_env.sh stamps: sha256 of its requirements and itself."""
    return hashlib.sha256(REQUIREMENTS.read_bytes() + SETUP_SCRIPT.read_bytes()).hexdigest()


def environment_ready() -> bool:
    venv = venv_dir()
    stamp = venv / ".igllm-cycles-stamp"
    return (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == _inputs_stamp()


def ensure_environment() -> Path:
    """The Cycles environment's Python, creating the environment first if needed (~1.5 min).

    IGLLM_CYCLES_AUTO_SETUP=0 turns the creation off (e.g. CI without the download): then a
    missing environment raises CyclesUnavailable instead.
    """
    if not environment_ready():
        if os.environ.get("IGLLM_CYCLES_AUTO_SETUP", "1") == "0":
            raise CyclesUnavailable(
                f"no Blender Cycles environment in {venv_dir()} and IGLLM_CYCLES_AUTO_SETUP=0; "
                "create it with `make cycles-env` (bash scripts/setup_cycles_env.sh)"
            )
        print(
            f"[igllm_ros.data.cycles] setting up the Blender Cycles environment in {venv_dir()} "
            "(first use: downloads bpy, ~520 MB)",
            file=sys.stderr,
            flush=True,
        )
        # The script's own output (pip's progress bar) goes to our stderr; it takes a lock,
        # so processes that ask at once install it once.
        done = subprocess.run(["bash", str(SETUP_SCRIPT)], stdout=_stderr_fd(), stderr=_stderr_fd(), check=False)
        if done.returncode != 0 or not environment_ready():
            raise CyclesUnavailable(
                f"could not create the Blender Cycles environment (scripts/setup_cycles_env.sh exited "
                f"{done.returncode}); see its output above"
            )
    return venv_dir() / "bin" / "python"


def _stderr_fd():
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stderr (pytest): inherit ours
        return None


def scene_description(scene: Scene, width: int, height: int, light_jitter_seed: int | None = None,
                      look: BlenderLook | None = None) -> dict:
    """The minimal, JSON-ready scene the worker renders: all geometry comes from here.

    look: the stage's light levels, floor and exposure (None: CLEVR's); its lamp jitter
    seed, when set, replaces `light_jitter_seed`."""
    if len(scene.objects) > MAX_MASK_OBJECTS:
        raise ValueError(f"{len(scene.objects)} objects: the mask pass encodes at most {MAX_MASK_OBJECTS}")
    k = intrinsics(width, height)
    rot, t = scene.camera.table_from_optical()
    objects = []
    for i, obj in enumerate(scene.objects):
        if obj.color not in world.COLORS_RGB:
            raise ValueError(f"object {i}: unknown color {obj.color!r}; expected one of {world.COLORS}")
        if obj.material not in world.MATERIALS:
            raise ValueError(f"object {i}: unknown material {obj.material!r}; expected one of {world.MATERIALS}")
        objects.append(
            {
                "shape": obj.shape,
                "dimensions": list(world.dimensions(obj.shape, obj.size)),  # raises on unknown shape/size
                "material": obj.material,
                "rgb": list(world.COLORS_RGB[obj.color]),
                "location": [float(v) for v in obj.loc],
                "yaw_deg": float(obj.rotation) if obj.shape == "cube" else 0.0,  # as the moderngl renderer
            }
        )
    return {
        "width": width,
        "height": height,
        "intrinsics": [k[0, 0], k[1, 1], k[0, 2], k[1, 2]],
        "camera": {"position": t.tolist(), "table_from_optical": rot.tolist()},
        "objects": objects,
        "light_jitter_seed": light_jitter_seed if look is None or look.lamp_jitter_seed is None else look.lamp_jitter_seed,
        "look": None if look is None else {k: v for k, v in look.to_dict().items() if k != "lamp_jitter_seed"},
    }


class _Worker:
    """One Blender process: JSON requests on its stdin, replies on a pipe of their own."""

    def __init__(self, python: Path, threads: int, device: str = "CPU", engine: str = "cycles"):
        self.tmp = tempfile.TemporaryDirectory(prefix="igllm-cycles-")
        self.log_path = Path(self.tmp.name) / "worker.log"
        read_fd, write_fd = os.pipe()
        with open(self.log_path, "ab") as log:  # append mode: the client may truncate it
            self.process = subprocess.Popen(
                # -I: not the script's folder on sys.path, where our cycles.py would shadow
                # Blender's own "cycles" add-on; nor PYTHONPATH or the user's site-packages.
                [str(python), "-I", str(WORKER), "--reply-fd", str(write_fd), "--threads", str(threads), "--device", device,
                 "--engine", ENGINES[engine]],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                cwd=self.tmp.name,
            )
        os.close(write_fd)
        self._replies = os.fdopen(read_fd, "r")
        self.users = 0
        self.owner_pid = os.getpid()  # a forked child must not talk to its parent's worker
        try:
            ready = self._read_reply(STARTUP_TIMEOUT_S, "starting")
        except CyclesWorkerError as err:
            self.stop()
            raise CyclesUnavailable(str(err)) from err
        if not ready.get("ok"):
            self.stop()
            raise CyclesUnavailable(f"the Cycles worker could not start: {ready.get('error')}")
        self.blender, self.device = ready["blender"], ready["device"]

    def alive(self) -> bool:
        return self.owner_pid == os.getpid() and self.process.poll() is None

    def request(self, payload: dict, timeout_s: float) -> dict:
        if self.owner_pid != os.getpid():
            raise CyclesWorkerError("this Cycles worker belongs to the parent process; create the renderer after forking")
        if not self.alive():
            raise CyclesWorkerError(self._death_message("before the request"))
        if self.log_path.stat().st_size > LOG_LIMIT_BYTES:
            os.truncate(self.log_path, 0)  # Blender logs every render; only the latest lines matter
        try:
            self.process.stdin.write((json.dumps(payload) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise CyclesWorkerError(self._death_message(f"while sending ({err})")) from err
        reply = self._read_reply(timeout_s, payload.get("kind", payload.get("cmd")))
        if not reply.get("ok"):
            raise CyclesWorkerError(f"Cycles worker failed: {reply.get('error')}\n{reply.get('trace', '')}")
        return reply

    def _read_reply(self, timeout_s: float, what: str) -> dict:
        ready, _, _ = select.select([self._replies], [], [], timeout_s)
        if not ready:
            self.stop()
            raise CyclesWorkerError(f"Cycles worker gave no reply within {timeout_s:.0f} s ({what}); stopped it")
        line = self._replies.readline()
        if not line:
            self.process.wait(timeout=10)
            raise CyclesWorkerError(self._death_message(f"while {what}"))
        return json.loads(line)

    def _death_message(self, when: str) -> str:
        tail = ""
        if self.log_path.exists():
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 1500))
                tail = log.read().decode(errors="replace")
        return f"Cycles worker exited (code {self.process.poll()}) {when}; last output:\n{tail}"

    def stop(self) -> None:
        if self.owner_pid != os.getpid():
            return  # the parent's: leave it alone
        if self.alive():
            try:
                self.process.stdin.write(b'{"cmd": "quit"}\n')
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self._replies):
            try:
                stream.close()
            except OSError:
                pass
        self.tmp.cleanup()


_shared: dict[tuple[str, str], _Worker] = {}  # per (device, engine), one worker per process: renderers of any size share it


def _acquire_worker(threads: int, device: str, engine: str) -> _Worker:
    worker = _shared.get((device, engine))
    if worker is None or not worker.alive():
        if worker is not None:
            worker.stop()  # a dead one's pipes; nothing if it is a forked parent's
        worker = _shared[(device, engine)] = _Worker(ensure_environment(), threads, device, engine)
    worker.users += 1
    return worker


def _release_worker(worker: _Worker) -> None:
    worker.users -= 1
    if worker.users <= 0:
        worker.stop()
        key = next((k for k, w in _shared.items() if w is worker), None)
        if key is not None:
            del _shared[key]


class CyclesRenderer:
    """Renders a Scene with Blender Cycles in CLEVR's look; masks follow render.py's convention.

    samples: Cycles path samples per pixel for RGB (adaptive, then OpenImageDenoise).
    threads: CPU threads Cycles uses (default: every core; a shared worker keeps its first).
    device: "CPU", or "GPU" for the first of OptiX, CUDA, HIP, oneAPI with a device
        (CyclesUnavailable if none). Only the CPU path is tested on this project's machines.
    private_worker: a Blender process of its own instead of the one renderers share.
    engine: "cycles" (path tracing, CLEVR's look) or "eevee" (Blender's rasterizer with the
        same stage: the held-out renderer of val_eevee; `samples` and `denoise` are Cycles').
    """

    def __init__(self, width: int = world.IMAGE_WIDTH, height: int = world.IMAGE_HEIGHT,
                 samples: int = DEFAULT_SAMPLES, denoise: bool = True, threads: int | None = None,
                 device: str = "CPU", private_worker: bool = False, engine: str = "cycles"):
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if int(samples) <= 0:
            raise ValueError(f"samples must be positive, got {samples}")
        if device not in ("CPU", "GPU"):
            raise ValueError(f"device must be 'CPU' or 'GPU', got {device!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
        self.width, self.height = int(width), int(height)
        self.samples, self.denoise = int(samples), bool(denoise)
        threads = threads or os.cpu_count() or 1
        if private_worker:
            self._worker = _Worker(ensure_environment(), threads, device, engine)
            self._worker.users = 1
        else:
            self._worker = _acquire_worker(threads, device, engine)
        self.last_seconds = 0.0  # the worker's time for the latest render (Cycles itself)

    @property
    def blender_version(self) -> str:
        return self._worker.blender

    @property
    def device(self) -> str:
        """What Cycles renders on: "CPU" or the GPU backend ("OPTIX", "CUDA", ...)."""
        return self._worker.device

    def render_rgb(self, scene: Scene, light_jitter_seed: int | None = None, look: BlenderLook | None = None) -> np.ndarray:
        """(H, W, 3) uint8. light_jitter_seed: None for CLEVR's nominal lamps, else CLEVR's
        +-1 unit jitter of the key, fill and back lamps, drawn from this seed. look: a
        randomized stage (blender_looks.py), None for CLEVR's."""
        return np.asarray(self._render(scene, "rgb", light_jitter_seed, look).convert("RGB"), dtype=np.uint8)

    def render_mask(self, scene: Scene) -> np.ndarray:
        """(H, W) int16: the object whose surface covers each pixel centre, -1 for none."""
        index = np.asarray(self._render(scene, "mask", None), dtype=np.int16)
        return index - 1

    def _render(self, scene: Scene, kind: str, light_jitter_seed, look=None) -> Image.Image:
        if self._worker is None:
            raise RuntimeError("this CyclesRenderer was released")
        desc = scene_description(scene, self.width, self.height, light_jitter_seed, look)
        out = Path(self._worker.tmp.name) / f"{kind}.png"
        out.unlink(missing_ok=True)
        start = time.perf_counter()
        reply = self._worker.request(
            {"cmd": "render", "kind": kind, "out": str(out), "scene": desc, "samples": self.samples, "denoise": self.denoise},
            RENDER_TIMEOUT_S,
        )
        self.last_seconds = float(reply.get("seconds", time.perf_counter() - start))
        with Image.open(out) as image:
            image.load()
        if image.size != (self.width, self.height):
            raise CyclesWorkerError(f"worker wrote a {image.size} image, expected {(self.width, self.height)}")
        return image

    def release(self) -> None:
        if self._worker is not None:
            _release_worker(self._worker)
            self._worker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
