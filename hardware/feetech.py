"""Feetech SCS/STS packets (the STS3215 servos of the SO-100 / SO-101 arms).

    instruction: FF FF id len instr params… chk      len = params + 2
    status:      FF FF id len error data… chk         len = data + 2
    chk = ~(id + len + instr/error + Σ params) & 0xFF

Addresses and lengths in READ / SYNC_* parameters are one byte each; values are little-endian on STS
(the older SCS series is big-endian and is not modelled here). The status error byte holds alarm bits
(voltage, sensor, temperature, current, overload): the instruction was still carried out.
"""

from __future__ import annotations

from hardware.errors import PacketError
from hardware.protocol import Attempt, Codec, ControlTable, ErrorKind, Frame, Status

HEADER = b"\xff\xff"
MAX_ID = 0xFD  # 0xFE is broadcast

_ALARMS = {
    0x01: "input voltage",
    0x02: "angle sensor",
    0x04: "overheating",
    0x08: "overcurrent",
    0x20: "overload",
}


def checksum(body: bytes | bytearray) -> int:
    """~(id + len + instr + params) & 0xFF; `body` runs from the id to the last parameter."""
    return ~sum(body) & 0xFF


class FeetechCodec(Codec):
    name = "feetech"
    addr_width = 1
    header = HEADER
    min_packet = 6  # FF FF id len error chk
    ping_reply_size = 0

    def _packet(self, id: int, first: int, params: bytes) -> bytes:
        if not 0 <= id <= 0xFE:
            raise PacketError(f"id {id} is outside 0..254")
        length = len(params) + 2
        if length > 0xFF:
            raise PacketError(f"{len(params)} parameter bytes do not fit one Feetech packet (max 253)")
        body = bytes([id, length, first]) + params
        return HEADER + body + bytes([checksum(body)])

    def instruction(self, id: int, instruction: int, params: bytes = b"") -> bytes:
        return self._packet(id, instruction, params)

    def status(self, id: int, error: int, data: bytes = b"") -> bytes:
        return self._packet(id, error, data)

    def _try_at(self, buf: bytes | bytearray, i: int) -> Attempt:
        available = len(buf) - i
        if available < 4:
            return Attempt("need", need=self.min_packet - available)
        id_, length = buf[i + 2], buf[i + 3]
        if id_ == 0xFF or length < 2:  # FF FF FF …: the header starts one byte later
            return Attempt("invalid")
        total = 4 + length
        if available < total:
            return Attempt("need", need=total - available)
        end = i + total
        if checksum(buf[i + 2 : end - 1]) != buf[end - 1]:
            return Attempt("bad", end=end)
        return Attempt("frame", end=end, frame=Frame(id_, bytes(buf[i + 4 : end - 1])))

    def parse_status(self, frame: Frame) -> Status:
        if not frame.payload:
            raise PacketError(f"status packet from id {frame.id} has no error byte")
        return Status(frame.id, frame.payload[0], frame.payload[1:])

    def parse_instruction(self, frame: Frame) -> tuple[int, bytes]:
        if not frame.payload:
            raise PacketError(f"instruction packet for id {frame.id} has no instruction byte")
        return frame.payload[0], frame.payload[1:]

    def status_size(self, n_data: int) -> int:
        return 6 + n_data

    def error_kind(self, error: int) -> ErrorKind:
        return ErrorKind.ALARM if error else ErrorKind.OK

    def describe_error(self, error: int) -> str:
        names = [name for bit, name in _ALARMS.items() if error & bit]
        unknown = error & ~sum(_ALARMS)
        if unknown:
            names.append(f"bits 0x{unknown:02X}")
        return f"error 0x{error:02X} ({', '.join(names)})"

    def ping_data(self, table: ControlTable) -> bytes:
        return b""  # an STS PING reply carries no data; the model number is read at address 3


FEETECH = FeetechCodec()
