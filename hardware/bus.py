"""The host side of a servo bus: one class for Feetech and Dynamixel, on any transport.

    bus = ServoBus("/dev/ttyACM0", "feetech", {"gripper": Motor(6, "sts3215"), ...})
    bus.connect()                                  # opens the port, PINGs every motor, checks models
    bus.sync_write("Goal_Position", {"gripper": 2048})
    positions = bus.sync_read("Present_Position")  # {"gripper": 2047, ...}

    ServoBus(emulated_bus.transport(), "feetech", motors)   # the emulator's servos, in-process (tests)

The bus owns the contract, the transport (hardware.transport) only bytes: a port path or pyserial URL
gets a `SerialTransport`; any `Transport` can be passed instead (python-can style).

Values are plain ints in register units, sign decoded (sign-magnitude on Feetech, two's complement on
Dynamixel). Each transaction holds a lock (one bus per port, callable from several threads), has the
transport discard stale input first, and waits for the bytes expected with a timeout sized from them at
the baud rate plus a margin; it never spins. Replies are parsed with resynchronisation, checked for
checksum, id and length, and what is missing is asked again up to `retries` times; every problem is
counted in `stats`. When the link itself fails the bus raises `Disconnected` at once and marks itself
disconnected.

Timeout margin: 10 ms by default. A pty adds no wire time, but the emulator may share the CPU; a USB
adapter adds 1–2 ms each way, and six servos at the factory Return_Delay_Time add 6 × 0.5 ms. FTDI
adapters hold bytes up to their latency timer (16 ms by default): set it to 1 ms
(/sys/bus/usb-serial/devices/ttyUSB0/latency_timer) or raise `timeout_margin_ms` to ~20. A larger
margin only costs time when a reply is really missing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hardware.codecs import codec
from hardware.errors import (
    BusError,
    Disconnected,
    HandshakeError,
    PacketError,
    RegisterError,
    ServoRefused,
    TransactionError,
)
from hardware.protocol import (
    BROADCAST_ID,
    ControlTable,
    ErrorKind,
    Frame,
    Instruction,
    Motor,
    Register,
    Status,
)
from hardware.tables import MODELS, model_table
from hardware.transport import PortError, SerialTransport, Transport

log = logging.getLogger(__name__)

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
    """`port`: a serial port's path (or a pyserial URL), or a `Transport`."""

    def __init__(
        self,
        port: str | Transport,
        protocol: str,
        motors: Mapping[str, Motor],
        *,
        baudrate: int = 1_000_000,
        retries: int = 3,
        timeout_margin_ms: float = 10.0,
    ) -> None:
        self.codec = codec(protocol)
        if retries < 0:
            raise BusError(f"retries={retries}: must be at least 0")
        if not 0 < timeout_margin_ms <= 10_000:
            raise BusError(f"timeout_margin_ms={timeout_margin_ms}: must be in (0, 10000]")
        if baudrate <= 0:
            raise BusError(f"baudrate={baudrate}: must be positive")
        self.transport = port if isinstance(port, Transport) else SerialTransport(port, baudrate)
        self.port = self.transport.name
        self.protocol = protocol
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
        self._lock = threading.Lock()
        self._stats = BusStats()
        self._alarms: dict[int, int] = {}

    # --- connection --------------------------------------------------------------------------------
    def connect(self, handshake: bool = True) -> None:
        """Open the port; with `handshake`, check every motor answers PING with its model number."""
        with self._lock:
            if self.transport.is_open:
                raise BusError(f"{self.port}: already connected")
            try:
                self.transport.open()
            except PortError as e:
                raise BusError(f"cannot open {self.port}: {e}") from e
        self.transport.check_latency(self.timeout_margin_s)
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
        self.transport.close()  # what was written goes out first (a last torque-off must not be dropped)

    @property
    def is_connected(self) -> bool:
        return self.transport.is_open

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
            if not self.transport.is_open:
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
        self._port(action, self.transport.send, packet)
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
                action, self.transport.receive, outstanding if outstanding > 0 else min(need, size), remaining
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

    def _port(self, action: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the transport; any failure of the link itself disconnects the bus."""
        try:
            return fn(*args)
        except PortError as e:
            self._close()
            raise Disconnected(f"lost {self.port} while {action}: {e}; the bus is disconnected") from e
