"""Keys pressed in the terminal, without Enter (cbreak mode while open; the terminal is restored on close).

Used by keyboard teleoperation (policies.teleop) and by the episode controls of the session driver:
    n  end the episode now and keep it      x  drop the episode under way and record it again
    Esc / q  end the session after this episode (kept)
"""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol, runtime_checkable


class TerminalKeys:
    def __init__(self) -> None:
        self._saved: Any = None
        self.active = sys.stdin.isatty()
        if self.active:
            import termios
            import tty

            self._saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setcbreak(sys.stdin.fileno())

    def __call__(self) -> list[str]:
        """Every key pressed since the last call (none when stdin is not a terminal)."""
        if not self.active:
            return []
        keys: list[str] = []
        fd = sys.stdin.fileno()
        while select.select([fd], [], [], 0)[0]:
            ch = os.read(fd, 1).decode(errors="ignore")
            if not ch:
                break
            keys.append(ch)
        return keys

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None


@runtime_checkable
class KeyReadingPolicy(Protocol):
    """A policy that reads the terminal's keys itself (keyboard teleop): the session then leaves the keys
    to it and offers no episode controls."""

    keys: Callable[[], Iterable[str]]


class EpisodeControls:
    """The session's keys: `poll()` each tick; `action` is "next", "rerecord", "stop" or None."""

    KEYS: ClassVar[dict[str, str]] = {"n": "next", "x": "rerecord", "q": "stop", "\x1b": "stop"}

    def __init__(self, keys: Callable[[], Iterable[str]] | None = None) -> None:
        self.keys = keys  # a callable returning the keys pressed since its last call; None: no controls
        self.action: str | None = None

    def poll(self) -> bool:
        """True when a control key ended the episode."""
        if self.keys is not None and self.action is None:
            for key in self.keys():
                if key in self.KEYS:
                    self.action = self.KEYS[key]
                    break
        return self.action is not None

    def clear(self) -> None:
        self.action = None
