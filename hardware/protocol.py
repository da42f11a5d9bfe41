"""Types shared by the two servo protocols, the host-side bus and the emulator.

Feetech SCS/STS and Dynamixel 2.0 frame their packets differently (a one-byte sum vs CRC-16, byte
stuffing, one- vs two-byte addresses) but speak the same five instructions about the same thing: a
servo's memory, read and written by address. So a `Codec` here owns what they share (instruction
codes, parameter layouts) and `hardware.feetech` / `hardware.dynamixel` fill in the framing. Registers
are data (`Register`, `ControlTable`), values cross the API as plain ints in register units, and the
sign conventions (sign-magnitude on Feetech, two's complement on Dynamixel) live in one place.
"""

from __future__ import annotations

import difflib
import operator
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from hardware.errors import PacketError, RegisterError

BROADCAST_ID = 0xFE


class Instruction(IntEnum):
    """Instruction codes; both protocols use the same numbers for these."""

    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class Encoding(StrEnum):
    UNSIGNED = "unsigned"
    SIGN_MAGNITUDE = "sign_magnitude"  # Feetech: the sign in one bit, the magnitude in the bits below it
    TWOS_COMPLEMENT = "twos_complement"  # Dynamixel


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """-5 with sign bit 15 -> 0x8005. The magnitude must fit below the sign bit."""
    magnitude = abs(value)
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit sign-magnitude with the sign in bit {sign_bit}")
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """0x8005 with sign bit 15 -> -5. Bits above the sign bit are ignored (the servo leaves them 0)."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if (raw >> sign_bit) & 1 else magnitude


def encode_twos_complement(value: int, bits: int) -> int:
    if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
        raise ValueError(f"{value} does not fit a signed {bits}-bit integer")
    return value & ((1 << bits) - 1)


def decode_twos_complement(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


@dataclass(frozen=True)
class Register:
    """One entry of a servo's control table: where it lives, how wide it is, how its bits are read."""

    name: str
    address: int
    size: int  # bytes, little-endian on both STS and Dynamixel X
    writable: bool = True
    eeprom: bool = False  # EEPROM area: Dynamixel refuses writes while torque is on
    encoding: Encoding = Encoding.UNSIGNED
    sign_bit: int | None = None  # only for SIGN_MAGNITUDE
    default: int = 0  # factory value, in register units (decoded)

    @property
    def limits(self) -> tuple[int, int]:
        """The smallest and largest value the register can hold, decoded."""
        bits = 8 * self.size
        if self.encoding is Encoding.SIGN_MAGNITUDE:
            assert self.sign_bit is not None
            return -((1 << self.sign_bit) - 1), (1 << self.sign_bit) - 1
        if self.encoding is Encoding.TWOS_COMPLEMENT:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1

    def encode(self, value: int) -> bytes:
        """A value in register units -> the bytes written at `address`."""
        low, high = self.limits
        try:
            value = operator.index(value)  # ints, bools and numpy integers; never a float silently rounded
        except TypeError:
            raise RegisterError(f"{self.name}={value!r}: must be an integer in {low}..{high}") from None
        if not low <= value <= high:
            raise RegisterError(f"{self.name}={value!r}: must be an integer in {low}..{high}")
        if self.encoding is Encoding.SIGN_MAGNITUDE:
            assert self.sign_bit is not None
            raw = encode_sign_magnitude(value, self.sign_bit)
        elif self.encoding is Encoding.TWOS_COMPLEMENT:
            raw = encode_twos_complement(value, 8 * self.size)
        else:
            raw = value
        return raw.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        """The bytes read from `address` -> a value in register units."""
        if len(data) != self.size:
            raise PacketError(f"{self.name}: expected {self.size} bytes, got {len(data)}")
        raw = int.from_bytes(data, "little")
        if self.encoding is Encoding.SIGN_MAGNITUDE:
            assert self.sign_bit is not None
            return decode_sign_magnitude(raw, self.sign_bit)
        if self.encoding is Encoding.TWOS_COMPLEMENT:
            return decode_twos_complement(raw, 8 * self.size)
        return raw


@dataclass(frozen=True)
class ControlTable:
    """A servo model: its model number and its registers (name -> Register)."""

    model: str  # our name for it, e.g. "sts3215", "xl430-w250"
    model_number: int
    protocol: str  # "feetech" | "dynamixel"
    registers: Mapping[str, Register]
    memory_size: int  # bytes of emulated memory (addresses beyond read as an error on Dynamixel)
    resolution: int = 4096  # position steps per turn
    firmware: int = 0  # reported by the Dynamixel PING reply

    def register(self, name: str) -> Register:
        try:
            return self.registers[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.registers), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise RegisterError(f"{self.model} has no register {name!r}{hint}") from None


@dataclass(frozen=True)
class Motor:
    """A servo on a bus: its id and model name (a key of `hardware.tables.MODELS`)."""

    id: int
    model: str


@dataclass(frozen=True)
class Frame:
    """A packet that passed its checksum: the id and the payload between the length and the checksum.

    Instruction packets: payload = instruction, params. Status packets: payload = error, data on
    Feetech; 0x55, error, data on Dynamixel (unstuffed).
    """

    id: int
    payload: bytes


@dataclass(frozen=True)
class Status:
    """A decoded status packet: which servo, its error byte, and the data it sent (may be empty)."""

    id: int
    error: int
    data: bytes


@dataclass(frozen=True)
class Scan:
    """One step of finding packets in a byte buffer; see `Codec.scan`.

    Invariant: `consumed > 0 or need > 0`, so a loop that drops `consumed` bytes and stops on `need`
    always ends.
    """

    consumed: int  # bytes to drop from the front of the buffer
    skipped: int = 0  # of those, bytes thrown away as noise before a packet start
    frame: Frame | None = None  # a packet that passed its checksum, ending at `consumed`
    error: str | None = None  # a packet-shaped run whose checksum failed (it was consumed)
    need: int = 0  # > 0: nothing more can be said until at least this many more bytes arrive


class ErrorKind(StrEnum):
    """What a status packet's error byte means for the transaction."""

    OK = "ok"
    ALARM = "alarm"  # the servo did it but reports a hardware condition (overload, overheating, ...)
    REFUSED = "refused"  # the servo did not carry out the instruction
    CORRUPTED = "corrupted"  # the servo saw our packet damaged: worth retrying


@dataclass(frozen=True)
class Attempt:
    """What a header position holds: a frame, a failed checksum, an impossible header, or too few bytes."""

    kind: str  # "frame" | "bad" | "invalid" | "need"
    end: int = 0  # "frame" / "bad": index just past the packet
    frame: Frame | None = None
    need: int = 0  # "need": at least this many more bytes


class Codec(ABC):
    """One protocol's packets. Subclasses frame them; parameter layouts are shared here."""

    name: str
    addr_width: int  # bytes of an address and of a length in READ / SYNC_* parameters
    header: bytes

    # --- framing, per protocol ---------------------------------------------------------------------
    @abstractmethod
    def instruction(self, id: int, instruction: int, params: bytes = b"") -> bytes:
        """An instruction packet, ready to send."""

    @abstractmethod
    def status(self, id: int, error: int, data: bytes = b"") -> bytes:
        """A status packet, ready to send (what a servo answers; used by the emulator)."""

    @abstractmethod
    def _try_at(self, buf: bytes | bytearray, i: int) -> Attempt:
        """Decode the packet whose header starts at `buf[i]` (the header itself is already matched)."""

    @abstractmethod
    def parse_status(self, frame: Frame) -> Status:
        """A frame read from a servo -> Status; PacketError when it is not a status packet."""

    @abstractmethod
    def parse_instruction(self, frame: Frame) -> tuple[int, bytes]:
        """A frame sent to a servo -> (instruction, params); PacketError when it is empty."""

    @abstractmethod
    def status_size(self, n_data: int) -> int:
        """Bytes on the wire of a status packet carrying `n_data` data bytes (without stuffing)."""

    @abstractmethod
    def error_kind(self, error: int) -> ErrorKind: ...

    @abstractmethod
    def describe_error(self, error: int) -> str: ...

    @abstractmethod
    def ping_data(self, table: ControlTable) -> bytes:
        """The data of a PING reply (Dynamixel: model number and firmware; Feetech: none)."""

    ping_reply_size: int  # data bytes in a PING reply

    # --- finding packets in a byte stream, shared ----------------------------------------------------
    def scan(self, buf: bytes | bytearray) -> Scan:
        """Find the next packet at the front of `buf`; never raises, whatever the bytes.

        Resynchronises on noise: bytes before a header are skipped; a header that cannot be a packet
        (impossible id or length) is skipped by one byte; an incomplete packet yields to a complete,
        valid one further on (noise that happened to look like a header must not hide a real reply); a
        failed checksum drops the packet, but not a header inside it (a lost byte shifts the next one in).
        """
        header = self.header
        i = buf.find(header)
        if i < 0:
            keep = _partial_tail(buf, header)  # the start of a header that is still arriving
            drop = len(buf) - keep
            return Scan(consumed=drop, skipped=drop, need=self.min_packet - keep)
        attempt = self._try_at(buf, i)
        if attempt.kind == "frame":
            return Scan(consumed=attempt.end, skipped=i, frame=attempt.frame)
        if attempt.kind == "bad":
            j = buf.find(header, i + 1, attempt.end + len(header) - 1)
            end = j if 0 <= j < attempt.end else attempt.end
            return Scan(consumed=end, skipped=i, error="checksum")
        if attempt.kind == "invalid":
            return Scan(consumed=i + 1, skipped=i + 1)
        j = buf.find(header, i + 1)
        while j >= 0:
            if self._try_at(buf, j).kind == "frame":
                return Scan(consumed=j, skipped=j)
            j = buf.find(header, j + 1)
        return Scan(consumed=i, skipped=i, need=attempt.need)

    min_packet: int  # bytes of the shortest packet

    # --- parameters, shared ------------------------------------------------------------------------
    def _field(self, value: int) -> bytes:
        return value.to_bytes(self.addr_width, "little")

    def read_params(self, address: int, size: int) -> bytes:
        return self._field(address) + self._field(size)

    def write_params(self, address: int, data: bytes) -> bytes:
        return self._field(address) + data

    def sync_read_params(self, address: int, size: int, ids: Iterable[int]) -> bytes:
        return self._field(address) + self._field(size) + bytes(ids)

    def sync_write_params(self, address: int, size: int, data: Mapping[int, bytes]) -> bytes:
        out = bytearray(self._field(address) + self._field(size))
        for id_, chunk in data.items():
            if len(chunk) != size:
                raise PacketError(f"sync write of {size} bytes got {len(chunk)} for id {id_}")
            out += bytes([id_]) + chunk
        return bytes(out)

    def split_read(self, params: bytes) -> tuple[int, int]:
        """READ params -> (address, size)."""
        w = self.addr_width
        if len(params) != 2 * w:
            raise PacketError(f"READ needs {2 * w} parameter bytes, got {len(params)}")
        return int.from_bytes(params[:w], "little"), int.from_bytes(params[w:], "little")

    def split_write(self, params: bytes) -> tuple[int, bytes]:
        """WRITE params -> (address, data)."""
        w = self.addr_width
        if len(params) <= w:
            raise PacketError(f"WRITE needs more than {w} parameter bytes, got {len(params)}")
        return int.from_bytes(params[:w], "little"), params[w:]

    def split_sync_read(self, params: bytes) -> tuple[int, int, list[int]]:
        """SYNC_READ params -> (address, size, ids)."""
        w = self.addr_width
        if len(params) < 2 * w:
            raise PacketError(f"SYNC_READ needs at least {2 * w} parameter bytes, got {len(params)}")
        address, size = self.split_read(params[: 2 * w])
        return address, size, list(params[2 * w :])

    def split_sync_write(self, params: bytes) -> tuple[int, int, dict[int, bytes]]:
        """SYNC_WRITE params -> (address, size, {id: data})."""
        w = self.addr_width
        if len(params) < 2 * w:
            raise PacketError(f"SYNC_WRITE needs at least {2 * w} parameter bytes, got {len(params)}")
        address, size = self.split_read(params[: 2 * w])
        body = params[2 * w :]
        if size == 0 or len(body) % (size + 1):
            raise PacketError(f"SYNC_WRITE body of {len(body)} bytes is not a whole number of {size + 1}")
        return address, size, {body[i]: body[i + 1 : i + 1 + size] for i in range(0, len(body), size + 1)}


def _partial_tail(buf: bytes | bytearray, header: bytes) -> int:
    """How many bytes at the end of `buf` are the beginning of `header` (0 if none)."""
    for k in range(min(len(header) - 1, len(buf)), 0, -1):
        if buf[len(buf) - k :] == header[:k]:
            return k
    return 0
