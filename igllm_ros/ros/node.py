"""igllm_node: a managed (lifecycle) node that turns camera images into Scene messages.

Threads: the executor runs the callbacks, which only check an image's header and drop it
into a one-frame mailbox (replacing, and counting as dropped, any frame not yet taken).
One worker thread takes the newest frame, runs the model and publishes. So the output is
always about the newest image and latency does not grow with the camera rate. `main` spins
a single-threaded executor: rclpy's multi-threaded one spends about 2 ms of Python (under
the GIL, which the worker's decoding loop needs between its tensor ops) per callback, and
at a 30 Hz camera that took the node from 9.7 to 7.3 Hz output (docs/node.md). The
callback groups still keep the reconstruct service apart when the node is added to a
multi-threaded executor.

Lifecycle: configure loads the model (a missing or corrupt model fails the transition and
the node stays unconfigured, with the reason in the log and on /diagnostics); activate
subscribes and starts the worker; deactivate stops both; cleanup releases the model.

Faults: every callback runs behind one guard (guard.py), so an exception anywhere becomes
a counted `internal_error` with a throttled log line and never reaches the executor. The
rules live beside the code they are about: camera_info and view limits in pinhole.py, the
diagnostics level in diagnostics.py, the debug image in debug_image.py.
"""
from __future__ import annotations

import functools
import threading
import time
import traceback

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool
from visualization_msgs.msg import MarkerArray

from igllm_ros.msg import Scene
from igllm_ros.ros import params, pinhole, qos
from igllm_ros.ros.conversions import rgb_image_msg, scene_to_msg
from igllm_ros.ros.debug_image import DebugImageComposer
from igllm_ros.ros.diagnostics import HealthPolicy, NodeStats, flatten, status_message
from igllm_ros.ros.guard import guarded
from igllm_ros.ros.image_conversion import ImageError, check_image, decode_compressed, image_to_rgb
from igllm_ros.ros.mailbox import Frame, LatestFrame
from igllm_ros.ros.markers import scene_markers
from igllm_ros.ros.model_host import ModelHost, ModelUnavailable
from igllm_ros.srv import Reconstruct

WARN_EVERY_S = 5.0
SUCCESS, FAILURE, ERROR = (TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE,
                           TransitionCallbackReturn.ERROR)


class NotReady(RuntimeError):
    pass


def transition(during: str, goal: str, failed: str | None = None):
    """A lifecycle callback that keeps the node's state label (rclpy has no public getter)
    and is guarded: an exception is an internal_error and the transition's ERROR. On
    FAILURE the node goes back where it was (or to `failed`)."""

    def wrap(method):
        @functools.wraps(method)
        def run(self, state: LifecycleState) -> TransitionCallbackReturn:
            start = self._state
            self._state = during
            try:
                result = method(self, state)
            except Exception:  # noqa: BLE001 - rclpy would swallow it silently
                self._report_internal_error(method.__name__, traceback.format_exc())
                result = ERROR
            self._state = {SUCCESS: goal, FAILURE: failed or start}.get(result, "errorprocessing")
            return result

        return run

    return wrap


def _refused_response(request, response):
    response.success = False
    response.message = "internal error while answering (see the node's log)"
    return response


def _refused_parameters(changes) -> SetParametersResult:
    return SetParametersResult(successful=False, reason="internal error while checking the change (see the node's log)")


class IgllmNode(LifecycleNode):
    def __init__(self, node_name: str = "igllm_node", model_loader=ModelHost.load, **kwargs):
        super().__init__(node_name, **kwargs)
        params.declare(self)
        self.stats = NodeStats()
        self._state = "unconfigured"
        self._load_model = model_loader  # (path, device, dtype, torch_threads) -> ModelHost
        self._model: ModelHost | None = None
        self._model_error = ""  # why the last configure failed
        self._model_lock = threading.Lock()  # one inference at a time (worker and service)
        self._frames = LatestFrame()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._enabled = True
        self._camera_info: pinhole.Intrinsics | None = None
        self._latest: Frame | None = None  # newest valid frame, for the reconstruct service
        self._last_stamp_ns: int | None = None
        self._warned_at: dict[str, float] = {}
        self._subscriptions_made: list = []
        self._publishers_made: dict = {}
        self._debug = DebugImageComposer(warn=self.get_logger().warning, info=self.get_logger().info)
        self._images_group = MutuallyExclusiveCallbackGroup()
        services_group = MutuallyExclusiveCallbackGroup()  # reconstruct waits for the model
        self.create_service(SetBool, "~/enable", self._guard(self._on_enable, _refused_response))
        self.create_service(Reconstruct, "~/reconstruct", self._guard(self._on_reconstruct, _refused_response),
                            callback_group=services_group)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(self._param("diagnostics_period_s"), self._guard(self._publish_diagnostics),
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.add_on_set_parameters_callback(self._guard(self._on_set_parameters, _refused_parameters))

    def _guard(self, callback, fallback=None):
        return guarded(callback, self._report_internal_error, fallback)

    def lifecycle_state(self) -> str:
        return self._state

    # ----------------------------------------------------------------- lifecycle
    @transition("configuring", "inactive")
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            host = self._load_model(
                self._param("model_path"), self._param("device"), self._param("dtype"), self._param("torch_threads")
            )
        except ModelUnavailable as err:
            self._model_error = str(err)
            self.get_logger().error(f"configure failed, staying unconfigured: {err}")
            return FAILURE
        self._model_error = ""
        choice = host.choice
        self.get_logger().info(
            f"model {host.name} loaded from {host.path} in {host.load_s:.1f} s on {choice.device} "
            f"({choice.dtype}): {choice.reason}"
        )
        with self._model_lock:
            self._model = host
        self._publishers_made = {
            "scene": self.create_lifecycle_publisher(Scene, "scene", qos.SCENE_QOS),
            "markers": self.create_lifecycle_publisher(MarkerArray, "markers", qos.SCENE_QOS),
            "debug_image": self.create_lifecycle_publisher(Image, "debug_image", qos.DEBUG_IMAGE_QOS),
        }
        return SUCCESS

    @transition("activating", "active")
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        image_qos = qos.image_qos(self._param("image_reliability"), self._param("image_depth"))
        info_qos = qos.image_qos(self._param("image_reliability"), 5)
        group, g = self._images_group, self._guard
        self._subscriptions_made = [
            self.create_subscription(Image, "image", g(self._on_image), image_qos, callback_group=group),
            self.create_subscription(CameraInfo, "camera_info", g(self._on_camera_info), info_qos, callback_group=group),
        ]
        if self._param("use_compressed"):
            self._subscriptions_made.append(self.create_subscription(
                CompressedImage, "image/compressed", g(self._on_compressed), image_qos, callback_group=group))
        self._start_worker()
        self.stats.streaming_started()
        self.get_logger().info(
            f"active: reading {self.resolve_topic_name('image')} ({self._param('image_reliability')}, "
            f"depth {self._param('image_depth')})"
        )
        return super().on_activate(state)

    @transition("deactivating", "inactive")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        return super().on_deactivate(state)

    @transition("cleaningup", "unconfigured")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    @transition("shuttingdown", "finalized")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._release()
        return SUCCESS

    @transition("errorprocessing", "unconfigured", failed="finalized")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in {state.label}: stopping and releasing the model")
        self._stop_streaming()
        self._release()
        return SUCCESS

    def destroy_node(self) -> None:
        self._stop_streaming()
        self._debug.close()
        super().destroy_node()

    def _stop_streaming(self) -> None:
        for sub in self._subscriptions_made:
            self.destroy_subscription(sub)
        self._subscriptions_made = []
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self._frames.clear()

    def _release(self) -> None:
        for pub in self._publishers_made.values():
            self.destroy_lifecycle_publisher(pub)
        self._publishers_made = {}
        with self._model_lock:
            if self._model is not None:
                self._model.close()
                self._model = None

    # ----------------------------------------------------------------- inputs
    def _on_image(self, msg: Image) -> None:
        self._accept(msg, compressed=False)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, compressed=True)

    def _accept(self, msg, compressed: bool) -> None:
        self.stats.image_received()
        try:
            if compressed:
                if len(msg.data) == 0:
                    raise ImageError("empty", "empty compressed image")
            else:
                check_image(msg, self._param("max_image_pixels"))
                self._view_limits().check_image(int(msg.width), int(msg.height))
        except ImageError as err:
            self._bad_input(err.kind, str(err))
            return
        now_ns = self.get_clock().now().nanoseconds
        frame = Frame(msg, compressed, now_ns, time.monotonic(), self._check_stamp(msg.header.stamp, now_ns))
        self._latest = frame
        if self._enabled and self._frames.put(frame):
            self.stats.frame_dropped()

    def _check_stamp(self, stamp, now_ns: int) -> bool:
        """Whether the stamp can be used for latency: not in the future. Counts the future
        and backward jumps."""
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        if stamp_ns > now_ns:
            self.stats.stamp_in_future()
            self._warn_throttled("stamp_in_future", f"image stamped {(stamp_ns - now_ns) / 1e9:.3f} s in the future "
                                 "(clocks out of sync?): its latency counts from its arrival")
            return False
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            self.stats.stamp_jumped_back()
            self.get_logger().warning(
                f"image stamps went back by {(self._last_stamp_ns - stamp_ns) / 1e9:.3f} s "
                "(camera restarted or bag looped?); carrying on with the new images"
            )
        self._last_stamp_ns = stamp_ns
        return True

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = pinhole.from_camera_info(msg)
        except ValueError as err:
            self._bad_input("bad_camera_info", f"camera_info ignored: {err}")
            return
        if any(abs(d) > 1e-9 for d in msg.d):
            self._warn_once(
                "distortion",
                "camera_info has lens distortion coefficients, which the node does not undo: "
                "feed it rectified images (image_rect) for accurate poses",
            )
        self._camera_info = camera

    def _intrinsics_for(self, width: int, height: int) -> pinhole.Intrinsics:
        camera = self._camera_info
        if camera is not None:
            if (camera.width, camera.height) != (width, height):
                self._warn_once(
                    f"scaled {camera.width}x{camera.height}->{width}x{height}",
                    f"camera_info is for {camera.width}x{camera.height} but the image is {width}x{height}: "
                    "scaling the intrinsics",
                )
                return camera.scaled_to(width, height)
            return camera
        self._warn_once(
            "no camera_info",
            f"no camera_info on {self.resolve_topic_name('camera_info')} yet: using the intrinsics from "
            "parameters fx, fy, cx, cy (0/-1: the pinned camera model) until one arrives",
        )
        p = self._param
        return pinhole.fallback_intrinsics(width, height, p("fx"), p("fy"), p("cx"), p("cy"))

    def _view_limits(self) -> pinhole.ViewLimits:
        p = self._param
        return pinhole.ViewLimits(p("min_image_side_px"), p("max_aspect_ratio"), p("max_view_scale"),
                                  p("min_view_overlap"))

    # ----------------------------------------------------------------- the model
    def _start_worker(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="igllm_inference", daemon=True)
        self._worker.start()

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            frame = self._frames.take(timeout=0.2)
            if frame is None or self._stop.is_set():
                continue
            try:
                self._process(frame)
            except ImageError as err:
                self._bad_input(err.kind, str(err))
            except NotReady:
                pass
            except Exception:  # noqa: BLE001 - keep the node alive; the trace says what to fix
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    break
                self._report_internal_error("processing a frame", traceback.format_exc())

    def _process(self, frame: Frame) -> None:
        scene_msg, pinned_rgb, reconstruction = self._reconstruct(frame)
        self._publishers_made["scene"].publish(scene_msg)
        self._publishers_made["markers"].publish(scene_markers(scene_msg))
        self.stats.scene_published(scene_msg.latency_ms, scene_msg.inference_time_ms)
        debug_pub = self._publishers_made["debug_image"]
        if self._param("publish_debug_image") and debug_pub.get_subscription_count() > 0:
            picture = self._debug.compose(pinned_rgb, scene_msg, reconstruction.scene, self._param("debug_rerender"))
            debug_pub.publish(rgb_image_msg(picture, scene_msg.header))

    def _reconstruct(self, frame: Frame):
        """(Scene message, model-view image, Reconstruction) for one frame. Sizes and
        intrinsics are checked before anything is allocated for the model's view."""
        start = time.perf_counter()
        max_pixels = self._param("max_image_pixels")
        msg = frame.msg
        rgb = decode_compressed(msg.data, max_pixels) if frame.compressed else image_to_rgb(msg, max_pixels)
        height, width = rgb.shape[:2]
        limits = self._view_limits()
        limits.check_image(width, height)
        camera = self._intrinsics_for(width, height)
        with self._model_lock:
            host = self._model
            if host is None:
                raise NotReady("no model is loaded")
            out_w, out_h = host.input_size
            limits.check_view(camera, out_w, out_h)
            pinned = pinhole.to_pinned(rgb, camera, out_w, out_h)
            preprocessed = time.perf_counter()
            reconstruction = host.reconstruct(pinned, self._param("max_objects"))
            model_name = host.name
        inferred = time.perf_counter()
        header = Header(stamp=msg.header.stamp, frame_id=self._param("frame_id") or msg.header.frame_id)
        scene_msg = scene_to_msg(reconstruction.scene, header, program=reconstruction.program, model=model_name,
                                 min_confidence=self._param("confidence_threshold"))
        scene_msg.preprocess_time_ms = (preprocessed - start) * 1000.0
        scene_msg.inference_time_ms = (inferred - preprocessed) * 1000.0
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        # Unstamped or stamped in the future: latency from arrival, never negative.
        since_ns = stamp_ns if stamp_ns > 0 and frame.stamp_usable else frame.received_ns
        scene_msg.latency_ms = (self.get_clock().now().nanoseconds - since_ns) / 1e6
        return scene_msg, pinned, reconstruction

    # ----------------------------------------------------------------- services
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._enabled = bool(request.data)
        if self._enabled:
            self.stats.streaming_started()
        else:
            self._frames.clear()
        response.success = True
        response.message = "processing images" if self._enabled else "ignoring images (reconstruct still answers)"
        self.get_logger().info(f"enable={self._enabled}: {response.message}")
        return response

    def _on_reconstruct(self, request: Reconstruct.Request, response: Reconstruct.Response) -> Reconstruct.Response:
        state = self._state
        if state != "active":
            response.success = False
            if self._model_error:
                response.message = f"node is {state}: model not loaded ({self._model_error})"
            elif state == "unconfigured":
                response.message = "node is unconfigured: configure it (loads the model), then activate it"
            else:
                response.message = f"node is {state}: activate it first"
            return response
        frame, problem = self._request_frame(request.image)
        if frame is None:
            response.success, response.message = False, problem
            return response
        try:
            response.scene = self._reconstruct(frame)[0]
        except ImageError as err:
            self._bad_input(err.kind, str(err))
            response.success, response.message = False, f"bad image ({err.kind}): {err}"
            return response
        except NotReady as err:
            response.success, response.message = False, str(err)
            return response
        response.success, response.message = True, ""
        return response

    def _request_frame(self, image: Image) -> tuple[Frame | None, str]:
        """The frame a reconstruct request asks about (its image, or the latest one), or
        None and why not."""
        if image.width == 0 or image.height == 0:
            frame = self._latest
            if frame is None:
                return None, f"no image received yet on {self.resolve_topic_name('image')}"
            age = time.monotonic() - frame.received_monotonic
            max_age = self._param("latest_image_max_age_s")
            if age > max_age:
                return None, f"the latest image is {age:.1f} s old (latest_image_max_age_s={max_age})"
            return frame, ""
        now_ns = self.get_clock().now().nanoseconds
        stamp_ns = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
        return Frame(image, False, now_ns, time.monotonic(), stamp_ns <= now_ns), ""

    # ----------------------------------------------------------------- parameters
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, changes) -> SetParametersResult:
        state = self._state
        for change in changes:
            spec = params.BY_NAME.get(change.name)
            if spec is None:
                continue
            reason = params.check_value(change.name, change.value)
            if reason is None and spec.applies == params.UNCONFIGURED and self._model is not None:
                reason = (
                    f"{change.name} is read when the model loads and a model is loaded ({state}): "
                    "deactivate and clean up the node, set it, then configure again"
                )
            if reason is None and spec.applies == params.INACTIVE and state == "active":
                reason = f"{change.name} sets up the subscriptions: deactivate the node, set it, then activate"
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- diagnostics
    def _bad_input(self, kind: str, text: str) -> None:
        self.stats.bad_input(kind)
        count = self.stats.bad_inputs[kind]
        self._warn_throttled(kind, f"{text} [bad input '{kind}', {count} so far]")

    def _report_internal_error(self, where: str, text: str) -> None:
        # Counted and throttled per place, so a fault in the diagnostics timer or the
        # service is logged even while every frame fails.
        self.stats.bad_input("internal_error", where)
        count = self.stats.internal_errors_in[where]
        self._warn_throttled(f"internal_error:{where}",
                             f"{where} failed:\n{text} [bad input 'internal_error', {count} so far in {where}]")

    def _warn_throttled(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._warned_at.get(key, -1e9) >= WARN_EVERY_S:  # throttled per key
            self._warned_at[key] = now
            self.get_logger().warning(text)

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned_at:
            self._warned_at[key] = time.monotonic()
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        state = self._state
        snap = self.stats.snapshot()
        host = self._model
        if state != "active":
            level = DiagnosticStatus.ERROR if self._model_error else DiagnosticStatus.WARN
            message = f"{state}" + (f": {self._model_error}" if self._model_error else "")
        elif not self._enabled:
            level, message = DiagnosticStatus.WARN, "disabled by ~/enable"
        else:
            policy = HealthPolicy(self._param("camera_timeout_s"), self._param("no_scene_error_s"))
            level, message = policy.level(snap)
        values = {
            "state": state,
            "enabled": self._enabled,
            "model": host.name if host else "",
            "model_path": str(host.path) if host else self._param("model_path"),
            "device": host.choice.device if host else "",
            "dtype": host.choice.dtype if host else "",
            "device_reason": host.choice.reason if host else "",
            "model_error": self._model_error,
        }
        values.update(flatten(snap))
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        name = f"{self.get_name()}: IG-LLM scene reconstruction"
        array.status = [status_message(name, values["device"] or "none", level, message, values)]
        self._diagnostics_pub.publish(array)


def main(args=None, model_loader=ModelHost.load) -> None:
    """Run the node until interrupted. model_loader loads the model at configure (tests
    pass their own, e.g. one that wraps the model in a slower test double)."""
    rclpy.init(args=args)
    node = IgllmNode(model_loader=model_loader)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
