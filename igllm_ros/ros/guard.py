"""One guard for every callback the executor runs: no exception ever reaches it.

rclpy's executors re-raise a callback's exception out of spin(), which ends the process.
A node that must never die on input wraps each callback so that an exception is reported
(counted and logged by the node) and the callback returns a safe answer instead.
"""
from __future__ import annotations

import functools
import sys
import traceback


def guarded(callback, report, fallback=None):
    """callback, but an Exception inside it calls report(where, traceback text) and returns
    fallback(*args) (None without one). KeyboardInterrupt and SystemExit still go through."""
    where = getattr(callback, "__name__", repr(callback))

    @functools.wraps(callback)
    def run(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception:  # noqa: BLE001 - the point of the guard
            text = traceback.format_exc()
            try:
                report(where, text)
            except Exception:  # noqa: BLE001 - even the report failed: say so and carry on
                print(f"{where} failed and so did its report:\n{text}", file=sys.stderr)
            return None if fallback is None else fallback(*args, **kwargs)

    return run
