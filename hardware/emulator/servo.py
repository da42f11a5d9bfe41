"""One emulated servo: its register memory, and how its position follows the goal.

The memory is the servo's control table as bytes, initialised from the table's factory defaults, so
the host reads and writes exactly what a real servo would hold. Position has two frames:

    actual   the encoder's own steps (0..4095 per turn); what a physics model sees
    present  what Present_Position reports: actual − Homing_Offset on Feetech, actual + Homing_Offset
             on Dynamixel; Goal_Position is written in this frame too

With `dynamics="first_order"` the actual position approaches the goal with time constant τ while torque
is on (exact exponential step, computed lazily from the time since the last look, so nothing ticks in
the background). With `dynamics="external"` the servo never moves itself: a physics model reads
`goal_position()` and reports back through `set_present_position()`. All methods are thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from enum import StrEnum

from hardware.protocol import ControlTable, Register
from hardware.tables import model_table

STEPS_PER_REV = 4096
DXL_VELOCITY_UNIT = 0.229  # rpm per Present_Velocity unit on the X series
_POSITION_MODES = {"feetech": {0}, "dynamixel": {3, 4, 5}}  # modes where Goal_Position drives the servo
_LIMITED_MODES = {"feetech": {0}, "dynamixel": {3}}  # modes where the position limits clamp the goal


class WriteResult(StrEnum):
    OK = "ok"
    ACCESS = "access"  # read-only register, or EEPROM while torque is on (Dynamixel)
    RANGE = "range"  # outside the servo's memory


class EmulatedServo:
    def __init__(
        self,
        id: int,
        model: str,
        *,
        time_constant_s: float = 0.05,
        dynamics: str = "first_order",
        position: float = 2048.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if dynamics not in ("first_order", "external"):
            raise ValueError(f"dynamics={dynamics!r}: must be 'first_order' or 'external'")
        if time_constant_s <= 0:
            raise ValueError(f"time_constant_s={time_constant_s}: must be > 0")
        self.table: ControlTable = model_table(model)
        self.model = model
        self.protocol = self.table.protocol
        self.dynamics = dynamics
        self.time_constant_s = time_constant_s
        self.memory = bytearray(self.table.memory_size)
        self._lock = threading.RLock()
        self._clock = clock
        self._last = clock()
        self._actual = float(position)  # encoder steps
        self._velocity = 0.0  # encoder steps / s
        # present = actual + sign × Homing_Offset
        self._offset_sign = -1 if self.protocol == "feetech" else 1
        for reg in self.table.registers.values():
            self._poke(reg, reg.default)
        self._poke(self.table.register("ID"), id)
        self._poke(self.table.register("Goal_Position"), self._to_present(self._actual))
        self._refresh()

    # --- registers ---------------------------------------------------------------------------------
    def _poke(self, reg: Register, value: int) -> None:
        low, high = reg.limits
        self.memory[reg.address : reg.address + reg.size] = reg.encode(max(low, min(high, value)))

    def _peek(self, name: str) -> int:
        reg = self.table.registers[name]
        return reg.decode(bytes(self.memory[reg.address : reg.address + reg.size]))

    def register(self, name: str) -> int:
        """A register's current value, decoded (after bringing the dynamics up to now)."""
        with self._lock:
            self.tick()
            return self._peek(name)

    def set_register(self, name: str, value: int) -> None:
        """Set a register directly, as the servo itself would (read-only ones included, and kept: the
        Present_* registers are recomputed only after a writable register changes)."""
        with self._lock:
            self.tick()
            reg = self.table.register(name)
            self._poke(reg, value)
            if reg.writable:
                self._refresh()

    @property
    def id(self) -> int:
        with self._lock:
            return self._peek("ID")

    @property
    def torque_enabled(self) -> bool:
        with self._lock:
            return bool(self._peek("Torque_Enable"))

    @property
    def return_delay_s(self) -> float:
        with self._lock:
            return self._peek("Return_Delay_Time") * 2e-6

    @property
    def status_level(self) -> int:
        """Feetech Response_Status_Level (0, 1) or Dynamixel Status_Return_Level (0, 1, 2)."""
        with self._lock:
            if self.protocol == "feetech":
                return self._peek("Response_Status_Level")
            return self._peek("Status_Return_Level")

    def read(self, address: int, size: int) -> bytes | None:
        """The memory bytes at address..address+size, or None outside the memory."""
        with self._lock:
            if address + size > len(self.memory) or size < 1:
                return None
            self.tick()
            return bytes(self.memory[address : address + size])

    def write(self, address: int, data: bytes) -> WriteResult:
        """Write memory as a WRITE instruction does: read-only bytes are refused (Dynamixel) or ignored
        (Feetech), and a Dynamixel with torque on refuses EEPROM writes."""
        with self._lock:
            end = address + len(data)
            if end > len(self.memory):
                return WriteResult.RANGE
            self.tick()  # integrate up to now under the old goal and torque state
            touched = [
                r for r in self.table.registers.values() if r.address < end and address < r.address + r.size
            ]
            if self.protocol == "dynamixel":
                torque_on = bool(self._peek("Torque_Enable"))
                if any(not r.writable or (r.eeprom and torque_on) for r in touched):
                    return WriteResult.ACCESS
                self.memory[address:end] = data
            else:
                protected = {
                    a for r in touched if not r.writable for a in range(r.address, r.address + r.size)
                }
                for offset, byte in enumerate(data):
                    if address + offset not in protected:
                        self.memory[address + offset] = byte
            self._refresh()
            return WriteResult.OK

    # --- position ----------------------------------------------------------------------------------
    def _to_present(self, actual: float) -> int:
        return round(actual + self._offset_sign * self._peek("Homing_Offset"))

    def _in_position_mode(self) -> bool:
        return self._peek("Operating_Mode") in _POSITION_MODES[self.protocol]

    def goal_position(self) -> float:
        """The goal in encoder steps (actual frame), clamped to the position limits as the servo does."""
        with self._lock:
            goal = self._peek("Goal_Position")
            low, high = self._peek("Min_Position_Limit"), self._peek("Max_Position_Limit")
            if self._peek("Operating_Mode") in _LIMITED_MODES[self.protocol] and low < high:
                goal = max(low, min(high, goal))
            return goal - self._offset_sign * self._peek("Homing_Offset")

    def present_position(self) -> float:
        """The actual position in encoder steps, after bringing the dynamics up to now."""
        with self._lock:
            self.tick()
            return self._actual

    def set_present_position(self, steps: float, velocity: float | None = None) -> None:
        """For an external physics model: the actual position (encoder steps) and velocity (steps/s)."""
        with self._lock:
            self._actual = float(steps)
            self._velocity = 0.0 if velocity is None else float(velocity)
            self._last = self._clock()
            self._refresh()

    def tick(self, now: float | None = None) -> None:
        """Advance the first-order dynamics to `now` (a no-op with external dynamics)."""
        with self._lock:
            now = self._clock() if now is None else now
            dt = now - self._last
            if self.dynamics == "external" or dt <= 0:
                return
            self._last = now
            if self._peek("Torque_Enable") and self._in_position_mode():
                goal = self.goal_position()
                moved = (goal - self._actual) * (1.0 - math.exp(-dt / self.time_constant_s))
                self._actual += moved
                self._velocity = moved / dt
            else:
                self._velocity = 0.0
            self._refresh()

    def _refresh(self) -> None:
        """Write the Present_* registers from the actual state."""
        registers = self.table.registers
        self._poke(registers["Present_Position"], self._to_present(self._actual))
        if self.protocol == "feetech":
            velocity = round(self._velocity)  # steps/s
        else:
            velocity = round(self._velocity * 60.0 / STEPS_PER_REV / DXL_VELOCITY_UNIT)
        self._poke(registers["Present_Velocity"], velocity)
        moving = self._peek("Torque_Enable") and abs(self.goal_position() - self._actual) > 1.0
        self._poke(registers["Moving"], int(bool(moving)))
        if "Realtime_Tick" in registers:
            self._poke(registers["Realtime_Tick"], int(self._clock() * 1000) % 32768)
