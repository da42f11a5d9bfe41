"""Our packet bytes against the protocol documents (the examples in FACTS.md)."""

from __future__ import annotations

import pytest

from hardware.dynamixel import DYNAMIXEL, crc16, stuff, unstuff
from hardware.errors import PacketError
from hardware.feetech import FEETECH, checksum
from hardware.protocol import BROADCAST_ID, Frame, Instruction, Status
from hardware.tables import MODELS

PRESENT = MODELS["sts3215"].register("Present_Position")
DXL_PRESENT = MODELS["xl430-w250"].register("Present_Position")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --- Feetech -------------------------------------------------------------------------------------------
def test_feetech_ping() -> None:
    assert FEETECH.instruction(1, Instruction.PING) == h("FF FF 01 02 01 FB")


def test_feetech_read_present_position() -> None:
    assert (PRESENT.address, PRESENT.size) == (56, 2)
    packet = FEETECH.instruction(1, Instruction.READ, FEETECH.read_params(PRESENT.address, PRESENT.size))
    assert packet == h("FF FF 01 04 02 38 02 BE")


def test_feetech_write_goal_position() -> None:
    goal = MODELS["sts3215"].register("Goal_Position")
    packet = FEETECH.instruction(1, Instruction.WRITE, FEETECH.write_params(goal.address, goal.encode(2048)))
    assert packet == h("FF FF 01 05 03 2A 00 08 C4")


def test_feetech_sync_read() -> None:
    params = FEETECH.sync_read_params(PRESENT.address, PRESENT.size, range(1, 7))
    assert FEETECH.instruction(BROADCAST_ID, Instruction.SYNC_READ, params) == h(
        "FF FF FE 0A 82 38 02 01 02 03 04 05 06 26"
    )


def test_feetech_replies_parse() -> None:
    scan = FEETECH.scan(h("FF FF 01 02 00 FC"))
    assert scan.frame is not None and FEETECH.parse_status(scan.frame) == Status(1, 0, b"")
    scan = FEETECH.scan(h("FF FF 01 04 00 00 08 F2"))
    assert scan.consumed == 8 and scan.frame is not None
    assert PRESENT.decode(FEETECH.parse_status(scan.frame).data) == 2048
    assert FEETECH.status(1, 0, PRESENT.encode(2048)) == h("FF FF 01 04 00 00 08 F2")


def test_feetech_sync_write_layout() -> None:
    goal = MODELS["sts3215"].register("Goal_Position")
    params = FEETECH.sync_write_params(goal.address, 2, {1: goal.encode(2048), 2: goal.encode(-1)})
    assert params == h("2A 02 01 00 08 02 01 80")
    assert FEETECH.split_sync_write(params) == (42, 2, {1: h("00 08"), 2: h("01 80")})


def test_feetech_checksum_definition() -> None:
    assert checksum(h("01 04 02 38 02")) == 0xBE


def test_feetech_bad_checksum_is_reported_and_consumed() -> None:
    scan = FEETECH.scan(h("FF FF 01 04 00 00 08 F3"))
    assert scan.error == "checksum" and scan.frame is None and scan.consumed == 8


# --- Dynamixel -----------------------------------------------------------------------------------------
def test_crc16_check_value() -> None:
    assert crc16(b"123456789") == 0xFEE8


def test_dynamixel_read_present_position() -> None:
    assert (DXL_PRESENT.address, DXL_PRESENT.size) == (132, 4)
    params = DYNAMIXEL.read_params(DXL_PRESENT.address, DXL_PRESENT.size)
    assert DYNAMIXEL.instruction(1, Instruction.READ, params) == h(
        "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15"
    )


def test_dynamixel_reply_parses_to_2048() -> None:
    reply = h("FF FF FD 00 01 08 00 55 00 00 08 00 00 1C 38")
    scan = DYNAMIXEL.scan(reply)
    assert scan.frame is not None and scan.consumed == len(reply)
    status = DYNAMIXEL.parse_status(scan.frame)
    assert (status.id, status.error) == (1, 0)
    assert DXL_PRESENT.decode(status.data) == 2048
    assert DYNAMIXEL.status(1, 0, DXL_PRESENT.encode(2048)) == reply


def test_stuffing_round_trip() -> None:
    body = h("03 FF FF FD 01 FF FF FD FD")
    assert stuff(body) == h("03 FF FF FD FD 01 FF FF FD FD FD")
    assert unstuff(stuff(body)) == body


def test_stuffed_packet_on_the_wire_and_back() -> None:
    # WRITE of 4 bytes FF FF FD 00 at address 116: the data holds the header, so it must be stuffed.
    params = DYNAMIXEL.write_params(116, h("FF FF FD 00"))
    packet = DYNAMIXEL.instruction(1, Instruction.WRITE, params)
    assert h("FF FF FD FD 00") in packet
    assert int.from_bytes(packet[5:7], "little") == len(params) + 1 + 3  # the length counts the stuffing
    assert packet.count(h("FF FF FD 00")) == 1  # only the real header
    scan = DYNAMIXEL.scan(packet)
    assert scan.frame == Frame(1, bytes([Instruction.WRITE]) + params)
    status = DYNAMIXEL.status(1, 0, h("FF FF FD 00"))
    frame = DYNAMIXEL.scan(status).frame
    assert frame is not None and DYNAMIXEL.parse_status(frame).data == h("FF FF FD 00")


def test_dynamixel_sync_read_layout() -> None:
    params = DYNAMIXEL.sync_read_params(132, 4, [1, 2, 3])
    assert params == h("84 00 04 00 01 02 03")
    packet = DYNAMIXEL.instruction(BROADCAST_ID, Instruction.SYNC_READ, params)
    assert packet[:8] == h("FF FF FD 00 FE 0A 00 82")


def test_dynamixel_instruction_frame_is_not_a_status() -> None:
    frame = DYNAMIXEL.scan(h("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")).frame
    assert frame is not None
    with pytest.raises(PacketError, match="not a status packet"):
        DYNAMIXEL.parse_status(frame)


def test_dynamixel_errors() -> None:
    assert DYNAMIXEL.error_kind(0x07).value == "refused"
    assert DYNAMIXEL.error_kind(0x03).value == "corrupted"
    assert DYNAMIXEL.error_kind(0x80).value == "alarm"
    assert "access error" in DYNAMIXEL.describe_error(0x07)
    assert FEETECH.error_kind(0x20).value == "alarm" and "overload" in FEETECH.describe_error(0x20)
