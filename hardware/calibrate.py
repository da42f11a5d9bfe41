"""Record an arm's homing offsets and ranges of motion, write them to the servos and to a
calibration file (LeRobot's format and, by default, LeRobot's place, so either tool can use it): what
`vla-calibrate` (vla/apps/calibrate.py) runs.

    vla-calibrate robot=so101 port=/dev/ttyACM0 robot_id=my_arm
    vla-calibrate robot=so101 port=/dev/ttyACM0 from_file=~/.cache/huggingface/lerobot/calibration/robots/so_follower/my_arm.json

The procedure is LeRobot's: torque off; the user puts the arm in the middle of its range and presses
Enter (each servo's homing offset is set so that this pose reads a half turn, 2047); then moves every
joint through its whole range and presses Enter (the extremes seen become the ranges). Joints without a
mechanical stop (the SO-101 wrist roll) get the whole encoder. `from_file=` writes an existing file
(ours or LeRobot's) to the servos instead.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING, DictConfig

from hardware.calibration import HALF_TURN, CalibrationError, MotorCalibration, load, save

SAMPLE_S = 0.02  # range recording polls the positions at 50 Hz


def homing_offset(protocol: str, present: int) -> int:
    """The offset that makes `present` (read with a zero offset) read HALF_TURN: Feetech reports
    actual − offset, Dynamixel actual + offset."""
    return present - HALF_TURN if protocol == "feetech" else HALF_TURN - present


def calibrate_arm(
    arm: object,
    prompt: Callable[[str], object] = input,
    range_done: Callable[[], bool] | None = None,
    show: Callable[[dict[str, tuple[int, int, int]]], None] | None = None,
) -> dict[str, MotorCalibration]:
    """Run the procedure on a connected `hardware.arms.ServoArm` (torque off) and write the result to its
    servos. `prompt(text)` waits for the user (Enter); `range_done()` ends the range recording (default:
    a second prompt); `show({joint: (min, present, max)})` displays live values."""
    from hardware.arms import RESOLUTION, ServoArm

    assert isinstance(arm, ServoArm)
    bus, spec = arm.bus, arm.spec
    names = [j.name for j in spec.joints]
    arm._set_torque(False)
    for name in names:  # start from the raw encoder: no offset, no limits
        bus.write("Homing_Offset", name, 0)
        bus.write("Min_Position_Limit", name, 0)
        bus.write("Max_Position_Limit", name, RESOLUTION - 1)
    prompt(f"Move the {spec.name} to the middle of its range of motion, then press Enter ")
    present = bus.sync_read("Present_Position")
    offsets = {n: homing_offset(spec.protocol, present[n]) for n in names}
    for name in names:
        bus.write("Homing_Offset", name, offsets[name])
    if range_done is None:
        done = threading.Event()

        def wait_enter() -> None:
            prompt("Move every joint through its whole range of motion, then press Enter ")
            done.set()

        threading.Thread(target=wait_enter, daemon=True).start()
        range_done = done.is_set
    start = bus.sync_read("Present_Position")
    low, high = dict(start), dict(start)
    stop = threading.Event()
    while not range_done():
        now = bus.sync_read("Present_Position")
        for n in names:
            low[n], high[n] = min(low[n], now[n]), max(high[n], now[n])
        if show is not None:
            show({n: (low[n], now[n], high[n]) for n in names})
        stop.wait(SAMPLE_S)
    calibration = {}
    for joint in spec.joints:
        lo, hi = (0, RESOLUTION - 1) if joint.full_turn else (low[joint.name], high[joint.name])
        if hi <= lo:
            raise CalibrationError(
                f"{joint.name} did not move (stayed at {lo}); run vla-calibrate again and move every joint "
                "through its whole range"
            )
        cal = MotorCalibration(joint.id, 0, offsets[joint.name], max(0, lo), min(RESOLUTION - 1, hi))
        calibration[joint.name] = cal.check(joint.name, RESOLUTION)
    arm.write_calibration(calibration)
    return calibration


@dataclass
class CalibrateConfig:
    arm: str = "so101"  # robot=<arm> on the command line (configs/ has a `robot/` group)
    port: str = MISSING
    robot_id: str = "default"
    calibration: str | None = None  # where to write (null: LeRobot's place for robot + robot_id)
    from_file: str | None = None  # write this existing file (ours or LeRobot's) instead of recording


def _table(calibration: dict[str, MotorCalibration]) -> str:
    rows = [f"{'joint':14s} {'id':>3s} {'offset':>7s} {'min':>5s} {'max':>5s}"]
    for name, c in calibration.items():
        rows.append(f"{name:14s} {c.id:3d} {c.homing_offset:7d} {c.range_min:5d} {c.range_max:5d}")
    return "\n".join(rows)


def run(cfg: DictConfig) -> Path:
    from hardware.arms import ServoArm, arm_spec

    spec = arm_spec(cfg.arm)
    arm = ServoArm(spec, port=cfg.port, calibration=cfg.calibration, robot_id=cfg.robot_id)
    existing = load(cfg.from_file, spec.ids) if cfg.from_file else None
    arm.connect(calibrate=False)  # torque stays off
    try:
        if existing is not None:
            arm.write_calibration(existing)
            calibration = existing
        else:

            def show(values: dict[str, tuple[int, int, int]]) -> None:
                line = "  ".join(f"{n[:8]} {lo}<{now}<{hi}" for n, (lo, now, hi) in values.items())
                print("\r" + line[:200], end="", file=sys.stderr, flush=True)

            calibration = calibrate_arm(arm, show=show if sys.stderr.isatty() else None)
            print(file=sys.stderr)
    finally:
        arm.disconnect()
    path = save(arm.calibration_path, calibration)
    print(_table(calibration))
    print(f"calibration written to the servos and to {path}")
    return path
