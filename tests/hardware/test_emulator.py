"""The emulated servos on their own: memory, dynamics with a fake clock, replies byte by byte, faults."""

from __future__ import annotations

import math

import pytest

from hardware.dynamixel import DYNAMIXEL
from hardware.emulator import EmulatedServo, Faults
from hardware.emulator.faults import FaultInjector
from hardware.emulator.responder import Responder
from hardware.feetech import FEETECH
from hardware.protocol import Codec
from vla.errors import VLAError


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def respond(codec: Codec, servos: list[EmulatedServo], request: bytes) -> bytes:
    frame = codec.scan(request).frame
    assert frame is not None
    return b"".join(r.packet for r in Responder(codec, servos).handle(frame))


def test_factory_memory() -> None:
    sts = EmulatedServo(3, "sts3215")
    assert sts.register("Model_Number") == 777 and sts.register("ID") == 3
    assert (sts.register("Min_Position_Limit"), sts.register("Max_Position_Limit")) == (0, 4095)
    assert sts.register("Present_Position") == sts.register("Goal_Position") == 2048
    xl = EmulatedServo(1, "xl430-w250")
    assert xl.register("Model_Number") == 1060 and xl.register("Operating_Mode") == 3
    assert xl.memory[0:2] == (1060).to_bytes(2, "little")


@pytest.mark.parametrize("model, sign", [("sts3215", -1), ("xl330-m288", 1)])
def test_first_order_dynamics_and_homing_offset(model: str, sign: int) -> None:
    clock = Clock()
    servo = EmulatedServo(1, model, time_constant_s=0.05, clock=clock)
    servo.set_register("Goal_Position", 1000)
    clock.t += 0.5
    assert servo.register("Present_Position") == 2048, "no motion without torque"
    servo.set_register("Torque_Enable", 1)
    clock.t += 0.05  # one time constant: 63 % of the way
    expected = 1000 + 1048 * math.exp(-1)
    assert servo.register("Present_Position") == round(expected)
    assert servo.register("Moving") == 1
    clock.t += 1.0
    assert servo.register("Present_Position") == 1000
    # Homing offset: Feetech reports actual - offset, Dynamixel actual + offset.
    servo.set_register("Torque_Enable", 0)
    servo.set_register("Homing_Offset", 100)
    assert servo.register("Present_Position") == 1000 + sign * 100
    assert servo.present_position() == pytest.approx(1000, abs=0.01)


def test_goal_is_clamped_to_the_position_limits() -> None:
    clock = Clock()
    servo = EmulatedServo(1, "sts3215", clock=clock)
    servo.set_register("Max_Position_Limit", 3000)
    servo.set_register("Goal_Position", 4000)
    assert servo.goal_position() == 3000


def test_external_dynamics() -> None:
    clock = Clock()
    servo = EmulatedServo(1, "sts3215", dynamics="external", clock=clock)
    servo.set_register("Torque_Enable", 1)
    servo.set_register("Homing_Offset", 48)
    servo.set_register("Goal_Position", 1000)
    clock.t += 1.0
    assert servo.present_position() == 2048  # never moves by itself
    assert servo.goal_position() == 1048  # the goal in encoder steps: register + offset on Feetech
    servo.set_present_position(1500.4, velocity=-20.0)
    assert servo.register("Present_Position") == 1500 - 48
    assert servo.register("Present_Velocity") == -20


def test_replies_are_the_documented_bytes() -> None:
    servos = [EmulatedServo(i, "sts3215") for i in range(1, 7)]
    assert respond(FEETECH, servos, h("FF FF 01 02 01 FB")) == h("FF FF 01 02 00 FC")
    assert respond(FEETECH, servos, h("FF FF 01 04 02 38 02 BE")) == h("FF FF 01 04 00 00 08 F2")
    sync = respond(FEETECH, servos, h("FF FF FE 0A 82 38 02 01 02 03 04 05 06 26"))
    assert [sync[i * 8 + 2] for i in range(6)] == [1, 2, 3, 4, 5, 6]  # one status per servo, in id order
    xl = [EmulatedServo(1, "xl430-w250")]
    assert respond(DYNAMIXEL, xl, h("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")) == h(
        "FF FF FD 00 01 08 00 55 00 00 08 00 00 1C 38"
    )


def test_writes_and_broadcasts() -> None:
    servos = [EmulatedServo(i, "sts3215") for i in (1, 2)]
    # WRITE Goal_Position 2048 -> a status; broadcast writes get no reply but reach every servo.
    assert respond(FEETECH, servos, h("FF FF 01 05 03 2A 00 08 C4")) == h("FF FF 01 02 00 FC")
    assert respond(FEETECH, servos, FEETECH.instruction(0xFE, 3, h("28 01"))) == b""
    assert all(s.torque_enabled for s in servos)
    xl = [EmulatedServo(1, "xl330-m288")]
    # Dynamixel: EEPROM is locked while torque is on (access error 7); unknown instructions: error 2.
    xl[0].set_register("Torque_Enable", 1)
    reply = respond(DYNAMIXEL, xl, DYNAMIXEL.instruction(1, 3, DYNAMIXEL.write_params(11, b"\x04")))
    assert DYNAMIXEL.parse_status(DYNAMIXEL.scan(reply).frame).error == 7  # type: ignore[arg-type]
    reply = respond(DYNAMIXEL, xl, DYNAMIXEL.instruction(1, 0x42))
    assert DYNAMIXEL.parse_status(DYNAMIXEL.scan(reply).frame).error == 2  # type: ignore[arg-type]


def test_id_write_moves_the_servo() -> None:
    servo = EmulatedServo(1, "sts3215")
    responder = Responder(FEETECH, [servo])
    frame = FEETECH.scan(FEETECH.instruction(1, 3, FEETECH.write_params(5, b"\x09"))).frame
    assert frame is not None
    responder.handle(frame)
    assert list(responder.servos) == [9]


def test_faults_are_seeded_and_counted() -> None:
    reply = FEETECH.status(1, 0, b"\x00\x08")
    faults = Faults(corrupt=0.3, garbage=0.3, drop=0.1, delay_ms=1, seed=7)
    runs = []
    for _ in range(2):
        injector = FaultInjector(faults)
        runs.append([injector.apply(reply) for _ in range(200)])
        injector.delay_s()
    assert runs[0] == runs[1]
    counts = injector.counts
    assert counts.dropped > 0 and counts.corrupted > 0 and counts.garbage > 0 and counts.delayed > 0
    sent = [packet for packet in runs[0] if packet is not None]
    assert any(not packet.endswith(reply) for packet in sent)  # some checksums were damaged


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"corrupt": 2}, r"faults\.corrupt=2: must be a probability"),
        ({"drop": -0.1}, r"faults\.drop=-0\.1"),
        ({"delay_ms": -1}, r"faults\.delay_ms=-1"),
    ],
)
def test_bad_faults_are_user_errors(kwargs: dict, pattern: str) -> None:
    with pytest.raises(VLAError, match=pattern):
        Faults(**kwargs)
