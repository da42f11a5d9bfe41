"""Sign conventions and the register tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.errors import RegisterError
from hardware.protocol import (
    decode_sign_magnitude,
    decode_twos_complement,
    encode_sign_magnitude,
    encode_twos_complement,
)
from hardware.specs import ARMS
from hardware.tables import MODELS


@given(bit=st.integers(1, 31), data=st.data())
def test_sign_magnitude_round_trip(bit: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(-((1 << bit) - 1), (1 << bit) - 1))
    raw = encode_sign_magnitude(value, bit)
    assert 0 <= raw < 1 << (bit + 1)
    assert decode_sign_magnitude(raw, bit) == value


@given(bits=st.sampled_from([8, 16, 32]), data=st.data())
def test_twos_complement_round_trip(bits: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
    raw = encode_twos_complement(value, bits)
    assert 0 <= raw < 1 << bits
    assert decode_twos_complement(raw, bits) == value


def test_known_encodings() -> None:
    assert encode_sign_magnitude(-5, 15) == 0x8005
    assert encode_sign_magnitude(-2047, 11) == 0x0FFF
    assert decode_sign_magnitude(0x0800, 11) == 0  # "-0"
    assert encode_twos_complement(-1, 32) == 0xFFFFFFFF
    assert decode_twos_complement(0xFFFFF800, 32) == -2048


@pytest.mark.parametrize(
    "model, register, value, raw",
    [
        ("sts3215", "Homing_Offset", -100, "64 08"),  # sign in bit 11
        ("sts3215", "Present_Load", -3, "03 04"),  # sign in bit 10
        ("sts3215", "Goal_Position", -1, "01 80"),
        ("xl430-w250", "Homing_Offset", -100, "9C FF FF FF"),
        ("xl330-m288", "Goal_Position", 4095, "FF 0F 00 00"),
    ],
)
def test_register_codecs(model: str, register: str, value: int, raw: str) -> None:
    reg = MODELS[model].register(register)
    assert reg.encode(value) == bytes.fromhex(raw)
    assert reg.decode(bytes.fromhex(raw)) == value


def test_values_outside_a_register_are_refused() -> None:
    with pytest.raises(RegisterError, match=r"Homing_Offset=2048: must be an integer in -2047\.\.2047"):
        MODELS["sts3215"].register("Homing_Offset").encode(2048)
    with pytest.raises(RegisterError, match="Torque_Enable=-1"):
        MODELS["sts3215"].register("Torque_Enable").encode(-1)
    with pytest.raises(RegisterError, match=r"Goal_Position=1\.5: must be an integer"):
        MODELS["sts3215"].register("Goal_Position").encode(1.5)  # type: ignore[arg-type]
    assert MODELS["sts3215"].register("Torque_Enable").encode(True) == b"\x01"
    assert MODELS["sts3215"].register("Goal_Position").encode(np.int64(-7)) == bytes.fromhex("07 80")
    with pytest.raises(RegisterError, match="did you mean Goal_Position"):
        MODELS["sts3215"].register("Goal_Positon")


def test_tables_hold_the_documented_addresses() -> None:
    sts = {n: (r.address, r.size) for n, r in MODELS["sts3215"].registers.items()}
    for name, where in {
        "Model_Number": (3, 2),
        "ID": (5, 1),
        "Return_Delay_Time": (7, 1),
        "Min_Position_Limit": (9, 2),
        "Max_Position_Limit": (11, 2),
        "Homing_Offset": (31, 2),
        "Operating_Mode": (33, 1),
        "Torque_Enable": (40, 1),
        "Acceleration": (41, 1),
        "Goal_Position": (42, 2),
        "Lock": (55, 1),
        "Present_Position": (56, 2),
        "Present_Current": (69, 2),
    }.items():
        assert sts[name] == where, name
    x = {n: (r.address, r.size) for n, r in MODELS["xl330-m288"].registers.items()}
    for name, where in {
        "Drive_Mode": (10, 1),
        "Operating_Mode": (11, 1),
        "Homing_Offset": (20, 4),
        "Max_Position_Limit": (48, 4),
        "Min_Position_Limit": (52, 4),
        "Torque_Enable": (64, 1),
        "Bus_Watchdog": (98, 1),
        "Goal_Position": (116, 4),
        "Present_Velocity": (128, 4),
        "Present_Position": (132, 4),
    }.items():
        assert x[name] == where, name
    assert {m: t.model_number for m, t in MODELS.items()} == {
        "sts3215": 777,
        "xl430-w250": 1060,
        "xl330-m288": 1200,
        "xl330-m077": 1190,
    }


def test_registers_do_not_overlap_and_fit_the_memory() -> None:
    for table in MODELS.values():
        spans = sorted((r.address, r.address + r.size, r.name) for r in table.registers.values())
        for (_, end, name), (start, _, other) in itertools.pairwise(spans):
            assert end <= start, f"{table.model}: {name} overlaps {other}"
        assert spans[-1][1] <= table.memory_size
        for reg in table.registers.values():
            reg.encode(reg.default)  # every default fits its register


def test_arms() -> None:
    assert [m.id for m in ARMS["so101"].motors.values()] == [1, 2, 3, 4, 5, 6]
    koch = ARMS["koch"]
    assert koch.protocol == "dynamixel"
    assert [m.model for m in koch.motors.values()] == ["xl430-w250"] * 2 + ["xl330-m288"] * 4
