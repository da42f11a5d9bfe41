"""An emulated arm and a ServoBus connected to it over a real pseudo-terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hardware.bus import ServoBus
from hardware.emulator import EmulatedBus, Faults
from hardware.tables import ARMS


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
