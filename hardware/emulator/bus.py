"""An emulated servo bus: the host's driver talks to it as to a USB adapter, over a pseudo-terminal or
in-process.

    bus = EmulatedBus("feetech", {i: "sts3215" for i in range(1, 7)}, faults=Faults(corrupt=0.05))
    port = bus.start()        # "/dev/pts/N", served from a background thread
    ...                       # ServoBus(port, "feetech", motors).connect()
    bus.unplug()              # the cable is pulled: the host's next read or write fails
    bus.stop()

    ServoBus(bus.transport(), "feetech", motors)   # no pty, no thread: the fast path for tests

Both ways share one core (`_serve_input`): the pty's thread sleeps through the waits it yields, the
in-process transport (hardware.emulator.transport) schedules the replies at those times instead.

The serving thread blocks in select() on the pty master and on a wake-up pipe, so it costs nothing while
idle; dynamics are computed when a packet arrives. The emulator keeps its own handle on the slave side
open, so the master never sees a hang-up when a client closes the port and reopens it. No baud-rate
delay is modelled (a pty has none); each reply waits for its servo's Return_Delay_Time, and the replies
to a request for the fault delay.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import threading
import time
import tty
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hardware.codecs import codec
from hardware.emulator.faults import FaultCounts, FaultInjector, Faults
from hardware.emulator.responder import Responder
from hardware.emulator.servo import EmulatedServo
from hardware.tables import model_table

if TYPE_CHECKING:
    from hardware.emulator.transport import VirtualTransport


@dataclass
class EmulatorStats:
    requests: int = 0  # instruction packets that passed their checksum
    bad_packets: int = 0  # packet-shaped input whose checksum failed
    noise_bytes: int = 0  # input bytes skipped while looking for a packet
    replies: int = 0  # status packets sent (after faults)
    faults: FaultCounts | None = None


class EmulatedBus:
    """Servos of one protocol on one emulated port. Use `start()`/`stop()` or `with EmulatedBus(...)`."""

    def __init__(
        self,
        protocol: str,
        servos: Mapping[int, str],
        *,
        faults: Faults | None = None,
        time_constant_s: float = 0.05,
        dynamics: str = "first_order",
        positions: Mapping[int, float] | None = None,
        baudrate: int | None = None,
    ) -> None:
        self.codec = codec(protocol)
        for model in servos.values():
            model_table(model, protocol)
        positions = positions or {}
        self.protocol = protocol
        self.faults = faults or Faults()
        self._injector = FaultInjector(self.faults)
        # Wire time: with a baud rate, a request is acted on only once its last byte would have arrived
        # and each reply leaves after its bytes would have been sent (10 bits a byte), as on a real bus;
        # None: a pty's instant transfers.
        self.byte_s = None if baudrate is None else 10.0 / float(baudrate)
        self._responder = Responder(
            self.codec,
            [
                EmulatedServo(
                    id_,
                    model,
                    time_constant_s=time_constant_s,
                    dynamics=dynamics,
                    position=positions.get(id_, 2048.0),
                )
                for id_, model in sorted(servos.items())
            ],
        )
        self._stats = EmulatorStats()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._serving = threading.Lock()  # the responder and the fault injector are not thread-safe
        self.port: str | None = None

    # --- life cycle --------------------------------------------------------------------------------
    def start(self) -> str:
        """Open the pty and serve it from a background thread; returns the device path for the host."""
        if self._thread is not None:
            raise RuntimeError("EmulatedBus.start() called twice")
        master, slave = os.openpty()
        for fd in (master, slave):
            tty.setraw(fd)  # no echo, no line editing, no CR/LF translation: bytes in, bytes out
        os.set_blocking(master, False)  # a reply nobody reads must never block the serving thread
        self._master, self._slave = master, slave
        self._wake_r, self._wake_w = os.pipe()
        self.port = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name=f"emulated-bus {self.port}", daemon=True)
        self._thread.start()
        return self.port

    def transport(self) -> VirtualTransport:
        """An in-process link to these servos for a host's `ServoBus`: no pty, no thread."""
        from hardware.emulator.transport import VirtualTransport

        return VirtualTransport(self)

    def unplug(self) -> None:
        """Close the pty as a pulled cable would: the host's next (or current) read or write fails (on
        the in-process transport too)."""
        if self._thread is None:
            self._closed.set()
            return
        if self._closed.is_set():
            return
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5.0)

    def stop(self) -> None:
        """Stop serving and release the pty (same effect on the host as unplugging)."""
        self.unplug()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the bus was unplugged or stopped; True if it was."""
        return self._closed.wait(timeout)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> EmulatedBus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- access ------------------------------------------------------------------------------------
    def servo(self, id: int) -> EmulatedServo:
        try:
            return self._responder.servos[id]
        except KeyError:
            raise KeyError(f"no emulated servo with id {id}; ids: {sorted(self._responder.servos)}") from None

    def set_faults(self, faults: Faults) -> None:
        """Change the faults while serving (a line that goes bad, or recovers)."""
        self.faults = faults
        self._injector.reset(faults)

    @property
    def ids(self) -> list[int]:
        return sorted(self._responder.servos)

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of what was served and what faults were injected."""
        counts = self._injector.counts
        return EmulatorStats(
            self._stats.requests,
            self._stats.bad_packets,
            self._stats.noise_bytes,
            self._stats.replies,
            FaultCounts(counts.corrupted, counts.garbage, counts.dropped, counts.delayed),
        )

    # --- serving thread ----------------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._master is not None
        master, buf = self._master, bytearray()
        try:
            while True:
                ready, _, _ = select.select([master, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    chunk = os.read(master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # the pty went away under us
                buf += chunk
                self._handle_input(buf)
        finally:
            self._close_pty()

    def _handle_input(self, buf: bytearray) -> None:
        for wait_s, packet in self._serve_input(buf):
            if wait_s > 0:
                _sleep(wait_s)  # blocks this thread only, like a servo that takes its time
            if packet is not None:
                self._send(packet)

    def _serve_input(self, buf: bytearray) -> Iterator[tuple[float, bytes | None]]:
        """Act on the complete requests in `buf` (consumed from it): yields (seconds to wait first, the
        packet to send then, or None for a wait alone), in order. Wire time with a baud rate: a request
        is acted on only once its last byte would have arrived (the consumer has waited when the next
        step runs), each reply leaves after its servo's Return_Delay_Time and its own bytes."""
        with self._serving:
            while buf:
                scan = self.codec.scan(buf)
                self._stats.noise_bytes += scan.skipped
                if scan.error:
                    self._stats.bad_packets += 1
                del buf[: scan.consumed]
                if scan.frame is not None:
                    self._stats.requests += 1
                    if self.byte_s is not None:
                        yield scan.consumed * self.byte_s, None  # the request's own time on the wire
                    replies = self._responder.handle(scan.frame)
                    delay = self._injector.delay_s() if replies else 0.0
                    for reply in replies:
                        packet = self._injector.apply(reply.packet)
                        delay += reply.servo.return_delay_s
                        if self.byte_s is not None and packet is not None:
                            delay += len(packet) * self.byte_s
                        if packet is None:
                            continue
                        yield delay, packet
                        delay = 0.0
                if scan.need:
                    return

    def _send(self, packet: bytes) -> None:
        assert self._master is not None and self._slave is not None
        for attempt in range(2):
            try:
                written = os.write(self._master, packet)
                packet = packet[written:]
                if not packet:
                    self._count_reply()
                    return
            except BlockingIOError:
                pass
            if attempt == 0:  # the host has not read what we sent before: drop that stale input
                termios.tcflush(self._slave, termios.TCIFLUSH)

    def _count_reply(self) -> None:
        self._stats.replies += 1

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._closed.set()


def _sleep(seconds: float) -> None:
    """Sleep to within a few microseconds: time.sleep for the bulk, then a short spin (wire times are
    tens to hundreds of microseconds, below the scheduler's resolution). Only the emulator spins."""
    end = time.perf_counter() + seconds
    if seconds > 0.0003:
        time.sleep(seconds - 0.0002)
    while time.perf_counter() < end:
        pass
