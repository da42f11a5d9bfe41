"""Transports: what carries a servo bus's bytes. The bus (hardware.bus.ServoBus) owns transactions,
retries, timeouts and counting; a transport owns only bytes, python-can style:

    SerialTransport("/dev/ttyACM0", 1_000_000)   # a USB adapter, or any pyserial URL (a pty, loop://)
    VirtualTransport(emulated_bus)                # hardware.emulator: the emulator's servos in-process

A transport's contract is four calls: `open()`, `close()` (idempotent; what was written goes out
first), `send(packet)` (drops stale input, then writes) and `receive(n, timeout_s)` (up to n bytes,
waiting at most timeout_s for all of them). A failure of the link itself (cable pulled, adapter gone,
emulator unplugged) raises `PortError`, which the bus turns into `Disconnected`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import termios
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import serial

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 0.1  # a port that cannot take a 30-byte packet in 100 ms is gone
_SERIAL_ERRORS = (OSError, serial.SerialException, termios.error)


class PortError(Exception):
    """The link itself failed; its message says why (the bus names the port and what it was doing)."""


class Transport(ABC):
    """The bytes of one bus. Not thread-safe: the bus calls it under its own lock."""

    name: str  # how messages name the link: the port's path, or the virtual link's name

    @abstractmethod
    def open(self) -> None:
        """Open the link; PortError (why) when it cannot be opened."""

    @abstractmethod
    def close(self) -> None:
        """Close the link (idempotent); bytes already written go out first. Never raises."""

    @property
    @abstractmethod
    def is_open(self) -> bool: ...

    @abstractmethod
    def send(self, packet: bytes) -> None:
        """Drop whatever input is waiting (stale replies), then write the packet."""

    @abstractmethod
    def receive(self, n: int, timeout_s: float) -> bytes:
        """Up to n bytes: returns once n bytes are in or timeout_s has passed, whichever is first."""

    def check_latency(self, margin_s: float) -> None:
        """Warn when the link's own latency eats the bus's timeout margin (nothing to check by default)."""
        return None


@contextlib.contextmanager
def _port_errors() -> Iterator[None]:
    """A serial, OS or termios failure of the port -> PortError with its reason."""
    try:
        yield
    except _SERIAL_ERRORS as e:
        reason = e.args[1] if isinstance(e, termios.error) and len(e.args) == 2 else e
        raise PortError(str(reason)) from e


class SerialTransport(Transport):
    """A pyserial port: a USB adapter, a pseudo-terminal (the pty emulator), or a pyserial URL.

    On a posix tty, reads and writes go straight to the descriptor: select + read with the kernel set to
    wake us only once n bytes are in (termios VMIN, VTIME 0: a tty's poll then reports readable at n
    bytes) rather than once per servo's reply; pyserial's read would also reconfigure the port whenever
    its timeout changes. Together ~half our CPU at 100 Hz."""

    def __init__(self, port: str, baudrate: int = 1_000_000) -> None:
        self.name = port
        self.baudrate = baudrate
        self._ser: Any = None
        self._vmin = -1  # the port's termios VMIN as we last set it (-1: unknown)

    def open(self) -> None:
        try:
            self._ser = serial.serial_for_url(
                self.name,
                baudrate=self.baudrate,
                timeout=0.01,
                write_timeout=WRITE_TIMEOUT_S,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortError(str(e)) from e
        self._vmin = -1  # opening configured the port afresh

    def close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(*_SERIAL_ERRORS):
                ser.flush()  # what was written goes out first (a last torque-off must not be dropped)
            with contextlib.suppress(*_SERIAL_ERRORS):
                ser.close()

    @property
    def is_open(self) -> bool:
        return self._ser is not None

    def check_latency(self, margin_s: float) -> None:
        """FTDI adapters hold replies up to their latency timer (16 ms by default): warn if it eats the
        margin."""
        name = os.path.basename(os.path.realpath(self.name))
        timer = Path(f"/sys/bus/usb-serial/devices/{name}/latency_timer")
        try:
            ms = int(timer.read_text())
        except (OSError, ValueError):
            return
        if ms / 1000.0 >= margin_s / 2:
            log.warning(
                "%s: the adapter's latency timer is %d ms against a %g ms timeout margin; "
                "set it to 1 (echo 1 | sudo tee %s) or raise timeout_margin_ms",
                self.name,
                ms,
                margin_s * 1000,
                timer,
            )

    def send(self, packet: bytes) -> None:
        """Drop stale input, then write the packet (straight to the descriptor on a posix tty: pyserial's
        write adds a timeout loop around the same call)."""
        with _port_errors():
            ser = self._ser
            if ser is None:
                raise PortError("the port is closed")
            fd = getattr(ser, "fd", None)
            if not isinstance(fd, int):
                ser.reset_input_buffer()
                ser.write(packet)
                return
            termios.tcflush(fd, termios.TCIFLUSH)
            view, deadline = memoryview(packet), time.perf_counter() + WRITE_TIMEOUT_S
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:  # the output queue is full: wait until it drains a little
                    if time.perf_counter() > deadline or not select.select([], [fd], [], WRITE_TIMEOUT_S)[1]:
                        raise serial.SerialTimeoutException("write timeout") from None

    def receive(self, n: int, timeout_s: float) -> bytes:
        with _port_errors():
            if self._ser is None:
                raise PortError("the port is closed")
            fd = getattr(self._ser, "fd", None)
            if not isinstance(fd, int):  # not a posix tty (e.g. a loop:// URL): pyserial's own read
                timeout = max(0.001, math.ceil(timeout_s * 1000) / 1000)
                if self._ser.timeout != timeout:
                    self._ser.timeout = timeout
                return bytes(self._ser.read(n))
            return self._receive_tty(fd, n, timeout_s)

    def _receive_tty(self, fd: int, n: int, timeout_s: float) -> bytes:
        want = max(1, min(n, 255))
        if self._vmin != want:
            self._set_vmin(fd, want)
        out = b""
        deadline = time.perf_counter() + timeout_s
        while len(out) < n:
            remaining = deadline - time.perf_counter()
            ready = remaining > 0 and bool(select.select([fd], [], [], remaining)[0])
            try:  # the descriptor is non-blocking (pyserial opens it so): after a timeout, take what came
                chunk = os.read(fd, n - len(out))
            except BlockingIOError:
                chunk = b"" if not ready else None  # type: ignore[assignment]
            if chunk is None or (ready and not chunk):  # readable yet nothing to read: a hang-up
                raise serial.SerialException("the device reports data but gives none (disconnected?)")
            out += chunk
            if not ready:
                break
            if len(out) < n and self._vmin != 1:  # the rest may be short (a dropped reply): any byte wakes
                self._set_vmin(fd, 1)
        return out

    def _set_vmin(self, fd: int, vmin: int) -> None:
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = vmin, 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self._vmin = vmin
