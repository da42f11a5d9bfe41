"""An emulated arm and a ServoBus connected to it: in-process (fast; the default) or over a real
pseudo-terminal (`pty=True`: the serial path end to end), and `vla-emulate` in its own process."""

from __future__ import annotations

import os
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
from hardware.transport import Transport

REPO = Path(__file__).resolve().parents[2]
EMULATE = [sys.executable, "-m", "vla.apps.emulate"]  # `vla-emulate`, from this checkout (see app_env)
CALIBRATE = [sys.executable, "-m", "vla.apps.calibrate"]  # `vla-calibrate`


def app_env(**extra: str) -> dict[str, str]:
    """The environment for EMULATE / CALIBRATE: this checkout first on the path, whatever the cwd."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def emulator_for(robot: str, faults: Faults | None = None, **kwargs: Any) -> EmulatedBus:
    arm = ARMS[robot]
    return EmulatedBus(arm.protocol, {m.id: m.model for m in arm.motors.values()}, faults=faults, **kwargs)


@contextmanager
def emulated(
    robot: str, faults: Faults | None = None, *, pty: bool = False, **kwargs: Any
) -> Iterator[tuple[EmulatedBus, str | Transport]]:
    """(emulator, what to pass a ServoBus or ServoArm as its port) for one of ARMS: the in-process
    transport, or with `pty` the emulator's pseudo-terminal. The emulator is stopped afterwards."""
    emu = emulator_for(robot, faults, **kwargs)
    try:
        port: str | Transport = emu.start() if pty else emu.transport()
        yield emu, port
    finally:
        emu.stop()


@contextmanager
def emulated_arm(
    robot: str,
    faults: Faults | None = None,
    emulator: dict[str, Any] | None = None,
    *,
    pty: bool = False,
    **bus_kwargs: Any,
) -> Iterator[tuple[EmulatedBus, ServoBus]]:
    """(emulator, connected bus) for one of ARMS, in-process or over a pty; both are closed afterwards."""
    arm = ARMS[robot]
    with emulated(robot, faults, pty=pty, **(emulator or {})) as (emu, port):
        bus = ServoBus(port, arm.protocol, arm.motors, **bus_kwargs)
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
    proc = subprocess.Popen(
        [*EMULATE, f"robot={robot}", *overrides],
        cwd=cwd,
        env=app_env(),
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
