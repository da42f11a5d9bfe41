"""Joint calibration under LeRobot's conventions, so datasets recorded here and by LeRobot on the same arm
are interchangeable: joints in degrees about the middle of the calibrated range, the gripper in 0–100.

A calibration file is LeRobot's JSON: one entry per motor name,

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -12, "range_min": 750, "range_max": 3300}, ...}

`homing_offset` is written to the servo (it shifts the reported position so that the calibration pose reads
a half turn, 2047); `range_min`/`range_max` are raw steps after that shift and become the software joint
limits. Degrees: (raw − mid) · 360 / (resolution − 1), mid = (min + max) / 2. Range 0–100: the position's
place between min and max (reversed when drive_mode is 1).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vla.errors import VLAError
from vla.io import write_text_atomic

DEGREES, RANGE_0_100 = "degrees", "range_0_100"
NORM_MODES = (DEGREES, RANGE_0_100)
HALF_TURN = 2047  # the calibration pose reads this on a 4096-step encoder


class CalibrationError(VLAError):
    """A calibration file or value that cannot be used."""


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def check(self, name: str, resolution: int = 4096) -> MotorCalibration:
        if not 0 <= self.range_min < self.range_max <= resolution - 1:
            raise CalibrationError(
                f"{name}: range_min={self.range_min}, range_max={self.range_max} must satisfy "
                f"0 <= range_min < range_max <= {resolution - 1}; run vla-calibrate again"
            )
        if self.drive_mode not in (0, 1):
            raise CalibrationError(f"{name}: drive_mode={self.drive_mode} must be 0 or 1")
        return self


def to_units(raw: float, cal: MotorCalibration, mode: str, resolution: int = 4096) -> float:
    """Raw steps (after the servo's homing offset) -> degrees or 0–100."""
    if mode == DEGREES:
        mid = (cal.range_min + cal.range_max) / 2
        return (raw - mid) * 360.0 / (resolution - 1)
    bounded = min(cal.range_max, max(cal.range_min, raw))
    percent = (bounded - cal.range_min) / (cal.range_max - cal.range_min) * 100.0
    return 100.0 - percent if cal.drive_mode else percent


def to_raw(value: float, cal: MotorCalibration, mode: str, resolution: int = 4096) -> int:
    """Degrees or 0–100 -> raw steps, rounded to the nearest step."""
    if mode == DEGREES:
        mid = (cal.range_min + cal.range_max) / 2
        return round(value * (resolution - 1) / 360.0 + mid)
    percent = 100.0 - value if cal.drive_mode else value
    percent = min(100.0, max(0.0, percent))
    return round(percent / 100.0 * (cal.range_max - cal.range_min) + cal.range_min)


def limits(cal: MotorCalibration, mode: str, resolution: int = 4096) -> tuple[float, float]:
    """The calibrated range in robot units: the software joint limits."""
    low, high = to_units(cal.range_min, cal, mode, resolution), to_units(cal.range_max, cal, mode, resolution)
    return (min(low, high), max(low, high))


def load(path: str | Path, motors: dict[str, int] | None = None) -> dict[str, MotorCalibration]:
    """Read a calibration file (ours or LeRobot's: the same format). `motors` (name -> id), when given,
    must all be there with matching ids."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"no calibration file at {path}; run vla-calibrate first") from None
    except (OSError, ValueError) as e:
        raise CalibrationError(f"cannot read the calibration file {path}: {e}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: expected a JSON object of motors")
    fields = ("id", "drive_mode", "homing_offset", "range_min", "range_max")
    out: dict[str, MotorCalibration] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or any(not isinstance(entry.get(f), int) for f in fields):
            raise CalibrationError(f"{path}: motor {name!r} needs integer fields {', '.join(fields)}")
        out[name] = MotorCalibration(**{f: int(entry[f]) for f in fields}).check(f"{path}: {name}")
    for name, motor_id in (motors or {}).items():
        if name not in out:
            raise CalibrationError(f"{path} has no entry for motor {name!r}; run vla-calibrate again")
        if out[name].id != motor_id:
            raise CalibrationError(
                f"{path}: motor {name!r} has id {out[name].id}; this arm has it at {motor_id}"
            )
    return out


def save(path: str | Path, calibration: dict[str, MotorCalibration]) -> Path:
    """Write atomically (a temporary file in the same directory, then a rename)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(as_dict(calibration), indent=4) + "\n")
    return path


def default_path(robot_type: str, robot_id: str, leader: bool = False) -> Path:
    """LeRobot's place for this arm's calibration, so a file either tool wrote serves both:
    $HF_LEROBOT_CALIBRATION (default $HF_LEROBOT_HOME/calibration, ~/.cache/huggingface/lerobot/calibration)
    / robots (followers) or teleoperators (leaders) / <robot_type> / <robot_id>.json."""
    home = Path(os.environ.get("HF_LEROBOT_HOME", "~/.cache/huggingface/lerobot")).expanduser()
    root = Path(os.environ.get("HF_LEROBOT_CALIBRATION", home / "calibration")).expanduser()
    return root / ("teleoperators" if leader else "robots") / robot_type / f"{robot_id}.json"


def as_dict(calibration: dict[str, MotorCalibration]) -> dict[str, Any]:
    return {name: asdict(cal) for name, cal in calibration.items()}
