"""An emulated arm and a ServoBus connected to it over a real pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hardware.bus import ServoBus
from hardware.calibration import MotorCalibration, save
from hardware.emulator import EmulatedBus, Faults
from hardware.specs import ARMS


def emulator_for(robot: str, faults: Faults | None = None, **kwargs: Any) -> EmulatedBus:
    arm = ARMS[robot]
    return EmulatedBus(arm.protocol, {m.id: m.model for m in arm.motors.values()}, faults=faults, **kwargs)


@contextmanager
def emulated_arm(
    robot: str, faults: Faults | None = None, emulator: dict[str, Any] | None = None, **bus_kwargs: Any
) -> Iterator[tuple[EmulatedBus, ServoBus]]:
    """(emulator, connected bus) for one of ARMS; both are closed afterwards."""
    arm = ARMS[robot]
    with emulator_for(robot, faults, **(emulator or {})) as emu:
        assert emu.port is not None
        bus = ServoBus(emu.port, arm.protocol, arm.motors, **bus_kwargs)
        bus.connect()
        try:
            yield emu, bus
        finally:
            bus.disconnect()


def write_calibration(path: Path, robot: str) -> Path:
    """Joints ±800 steps about the half turn, the gripper 2000..3000, no homing offsets."""
    cal = {
        j.name: MotorCalibration(j.id, 0, 0, 2047 - 800, 2047 + 800)
        if j.name != "gripper"
        else MotorCalibration(j.id, 0, 0, 2000, 3000)
        for j in ARMS[robot].joints
    }
    return save(path, cal)


def start_emulator(cwd: Path, robot: str = "so101", *overrides: str) -> tuple[subprocess.Popen, str]:
    """`vla-emulate robot=<robot> <overrides>` in its own process -> (the process, its port)."""
    exe = str(Path(sys.executable).with_name("vla-emulate"))
    proc = subprocess.Popen(
        [exe, f"robot={robot}", *overrides],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("port: "), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.removeprefix("port: ").strip()


def torque_of(port: str, robot: str = "so101") -> list[int]:
    """Torque_Enable of every servo on a (free) port, read through a fresh bus."""
    spec = ARMS[robot]
    bus = ServoBus(port, spec.protocol, spec.motors)
    bus.connect()
    try:
        return list(bus.sync_read("Torque_Enable").values())
    finally:
        bus.disconnect()
