"""The in-process virtual transport: a host's `ServoBus` straight onto an `EmulatedBus`'s servos.

    emu = EmulatedBus("feetech", {i: "sts3215" for i in range(1, 7)})
    bus = ServoBus(emu.transport(), "feetech", ARMS["so101"].motors)

No pty and no serving thread: `send()` runs the emulator on the request at once, and each reply is
stamped with the time it would reach the host (the waits the emulator's core yields: wire time, the
servo's Return_Delay_Time, injected delay). `receive()` hands out what has arrived by now, waiting (on
the unplug event, so an unplug wakes it) for the rest up to its timeout, as the tty's read does. So
retries, timeouts and faults behave as over the pty, at a fraction of the CPU. `emu.unplug()` makes the
next (or the current) call fail as a pulled cable would. End-to-end tests of the serial path keep the
pty (`EmulatedBus.start()`).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from hardware.transport import PortError, Transport

if TYPE_CHECKING:
    from hardware.emulator.bus import EmulatedBus


class VirtualTransport(Transport):
    def __init__(self, emulator: EmulatedBus) -> None:
        self.emulator = emulator
        self.name = f"virtual:{emulator.protocol}"
        self._open = False
        self._input = bytearray()  # bytes sent that the emulator has not acted on (a partial packet)
        self._replies: deque[tuple[float, bytes]] = deque()  # (when it reaches the host, its bytes)

    def open(self) -> None:
        if self.emulator.closed:
            raise PortError("the emulated bus is unplugged")
        self._open = True
        self._input.clear()
        self._replies.clear()

    def close(self) -> None:
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def send(self, packet: bytes) -> None:
        self._check()
        now = time.perf_counter()
        while self._replies and self._replies[0][0] <= now:  # stale input that has arrived: dropped
            self._replies.popleft()
        self._input += packet
        at = now
        for wait_s, reply in self.emulator._serve_input(self._input):
            at += wait_s
            if reply is not None:
                self._replies.append((at, reply))
                self.emulator._count_reply()

    def receive(self, n: int, timeout_s: float) -> bytes:
        self._check()
        deadline = time.perf_counter() + timeout_s
        out = bytearray()
        while True:
            now = time.perf_counter()
            while self._replies and self._replies[0][0] <= now and len(out) < n:
                _, reply = self._replies.popleft()
                take = n - len(out)
                out += reply[:take]
                if len(reply) > take:  # the rest stays for the next read
                    self._replies.appendleft((now, reply[take:]))
            if len(out) >= n or now >= deadline:
                return bytes(out)
            # One wake-up, when the n-th byte is in (as a tty's VMIN), not one per reply.
            wake, missing = deadline, n - len(out)
            for at, reply in self._replies:
                missing -= len(reply)
                if missing <= 0:
                    wake = min(deadline, at)
                    break
            if self.emulator.wait_closed(max(0.0, wake - now)):
                self._check()

    def _check(self) -> None:
        if not self._open:
            raise PortError("the port is closed")
        if self.emulator.closed:
            self._open = False
            raise PortError("the emulated bus is unplugged")
