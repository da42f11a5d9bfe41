"""The host side of a servo bus: one class for Feetech and Dynamixel, on any pyserial port.

    bus = ServoBus("/dev/ttyACM0", "feetech", {"gripper": Motor(6, "sts3215"), ...})
    bus.connect()                                  # opens the port, PINGs every motor, checks models
    bus.sync_write("Goal_Position", {"gripper": 2048})
    positions = bus.sync_read("Present_Position")  # {"gripper": 2047, ...}

Values are plain ints in register units, sign decoded (sign-magnitude on Feetech, two's complement on
Dynamixel). Each transaction holds a lock (one bus per port, callable from several threads), discards
stale input first, and waits on the port with serial's blocking read and a timeout sized from the bytes
expected at the baud rate plus a margin; it never spins. Replies are parsed with resynchronisation,
checked for checksum, id and length, and what is missing is asked again up to `retries` times; every
problem is counted in `stats`. When the port itself fails the bus raises `Disconnected` at once and
marks itself disconnected.

Timeout margin: 10 ms by default. A pty adds no wire time, but the emulator may share the CPU; a USB
adapter adds 1–2 ms each way, and six servos at the factory Return_Delay_Time add 6 × 0.5 ms. FTDI
adapters hold bytes up to their latency timer (16 ms by default): set it to 1 ms
(/sys/bus/usb-serial/devices/ttyUSB0/latency_timer) or raise `timeout_margin_ms` to ~20. A larger
margin only costs time when a reply is really missing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import termios
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import serial

from hardware.dynamixel import DYNAMIXEL
from hardware.errors import (
    BusError,
    Disconnected,
    HandshakeError,
    PacketError,
    RegisterError,
    ServoRefused,
    TransactionError,
)
from hardware.feetech import FEETECH
from hardware.protocol import (
    BROADCAST_ID,
    Codec,
    ControlTable,
    ErrorKind,
    Frame,
    Instruction,
    Motor,
    Register,
    Status,
)
from hardware.tables import MODELS, model_table

log = logging.getLogger(__name__)

CODECS: Mapping[str, Codec] = {"feetech": FEETECH, "dynamixel": DYNAMIXEL}
PORT_ERRORS = (OSError, serial.SerialException, termios.error)
WRITE_TIMEOUT_S = 0.1  # a port that cannot take a 30-byte packet in 100 ms is gone
MAX_ID = {"feetech": 0xFD, "dynamixel": 0xFC}


@dataclass
class BusStats:
    """Counters since the bus was made (a snapshot: `bus.stats` returns a copy)."""

    transactions: int = 0  # read / write / sync_* / ping calls that reached the port
    retries: int = 0  # extra attempts (each asks again only the servos still missing)
    timeouts: int = 0  # attempts that ended with servos still missing
    checksum_errors: int = 0  # packets whose checksum / CRC failed
    id_mismatches: int = 0  # valid packets from an id we did not ask (or asked and already had)
    malformed: int = 0  # valid packets of the wrong shape (data length, not a status packet)
    garbage_bytes: int = 0  # bytes thrown away while looking for a packet start
    servo_errors: int = 0  # status packets with a nonzero error byte
    failures: int = 0  # transactions that still failed after all retries


class ServoBus:
    def __init__(
        self,
        port: str,
        protocol: str,
        motors: Mapping[str, Motor],
        *,
        baudrate: int = 1_000_000,
        retries: int = 3,
        timeout_margin_ms: float = 10.0,
    ) -> None:
        if protocol not in CODECS:
            raise BusError(f"protocol={protocol!r}: must be one of {', '.join(CODECS)}")
        if retries < 0:
            raise BusError(f"retries={retries}: must be at least 0")
        if not 0 < timeout_margin_ms <= 10_000:
            raise BusError(f"timeout_margin_ms={timeout_margin_ms}: must be in (0, 10000]")
        if baudrate <= 0:
            raise BusError(f"baudrate={baudrate}: must be positive")
        self.port = port
        self.protocol = protocol
        self.codec = CODECS[protocol]
        self.motors = dict(motors)
        self.baudrate = baudrate
        self.retries = retries
        self.timeout_margin_s = timeout_margin_ms / 1000.0
        self._tables: dict[str, ControlTable] = {}
        self._names: dict[int, str] = {}
        for name, motor in self.motors.items():
            self._tables[name] = model_table(motor.model, protocol)
            if not 0 <= motor.id <= MAX_ID[protocol]:
                raise BusError(f"{name}: id {motor.id} is outside 0..{MAX_ID[protocol]}")
            if motor.id in self._names:
                raise BusError(f"{name} and {self._names[motor.id]} both have id {motor.id}")
            self._names[motor.id] = name
        self._model_register = next(t for t in MODELS.values() if t.protocol == protocol).register(
            "Model_Number"
        )
        self._ser: Any = None
        self._lock = threading.Lock()
        self._stats = BusStats()
        self._alarms: dict[int, int] = {}
        self._vmin = -1  # the port's termios VMIN as we last set it (-1: unknown)

    # --- connection --------------------------------------------------------------------------------
    def connect(self, handshake: bool = True) -> None:
        """Open the port; with `handshake`, check every motor answers PING with its model number."""
        with self._lock:
            if self._ser is not None:
                raise BusError(f"{self.port}: already connected")
            try:
                self._ser = serial.serial_for_url(
                    self.port,
                    baudrate=self.baudrate,
                    timeout=0.01,
                    write_timeout=WRITE_TIMEOUT_S,
                    exclusive=True,
                )
                self._vmin = -1  # opening configured the port afresh
            except (serial.SerialException, OSError, ValueError) as e:
                raise BusError(f"cannot open {self.port}: {e}") from e
        _warn_about_latency_timer(self.port, self.timeout_margin_s)
        if handshake:
            try:
                self._handshake()
            except BaseException:
                self.disconnect()
                raise

    def _handshake(self) -> None:
        problems = []
        for name, motor in self.motors.items():
            number = self.ping(motor.id)
            expected = self._tables[name].model_number
            if number is None:
                problems.append(f"{name} (id {motor.id}) does not answer")
            elif number != expected:
                found = next((m for m, t in MODELS.items() if t.model_number == number), "unknown")
                problems.append(
                    f"{name} (id {motor.id}) is model {number} ({found}), expected {expected} ({motor.model})"
                )
        if problems:
            raise HandshakeError(
                f"{self.port}: {'; '.join(problems)} (check power, cable, ids and baud rate {self.baudrate})"
            )

    def disconnect(self) -> None:
        """Close the port (idempotent). Torque is left as it is: the arm decides what is safe."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(*PORT_ERRORS):
                ser.flush()  # what was written goes out first (a last torque-off must not be dropped)
            with contextlib.suppress(*PORT_ERRORS):
                ser.close()

    @property
    def is_connected(self) -> bool:
        return self._ser is not None

    def __enter__(self) -> ServoBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def stats(self) -> BusStats:
        return replace(self._stats)

    # --- public operations -------------------------------------------------------------------------
    def ping(self, id: int) -> int | None:
        """The model number of the servo with this id, or None when it does not answer."""
        got = self._exchange(
            lambda ids: self.codec.instruction(id, Instruction.PING),
            [id],
            self.codec.ping_reply_size,
            "pinging",
            required=False,
        )
        if id not in got:
            return None
        if self.codec.ping_reply_size:  # Dynamixel: the model number comes with the reply
            return int.from_bytes(got[id].data[:2], "little")
        reg = self._model_register
        got = self._exchange(
            lambda ids: self.codec.instruction(
                id, Instruction.READ, self.codec.read_params(reg.address, reg.size)
            ),
            [id],
            reg.size,
            "reading Model_Number",
            required=False,
        )
        return reg.decode(got[id].data) if id in got else None

    def read(self, register: str, motor: str) -> int:
        reg = self._register(register, [motor])
        id_ = self.motors[motor].id
        params = self.codec.read_params(reg.address, reg.size)
        got = self._exchange(
            lambda ids: self.codec.instruction(id_, Instruction.READ, params),
            [id_],
            reg.size,
            f"reading {register}",
        )
        return reg.decode(got[id_].data)

    def write(self, register: str, motor: str, value: int) -> None:
        """Write one register of one motor and wait for its status packet."""
        reg = self._register(register, [motor], writing=True)
        id_ = self.motors[motor].id
        params = self.codec.write_params(reg.address, self._encode(reg, motor, value))
        self._exchange(
            lambda ids: self.codec.instruction(id_, Instruction.WRITE, params),
            [id_],
            0,
            f"writing {register}",
        )

    def sync_read(self, register: str, motors: Iterable[str] | None = None) -> dict[str, int]:
        """One SYNC_READ for several motors (all by default); servos that miss their reply are asked
        again, and the error names those still missing after the retries."""
        names = list(self.motors) if motors is None else list(motors)
        reg = self._register(register, names)
        ids = [self.motors[n].id for n in names]
        got = self._exchange(
            lambda missing: self.codec.instruction(
                BROADCAST_ID,
                Instruction.SYNC_READ,
                self.codec.sync_read_params(reg.address, reg.size, missing),
            ),
            ids,
            reg.size,
            f"reading {register}",
        )
        return {n: reg.decode(got[self.motors[n].id].data) for n in names}

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """One broadcast SYNC_WRITE (no replies on either protocol, so nothing to retry)."""
        names = list(values)
        reg = self._register(register, names, writing=True)
        data = {self.motors[n].id: self._encode(reg, n, v) for n, v in values.items()}
        packet = self.codec.instruction(
            BROADCAST_ID, Instruction.SYNC_WRITE, self.codec.sync_write_params(reg.address, reg.size, data)
        )
        self._exchange(lambda ids: packet, [], 0, f"writing {register}")

    # --- lookups -----------------------------------------------------------------------------------
    def _register(self, register: str, motors: list[str], writing: bool = False) -> Register:
        if not motors:
            raise BusError(f"{register}: no motors given")
        regs = {}
        for name in motors:
            if name not in self.motors:
                raise BusError(f"unknown motor {name!r}; this bus has {', '.join(self.motors)}")
            regs[name] = self._tables[name].register(register)
        first = regs[motors[0]]
        for name, reg in regs.items():
            if (reg.address, reg.size, reg.encoding, reg.sign_bit) != (
                first.address,
                first.size,
                first.encoding,
                first.sign_bit,
            ):
                raise RegisterError(
                    f"{register} differs between {motors[0]} and {name}; read them one by one"
                )
        if writing and not first.writable:
            raise RegisterError(f"{register} is read-only")
        return first

    @staticmethod
    def _encode(reg: Register, motor: str, value: int) -> bytes:
        try:
            return reg.encode(value)
        except RegisterError as e:
            raise RegisterError(f"{motor}: {e}") from None

    def _who(self, ids: Iterable[int]) -> str:
        return ", ".join(f"{self._names[i]} (id {i})" if i in self._names else f"id {i}" for i in ids)

    # --- transactions ------------------------------------------------------------------------------
    def _exchange(
        self,
        packet_for: Callable[[list[int]], bytes],
        ids: list[int],
        n_data: int,
        action: str,
        *,
        required: bool = True,
    ) -> dict[int, Status]:
        """Send, collect one status per id (none for an empty list), ask again for what is missing."""
        with self._lock:
            if self._ser is None:
                raise Disconnected(f"{self.port}: not connected ({action}); call connect() first")
            self._stats.transactions += 1
            got: dict[int, Status] = {}
            problems: list[str] = []
            for attempt in range(self.retries + 1):
                missing = [i for i in ids if i not in got]
                if attempt:
                    self._stats.retries += 1
                problem = self._attempt(packet_for(missing), missing, n_data, got, action)
                if problem is None:
                    break
                if problem not in problems:
                    problems.append(problem)
            else:
                self._stats.failures += 1
                if required:
                    missing = [i for i in ids if i not in got]
                    raise TransactionError(
                        f"no status packet from {self._who(missing)} {action} after "
                        f"{self.retries + 1} tries: {', '.join(problems)}"
                    )
        for status in got.values():
            if self.codec.error_kind(status.error) is ErrorKind.REFUSED:
                raise ServoRefused(
                    f"{self._who([status.id])} refused {action}: {self.codec.describe_error(status.error)}"
                )
        return got

    def _attempt(
        self, packet: bytes, ids: list[int], n_data: int, got: dict[int, Status], action: str
    ) -> str | None:
        """One try: returns None when every id in `ids` answered, else what went wrong."""
        ser = self._ser
        self._port(action, self._send, ser, packet)
        if not ids:  # nothing comes back (a broadcast write)
            return None
        size = self.codec.status_size(n_data)
        deadline = (
            time.perf_counter() + (len(packet) + size * len(ids)) * 10 / self.baudrate + self.timeout_margin_s
        )
        pending, buf, problem = set(ids), bytearray(), "timeout"
        spoiled = 0  # replies that arrived damaged: once they and the good ones are all in, stop waiting
        while True:
            need = size
            while buf:
                scan = self.codec.scan(buf)
                del buf[: scan.consumed]
                self._stats.garbage_bytes += scan.skipped
                if scan.error:
                    self._stats.checksum_errors += 1
                    spoiled += 1
                    problem = "bad checksum"
                if scan.frame is not None:
                    trouble = self._accept(scan.frame, pending, n_data, got)
                    if trouble is not None:
                        problem, spoiled = trouble[0], spoiled + trouble[1]
                if scan.need:
                    need = scan.need
                    break
            if not pending:
                return None
            expected = len(pending) - spoiled  # replies still to come if every one is clean
            if expected <= 0 and not buf:
                return problem  # everything came back, some of it damaged: ask again at once
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self._stats.timeouts += 1
                return problem
            outstanding = size * expected - len(buf)  # exact when every pending reply is clean
            buf += self._port(
                action, self._read, outstanding if outstanding > 0 else min(need, size), remaining
            )

    def _accept(
        self, frame: Frame, pending: set[int], n_data: int, got: dict[int, Status]
    ) -> tuple[str, bool] | None:
        """Take a valid frame as the reply of a pending id. None when taken, else (the problem, whether
        it was a pending servo's reply spoiled on the way)."""
        try:
            status = self.codec.parse_status(frame)
        except PacketError:
            self._stats.malformed += 1
            return "not a status packet", False
        if status.id not in pending:
            self._stats.id_mismatches += 1
            return f"reply from unexpected id {status.id}", False
        kind = self.codec.error_kind(status.error)
        if status.error:
            self._stats.servo_errors += 1
        if kind is ErrorKind.CORRUPTED:
            return f"{self._who([status.id])} received a corrupted packet", True
        if kind is not ErrorKind.REFUSED and len(status.data) != n_data:
            self._stats.malformed += 1
            return f"reply of {len(status.data)} data bytes, expected {n_data}", True
        if kind is ErrorKind.ALARM and self._alarms.get(status.id) != status.error:
            log.warning("%s reports %s", self._who([status.id]), self.codec.describe_error(status.error))
        self._alarms[status.id] = status.error
        pending.discard(status.id)
        got[status.id] = status
        return None

    def _send(self, ser: Any, packet: bytes) -> None:
        """Drop stale input, then write the packet (straight to the descriptor on a posix tty: pyserial's
        write adds a timeout loop around the same call)."""
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

    def _read(self, n: int, timeout_s: float) -> bytes:
        """Up to n bytes, waiting at most timeout_s. On a posix tty: select + read on the descriptor, with
        the kernel set to wake us only once n bytes are in (termios VMIN, VTIME 0: a tty's poll then
        reports readable at n bytes) rather than once per servo's reply; pyserial's read would also
        reconfigure the port whenever its timeout changes. Together ~half our CPU at 100 Hz."""
        fd = getattr(self._ser, "fd", None)
        if not isinstance(fd, int):  # not a posix tty (e.g. a loop:// URL): pyserial's own read
            timeout = max(0.001, math.ceil(timeout_s * 1000) / 1000)
            if self._ser.timeout != timeout:
                self._ser.timeout = timeout
            return bytes(self._ser.read(n))
        want = max(1, min(n, 255))
        if self._vmin != want:
            attrs = termios.tcgetattr(fd)
            attrs[6][termios.VMIN], attrs[6][termios.VTIME] = want, 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            self._vmin = want
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
                attrs = termios.tcgetattr(fd)
                attrs[6][termios.VMIN] = 1
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
                self._vmin = 1
        return out

    def _port(self, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the port; any failure of the port itself disconnects the bus."""
        try:
            return fn(*args)
        except PORT_ERRORS as e:
            self._close()
            reason = e.args[1] if isinstance(e, termios.error) and len(e.args) == 2 else e
            raise Disconnected(f"lost {self.port} while {action}: {reason}; the bus is disconnected") from e


def _warn_about_latency_timer(port: str, margin_s: float) -> None:
    """FTDI adapters hold replies up to their latency timer (16 ms by default): warn if it eats the margin."""
    name = os.path.basename(os.path.realpath(port))
    timer = Path(f"/sys/bus/usb-serial/devices/{name}/latency_timer")
    try:
        ms = int(timer.read_text())
    except (OSError, ValueError):
        return
    if ms / 1000.0 >= margin_s / 2:
        log.warning(
            "%s: the adapter's latency timer is %d ms against a %g ms timeout margin; "
            "set it to 1 (echo 1 | sudo tee %s) or raise timeout_margin_ms",
            port,
            ms,
            margin_s * 1000,
            timer,
        )
