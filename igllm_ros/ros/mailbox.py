"""A one-frame mailbox between the subscription callbacks and the inference worker."""
from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    msg: object  # sensor_msgs/Image or CompressedImage
    compressed: bool
    received_ns: int  # node clock at arrival
    received_monotonic: float
    stamp_usable: bool = True  # False: stamped in the future, so latency counts from arrival


class LatestFrame:
    """put() replaces what is there, take() waits for a frame."""

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
