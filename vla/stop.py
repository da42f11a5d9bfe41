"""Graceful stop on SIGINT/SIGTERM for loops that must finish their step (an episode, a checkpoint)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any


class GracefulStop:
    """First SIGINT/SIGTERM asks the loop to stop at the next step; a second SIGINT aborts at once.

    Used as a context manager around a recording or control loop so that an episode being saved is never
    cut in half and the dataset is always finalised.
    """

    def __init__(self, message: str = "stopping after this step (Ctrl-C again to abort)") -> None:
        self.message = message
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._event.set()
        print(f"\n{signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
