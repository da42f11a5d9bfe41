"""Dynamixel Protocol 2.0 packets (the XL330 / XL430 servos of the Koch arm).

    instruction: FF FF FD 00 id lenL lenH instr params… crcL crcH            len = params + 3
    status:      FF FF FD 00 id lenL lenH 55 error data… crcL crcH          len = data + 4

CRC-16 (polynomial 0x8005, init 0, not reflected) over everything from the first FF. Byte stuffing:
inside the instruction/parameter field, every `FF FF FD` is followed by an extra `FD`, counted by the
length and covered by the CRC, so a header can never appear inside a packet. We stuff on send and
unstuff on receive (the vendor's Python SDK forgets the first). Addresses and lengths in parameters are
two bytes, little-endian; values are two's complement.
"""

from __future__ import annotations

from hardware.errors import PacketError
from hardware.protocol import Attempt, Codec, ControlTable, ErrorKind, Frame, Status

HEADER = b"\xff\xff\xfd\x00"
STATUS = 0x55  # the "instruction" byte of a status packet
MAX_ID = 0xFC  # 0xFD is reserved, 0xFE is broadcast
MAX_LENGTH = 1024  # longer is noise that looks like a header: nothing we send or expect comes close
ALERT = 0x80  # error bit: a hardware error, see Hardware_Error_Status; the instruction was carried out

_ERRORS = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error: a read-only register, or an EEPROM register while Torque_Enable=1",
}


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x8005 if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray) -> int:
    """CRC-16/BUYPASS as Dynamixel 2.0 uses it: crc16(b"123456789") == 0xFEE8."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def stuff(body: bytes) -> bytes:
    """Insert FD after every FF FF FD (occurrences cannot overlap, so replace is exact)."""
    return body.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff(body: bytes) -> bytes:
    return body.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


class DynamixelCodec(Codec):
    name = "dynamixel"
    addr_width = 2
    header = HEADER
    min_packet = 10  # header, id, length, instruction, CRC
    ping_reply_size = 3  # model number (2) + firmware version (1)

    def _packet(self, id: int, body: bytes) -> bytes:
        if not 0 <= id <= 0xFE:
            raise PacketError(f"id {id} is outside 0..254")
        stuffed = stuff(body)
        length = len(stuffed) + 2
        if length > MAX_LENGTH:
            raise PacketError(f"a {length}-byte packet is longer than {MAX_LENGTH}")
        packet = HEADER + bytes([id]) + length.to_bytes(2, "little") + stuffed
        return packet + crc16(packet).to_bytes(2, "little")

    def instruction(self, id: int, instruction: int, params: bytes = b"") -> bytes:
        return self._packet(id, bytes([instruction]) + params)

    def status(self, id: int, error: int, data: bytes = b"") -> bytes:
        return self._packet(id, bytes([STATUS, error]) + data)

    def _try_at(self, buf: bytes | bytearray, i: int) -> Attempt:
        available = len(buf) - i
        if available < 7:
            return Attempt("need", need=self.min_packet - available)
        id_ = buf[i + 4]
        length = buf[i + 5] | buf[i + 6] << 8
        if id_ == 0xFF or not 3 <= length <= MAX_LENGTH:
            return Attempt("invalid")
        total = 7 + length
        if available < total:
            return Attempt("need", need=total - available)
        end = i + total
        if crc16(buf[i : end - 2]) != buf[end - 2] | buf[end - 1] << 8:
            return Attempt("bad", end=end)
        return Attempt("frame", end=end, frame=Frame(id_, unstuff(bytes(buf[i + 7 : end - 2]))))

    def parse_status(self, frame: Frame) -> Status:
        if len(frame.payload) < 2 or frame.payload[0] != STATUS:
            raise PacketError(f"packet from id {frame.id} is not a status packet")
        return Status(frame.id, frame.payload[1], frame.payload[2:])

    def parse_instruction(self, frame: Frame) -> tuple[int, bytes]:
        if not frame.payload:
            raise PacketError(f"instruction packet for id {frame.id} has no instruction byte")
        return frame.payload[0], frame.payload[1:]

    def status_size(self, n_data: int) -> int:
        return 11 + n_data

    def error_kind(self, error: int) -> ErrorKind:
        code = error & 0x7F
        if code == 3:
            return ErrorKind.CORRUPTED
        if code:
            return ErrorKind.REFUSED
        return ErrorKind.ALARM if error & ALERT else ErrorKind.OK

    def describe_error(self, error: int) -> str:
        code = error & 0x7F
        parts = [_ERRORS.get(code, f"error code {code}")] if code else []
        if error & ALERT:
            parts.append("hardware alert (see Hardware_Error_Status)")
        return f"error 0x{error:02X} ({', '.join(parts)})"

    def ping_data(self, table: ControlTable) -> bytes:
        return table.model_number.to_bytes(2, "little") + bytes([table.firmware])


DYNAMIXEL = DynamixelCodec()
