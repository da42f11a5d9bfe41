"""ServoBus against the emulator for both protocols: in-process (the bus's logic), and over a real
pseudo-terminal where the serial path itself is under test."""

from __future__ import annotations

import threading
import time

import pytest

from hardware.bus import ServoBus
from hardware.codecs import codec
from hardware.emulator import EmulatedBus
from hardware.errors import (
    BusError,
    Disconnected,
    HandshakeError,
    RegisterError,
    ServoRefused,
    TransactionError,
)
from hardware.protocol import Motor
from hardware.specs import ARMS
from tests.hardware.helpers import emulated, emulated_arm, emulator_for

ROBOTS = ["so101", "koch"]


@pytest.mark.parametrize("robot", ROBOTS)
def test_connect_ping_read_write(robot: str) -> None:
    with emulated_arm(robot) as (emu, bus):
        assert bus.is_connected
        expected = {"so101": [777] * 6, "koch": [1060, 1060, 1200, 1200, 1200, 1200]}[robot]
        assert [bus.ping(i) for i in range(1, 7)] == expected
        assert bus.stats.retries == 0
        assert bus.ping(42) is None  # nobody there: asked 1 + 3 times, then None rather than an error
        assert (bus.stats.retries, bus.stats.timeouts, bus.stats.failures) == (3, 4, 1)
        assert bus.read("Present_Position", "gripper") == 2048
        bus.write("Goal_Position", "gripper", 1234)
        assert bus.read("Goal_Position", "gripper") == 1234
        assert emu.servo(6).register("Goal_Position") == 1234
        bus.write("Homing_Offset", "wrist_roll", -300)  # negative: sign-magnitude / two's complement
        assert bus.read("Homing_Offset", "wrist_roll") == -300
        present = bus.read("Present_Position", "wrist_roll")
        assert present == (2048 + 300 if robot == "so101" else 2048 - 300)
        stats = bus.stats
        assert (stats.failures, stats.retries, stats.checksum_errors, stats.garbage_bytes) == (1, 3, 0, 0)


@pytest.mark.parametrize("robot", ROBOTS)
def test_sync_read_write_and_dynamics(robot: str) -> None:
    with emulated_arm(robot) as (_, bus):
        names = list(bus.motors)
        goals = {n: 1000 + 300 * i for i, n in enumerate(names)}
        bus.sync_write("Goal_Position", goals)
        assert bus.sync_read("Goal_Position") == goals
        time.sleep(0.1)
        assert bus.sync_read("Present_Position") == dict.fromkeys(names, 2048), "torque is off"
        bus.sync_write("Torque_Enable", dict.fromkeys(names, 1))
        time.sleep(0.4)  # 8 time constants
        present = bus.sync_read("Present_Position")
        assert all(abs(present[n] - goals[n]) <= 2 for n in names), present
        assert bus.sync_read("Torque_Enable", ["gripper", "elbow_flex"]) == {"gripper": 1, "elbow_flex": 1}


def test_handshake_names_missing_and_wrong_motors() -> None:
    with emulated("koch") as (_, port):
        motors = dict(ARMS["koch"].motors)
        motors["gripper"] = Motor(6, "xl430-w250")  # the emulator has an XL330-M288 there
        motors["extra"] = Motor(9, "xl330-m288")
        bus = ServoBus(port, "dynamixel", motors, retries=0)
        with pytest.raises(HandshakeError) as err:
            bus.connect()
        message = str(err.value)
        assert "gripper (id 6) is model 1200 (xl330-m288), expected 1060 (xl430-w250)" in message
        assert "extra (id 9) does not answer" in message
        assert not bus.is_connected
        bus.connect(handshake=False)  # without the handshake the port opens regardless
        assert bus.read("ID", "elbow_flex") == 3
        bus.disconnect()


def test_timeout_error_names_motor_register_and_tries() -> None:
    with emulated("so101") as (_, port):
        motors = {"gripper": Motor(6, "sts3215"), "ghost": Motor(7, "sts3215")}
        bus = ServoBus(port, "feetech", motors, retries=2, timeout_margin_ms=5)
        bus.connect(handshake=False)
        with pytest.raises(
            TransactionError,
            match=r"^no status packet from ghost \(id 7\) reading "
            r"Present_Position after 3 tries: timeout$",
        ):
            bus.read("Present_Position", "ghost")
        with pytest.raises(TransactionError, match=r"from ghost \(id 7\) reading Present_Position"):
            bus.sync_read("Present_Position")  # gripper answers, ghost does not
        stats = bus.stats
        assert stats.timeouts == 6 and stats.retries == 4 and stats.failures == 2
        assert bus.read("Present_Position", "gripper") == 2048  # the bus is still usable
        bus.disconnect()


def test_user_mistakes_are_clear() -> None:
    with emulated_arm("so101") as (_, bus):
        with pytest.raises(RegisterError, match="did you mean Goal_Position"):
            bus.read("Goal_Positon", "gripper")
        with pytest.raises(RegisterError, match="Present_Position is read-only"):
            bus.write("Present_Position", "gripper", 1)
        with pytest.raises(RegisterError, match=r"gripper: Goal_Position=40000: must be an integer in"):
            bus.sync_write("Goal_Position", {"gripper": 40000})
        with pytest.raises(BusError, match="unknown motor 'grip'"):
            bus.read("Present_Position", "grip")
    with pytest.raises(BusError, match="cannot open /nonexistent/tty"):
        ServoBus("/nonexistent/tty", "feetech", {}).connect()
    with pytest.raises(BusError, match="both have id 1"):
        ServoBus("x", "feetech", {"a": Motor(1, "sts3215"), "b": Motor(1, "sts3215")})
    with pytest.raises(BusError, match="xl430-w250 is a dynamixel servo, not feetech"):
        ServoBus("x", "feetech", {"a": Motor(1, "xl430-w250")})


def test_dynamixel_refusal_is_reported() -> None:
    with emulated_arm("koch") as (_, bus):
        bus.write("Torque_Enable", "gripper", 1)
        with pytest.raises(
            ServoRefused, match=r"gripper \(id 6\) refused writing Operating_Mode: .*access error"
        ):
            bus.write("Operating_Mode", "gripper", 4)
        assert bus.stats.servo_errors == 1
        bus.write("Torque_Enable", "gripper", 0)
        bus.write("Operating_Mode", "gripper", 4)
        assert bus.read("Operating_Mode", "gripper") == 4


def test_one_bus_from_several_threads() -> None:
    # A wide timeout margin: this is about the lock, not timing. Over a pty with the default 10 ms, a
    # starved emulator thread (a loaded CI machine) answers after the deadline, the retry's duplicate reply arrives during
    # the next thread's transaction and is taken as its answer (status packets carry no sequence number).
    with emulated_arm("so101", timeout_margin_ms=500) as (_, bus):
        errors: list[BaseException] = []

        def hammer(motor: str) -> None:
            try:
                for i in range(40):
                    bus.write("Goal_Position", motor, 1000 + i)
                    assert bus.read("Goal_Position", motor) == 1000 + i
                    assert len(bus.sync_read("Present_Position")) == 6
            except BaseException as e:
                errors.append(e)

        threads = [
            threading.Thread(target=hammer, args=(m,)) for m in ("gripper", "wrist_roll", "elbow_flex")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        stats = bus.stats
        assert stats.transactions >= 3 * 40 * 3 and stats.failures == 0 and stats.id_mismatches == 0


def test_calls_after_disconnect_raise() -> None:
    with emulated_arm("so101") as (_, bus):
        bus.disconnect()
        assert not bus.is_connected
        with pytest.raises(Disconnected, match="not connected"):
            bus.read("Present_Position", "gripper")
        bus.disconnect()  # idempotent


@pytest.mark.parametrize("pty", [False, True], ids=["in_process", "pty"])
def test_reconnect_to_the_same_emulator(pty: bool) -> None:
    with emulated_arm("so101", pty=pty) as (_, bus):
        bus.disconnect()
        bus.connect()
        assert bus.read("Model_Number", "gripper") == 777


def test_one_codec_registry_for_host_and_emulator() -> None:
    for robot, protocol in [("so101", "feetech"), ("koch", "dynamixel")]:
        emu = emulator_for(robot)
        bus = ServoBus(emu.transport(), protocol, ARMS[robot].motors)
        assert bus.codec is emu.codec is codec(protocol)
        assert bus.port == f"virtual:{protocol}"
    with pytest.raises(BusError, match=r"^protocol='can': must be one of feetech, dynamixel$"):
        ServoBus("x", "can", {})
    with pytest.raises(ValueError, match=r"^protocol='can': must be one of feetech, dynamixel$"):
        EmulatedBus("can", {})
