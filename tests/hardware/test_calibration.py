"""Calibration under LeRobot's conventions: units, limits, files (ours and LeRobot's own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hardware.calibration import (
    DEGREES,
    RANGE_0_100,
    CalibrationError,
    MotorCalibration,
    limits,
    load,
    save,
    to_raw,
    to_units,
)

CAL = MotorCalibration(id=1, drive_mode=0, homing_offset=-12, range_min=1000, range_max=3094)


def test_degrees_about_the_middle_of_the_range() -> None:
    assert to_units(2047, CAL, DEGREES) == pytest.approx(0.0)
    assert to_units(2047 + 4095 / 4, CAL, DEGREES) == pytest.approx(90.0)
    for raw in (1000, 1500, 2047, 3094):
        assert to_raw(to_units(raw, CAL, DEGREES), CAL, DEGREES) == raw
    low, high = limits(CAL, DEGREES)
    assert low == pytest.approx((1000 - 2047) * 360 / 4095) and high == pytest.approx(
        (3094 - 2047) * 360 / 4095
    )


def test_gripper_percent_with_drive_mode() -> None:
    assert to_units(1000, CAL, RANGE_0_100) == 0.0 and to_units(3094, CAL, RANGE_0_100) == 100.0
    assert to_units(5000, CAL, RANGE_0_100) == 100.0  # clamped to the range
    flipped = MotorCalibration(1, 1, 0, 1000, 3094)
    assert to_units(1000, flipped, RANGE_0_100) == 100.0
    assert to_raw(25.0, flipped, RANGE_0_100) == to_raw(75.0, CAL, RANGE_0_100)


def test_matches_lerobot_normalisation() -> None:
    """LeRobot's own bus maths on the same calibration gives the same figures (their read path)."""
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus
    from lerobot.motors.motors_bus import MotorCalibration as LeRobotCal

    motors = {
        "elbow": Motor(1, "sts3215", MotorNormMode.DEGREES),
        "grip": Motor(2, "sts3215", MotorNormMode.RANGE_0_100),
    }
    cal = {name: LeRobotCal(m.id, 0, -12, 1000, 3094) for name, m in motors.items()}
    bus = FeetechMotorsBus("/dev/null", motors, calibration=cal)  # never connected
    theirs = bus._normalize({1: 1500, 2: 1500})
    assert theirs[1] == pytest.approx(to_units(1500, CAL, DEGREES))
    assert theirs[2] == pytest.approx(to_units(1500, CAL, RANGE_0_100))


def test_files_round_trip_and_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    path = save(tmp_path / "so101" / "arm.json", {"shoulder_pan": CAL})
    assert load(path, {"shoulder_pan": 1}) == {"shoulder_pan": CAL}
    assert not list(path.parent.glob(".*"))  # no temporary file left
    with pytest.raises(CalibrationError, match="run vla-calibrate first"):
        load(tmp_path / "missing.json")
    with pytest.raises(CalibrationError, match="has id 1; this arm has it at 3"):
        load(path, {"shoulder_pan": 3})
    with pytest.raises(CalibrationError, match="no entry for motor 'gripper'"):
        load(path, {"gripper": 6})
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"gripper": {"id": 6, "drive_mode": 0, "homing_offset": 0, "range_min": 9, "range_max": 9}}
        )
    )
    with pytest.raises(CalibrationError, match="range_min=9, range_max=9"):
        load(bad)
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot read"):
        load(bad)
