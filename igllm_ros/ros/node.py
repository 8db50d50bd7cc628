"""igllm_node: a managed (lifecycle) node that turns camera images into Scene messages.

Threads: the executor's threads run the callbacks, which only check an image's header and
drop it into a one-frame mailbox (replacing, and counting as dropped, any frame not yet
taken). One worker thread takes the newest frame, runs the model and publishes. So the
output is always about the newest image and latency does not grow with the camera rate.

Lifecycle: configure loads the model (a missing or corrupt model fails the transition and
the node stays unconfigured, with the reason in the log and on /diagnostics); activate
subscribes and starts the worker; deactivate stops both; cleanup releases the model.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import SetBool
from visualization_msgs.msg import MarkerArray

from igllm_ros.msg import Scene
from igllm_ros.ros import params, qos
from igllm_ros.ros.conversions import scene_to_msg
from igllm_ros.ros.debug_image import draw_overlay, enlarged, side_by_side
from igllm_ros.ros.diagnostics import NodeStats, flatten, status_message
from igllm_ros.ros.image_conversion import ImageError, check_image, decode_compressed, image_to_rgb
from igllm_ros.ros.markers import scene_markers
from igllm_ros.ros.model_host import ModelHost, ModelUnavailable
from igllm_ros.ros.pinhole import Intrinsics, to_pinned
from igllm_ros.srv import Reconstruct

WARN_EVERY_S = 5.0


@dataclass(frozen=True)
class Frame:
    msg: object  # sensor_msgs/Image or CompressedImage
    compressed: bool
    received_ns: int  # node clock at arrival
    received_monotonic: float


class LatestFrame:
    """A one-frame mailbox: put() replaces what is there, take() waits for a frame."""

    def __init__(self):
        self._cond = threading.Condition()
        self._frame: Frame | None = None

    def put(self, frame: Frame) -> bool:
        """Store the frame; True when it replaced one nobody had taken (a dropped frame)."""
        with self._cond:
            replaced = self._frame is not None
            self._frame = frame
            self._cond.notify()
        return replaced

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            if self._frame is None:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
        return frame

    def clear(self) -> None:
        with self._cond:
            self._frame = None


class NotReady(RuntimeError):
    pass


class IgllmNode(LifecycleNode):
    def __init__(self, node_name: str = "igllm_node", **kwargs):
        super().__init__(node_name, **kwargs)
        params.declare(self)
        self.stats = NodeStats()
        self._model: ModelHost | None = None
        self._model_error = ""  # why the last configure failed
        self._model_lock = threading.Lock()  # one inference at a time (worker and service)
        self._frames = LatestFrame()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._enabled = True
        self._camera_info: Intrinsics | None = None
        self._latest: Frame | None = None  # newest valid frame, for the reconstruct service
        self._last_stamp_ns: int | None = None
        self._warned_at: dict[str, float] = {}
        self._subscriptions_made: list = []
        self._publishers_made: dict = {}
        self._images_group = MutuallyExclusiveCallbackGroup()
        services_group = MutuallyExclusiveCallbackGroup()  # reconstruct waits for the model
        self.create_service(SetBool, "~/enable", self._on_enable)
        self.create_service(Reconstruct, "~/reconstruct", self._on_reconstruct, callback_group=services_group)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(
            self._param("diagnostics_period_s"), self._publish_diagnostics, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            host = ModelHost.load(
                self._param("model_path"), self._param("device"), self._param("dtype"), self._param("torch_threads")
            )
        except ModelUnavailable as err:
            self._model_error = str(err)
            self.get_logger().error(f"configure failed, staying unconfigured: {err}")
            return TransitionCallbackReturn.FAILURE
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
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        image_qos = qos.image_qos(self._param("image_reliability"), self._param("image_depth"))
        info_qos = qos.image_qos(self._param("image_reliability"), 5)
        group = self._images_group
        self._subscriptions_made = [
            self.create_subscription(Image, "image", self._on_image, image_qos, callback_group=group),
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, info_qos, callback_group=group),
        ]
        if self._param("use_compressed"):
            self._subscriptions_made.append(
                self.create_subscription(
                    CompressedImage, "image/compressed", self._on_compressed, image_qos, callback_group=group
                )
            )
        self._start_worker()
        self.get_logger().info(
            f"active: reading {self.resolve_topic_name('image')} ({self._param('image_reliability')}, "
            f"depth {self._param('image_depth')})"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_streaming()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in {state.label}: stopping and releasing the model")
        self._stop_streaming()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def lifecycle_state(self) -> str:
        return self._state_machine.current_state[1]

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
        except ImageError as err:
            self._bad_input(err.kind, str(err))
            return
        self._note_stamp(msg.header.stamp)
        frame = Frame(msg, compressed, self.get_clock().now().nanoseconds, time.monotonic())
        self._latest = frame
        if self._enabled and self._frames.put(frame):
            self.stats.frame_dropped()

    def _note_stamp(self, stamp) -> None:
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        if self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns:
            self.stats.stamp_jumped_back()
            self.get_logger().warning(
                f"image stamps went back by {(self._last_stamp_ns - stamp_ns) / 1e9:.3f} s "
                "(camera restarted or bag looped?); carrying on with the new images"
            )
        self._last_stamp_ns = stamp_ns

    def _on_camera_info(self, msg: CameraInfo) -> None:
        camera = Intrinsics(int(msg.width), int(msg.height), msg.k[0], msg.k[4], msg.k[2], msg.k[5])
        roi = msg.roi
        if roi.width > 0 and roi.height > 0:  # the image is this region of the full sensor
            camera = Intrinsics(roi.width, roi.height, camera.fx, camera.fy, camera.cx - roi.x_offset, camera.cy - roi.y_offset)
        bx, by = max(1, msg.binning_x), max(1, msg.binning_y)
        if (bx, by) != (1, 1):
            camera = camera.scaled_to(camera.width // bx, camera.height // by)
        problem = camera.problem()
        if problem:
            self._bad_input("bad_camera_info", f"camera_info ignored: {problem}")
            return
        if any(abs(d) > 1e-9 for d in msg.d):
            self._warn_once(
                "distortion",
                "camera_info has lens distortion coefficients, which the node does not undo: "
                "feed it rectified images (image_rect) for accurate poses",
            )
        self._camera_info = camera

    def _intrinsics_for(self, width: int, height: int) -> Intrinsics:
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
        pinned = Intrinsics.pinned(width, height)
        fx = self._param("fx") or pinned.fx
        fy = self._param("fy") or fx
        cx = self._param("cx") if self._param("cx") >= 0 else pinned.cx
        cy = self._param("cy") if self._param("cy") >= 0 else pinned.cy
        return Intrinsics(width, height, fx, fy, cx, cy)

    # ----------------------------------------------------------------- the model
    def _start_worker(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_worker, name="igllm_inference", daemon=True)
        self._worker.start()

    def _run_worker(self) -> None:
        renderer = None  # an OpenGL context belongs to the thread that made it
        while not self._stop.is_set():
            frame = self._frames.take(timeout=0.2)
            if frame is None or self._stop.is_set():
                continue
            try:
                scene_msg, pinned_rgb, reconstruction = self._reconstruct(frame)
                self._publishers_made["scene"].publish(scene_msg)
                self._publishers_made["markers"].publish(scene_markers(scene_msg))
                debug_pub = self._publishers_made["debug_image"]
                if self._param("publish_debug_image") and debug_pub.get_subscription_count() > 0:
                    renderer = self._publish_debug_image(debug_pub, scene_msg, pinned_rgb, reconstruction, renderer)
                self.stats.scene_published(scene_msg.latency_ms, scene_msg.inference_time_ms)
            except ImageError as err:
                self._bad_input(err.kind, str(err))
            except NotReady:
                pass
            except Exception:  # keep the node alive; the trace says what to fix
                if self._stop.is_set() or not rclpy.ok(context=self.context):
                    break
                self._bad_input("internal_error", f"processing a frame failed:\n{traceback.format_exc()}")
        release = getattr(renderer, "release", None)
        if callable(release):  # free the GL context in the thread that made it
            release()

    def _reconstruct(self, frame: Frame):
        """(Scene message, model-view image, Reconstruction) for one frame."""
        start = time.perf_counter()
        max_pixels = self._param("max_image_pixels")
        msg = frame.msg
        rgb = decode_compressed(msg.data, max_pixels) if frame.compressed else image_to_rgb(msg, max_pixels)
        height, width = rgb.shape[:2]
        camera = self._intrinsics_for(width, height)
        with self._model_lock:
            host = self._model
            if host is None:
                raise NotReady("no model is loaded")
            out_w, out_h = host.input_size
            pinned = to_pinned(rgb, camera, out_w, out_h)
            preprocessed = time.perf_counter()
            reconstruction = host.reconstruct(pinned, self._param("max_objects"))
            delay_ms = self._param("inference_delay_ms")
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            model_name = host.name
        inferred = time.perf_counter()
        header = Header(stamp=msg.header.stamp, frame_id=self._param("frame_id") or msg.header.frame_id)
        scene_msg = scene_to_msg(
            reconstruction.scene,
            header,
            program=reconstruction.program,
            model=model_name,
            min_confidence=self._param("confidence_threshold"),
        )
        scene_msg.preprocess_time_ms = (preprocessed - start) * 1000.0
        scene_msg.inference_time_ms = (inferred - preprocessed) * 1000.0
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        since_ns = stamp_ns if stamp_ns > 0 else frame.received_ns  # unstamped: from arrival
        scene_msg.latency_ms = (self.get_clock().now().nanoseconds - since_ns) / 1e6
        return scene_msg, pinned, reconstruction

    def _publish_debug_image(self, pub, scene_msg, pinned_rgb, reconstruction, renderer):
        view = enlarged(pinned_rgb)  # the pinned camera scales with the image: overlay stays exact
        height, width = view.shape[:2]
        picture = draw_overlay(view, scene_msg, Intrinsics.pinned(width, height))
        if self._param("debug_rerender"):
            if renderer is None:
                renderer = self._make_renderer(width, height)
            if renderer:
                picture = side_by_side(picture, renderer.render(reconstruction.scene).rgb)
        out = Image()
        out.header = scene_msg.header
        out.height, out.width = picture.shape[:2]
        out.encoding, out.step = "rgb8", picture.shape[1] * 3
        out.data = picture.tobytes()
        pub.publish(out)
        return renderer

    def _make_renderer(self, width: int, height: int):
        try:
            from igllm_ros.data.render import SceneRenderer

            return SceneRenderer(width=width, height=height)
        except Exception as err:  # no OpenGL here: the overlay alone still helps
            self.get_logger().warning(f"debug_rerender off: cannot create the renderer ({err})")
            return False

    # ----------------------------------------------------------------- services
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self._enabled = bool(request.data)
        if not self._enabled:
            self._frames.clear()
        response.success = True
        response.message = "processing images" if self._enabled else "ignoring images (reconstruct still answers)"
        self.get_logger().info(f"enable={self._enabled}: {response.message}")
        return response

    def _on_reconstruct(self, request: Reconstruct.Request, response: Reconstruct.Response) -> Reconstruct.Response:
        state = self.lifecycle_state()
        if state != "active":
            response.success = False
            response.message = f"node is {state}: " + (
                f"model not loaded ({self._model_error})" if self._model_error else "activate it first"
            )
            return response
        image = request.image
        if image.width == 0 or image.height == 0:
            frame = self._latest
            if frame is None:
                response.success, response.message = False, f"no image received yet on {self.resolve_topic_name('image')}"
                return response
            age = time.monotonic() - frame.received_monotonic
            if age > self._param("latest_image_max_age_s"):
                response.success = False
                response.message = f"the latest image is {age:.1f} s old (latest_image_max_age_s={self._param('latest_image_max_age_s')})"
                return response
        else:
            frame = Frame(image, False, self.get_clock().now().nanoseconds, time.monotonic())
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

    # ----------------------------------------------------------------- parameters
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _on_set_parameters(self, changes) -> SetParametersResult:
        state = self.lifecycle_state()
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
        now = time.monotonic()
        if now - self._warned_at.get(kind, -1e9) >= WARN_EVERY_S:  # throttled per kind
            self._warned_at[kind] = now
            count = self.stats.bad_inputs[kind]
            self.get_logger().warning(f"{text} [bad input '{kind}', {count} so far]")

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned_at:
            self._warned_at[key] = time.monotonic()
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        state = self.lifecycle_state()
        snap = self.stats.snapshot()
        host = self._model
        level, message = DiagnosticStatus.OK, "running"
        silent = snap["seconds_since_last_image"]
        if state != "active":
            level = DiagnosticStatus.ERROR if self._model_error else DiagnosticStatus.WARN
            message = f"{state}" + (f": {self._model_error}" if self._model_error else "")
        elif not self._enabled:
            level, message = DiagnosticStatus.WARN, "disabled by ~/enable"
        elif silent is None or silent > self._param("camera_timeout_s"):
            level, message = DiagnosticStatus.WARN, "no images" if silent is None else f"no image for {silent:.1f} s"
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
        array.status = [
            status_message(f"{self.get_name()}: IG-LLM scene reconstruction", values["device"] or "none", level, message, values)
        ]
        self._diagnostics_pub.publish(array)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = IgllmNode()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._stop_streaming()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
