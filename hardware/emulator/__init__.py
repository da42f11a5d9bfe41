"""The emulated servo bus: Feetech or Dynamixel servos with real register tables on a pseudo-terminal.

`EmulatedBus` serves a pty from a background thread (tests, `vla-emulate`, the virtual SO-101);
`EmulatedServo` is one servo's memory and dynamics; `Faults` injects corrupted, noisy, dropped and
delayed replies.
"""

from hardware.emulator.bus import EmulatedBus, EmulatorStats
from hardware.emulator.faults import FaultCounts, Faults
from hardware.emulator.servo import EmulatedServo

__all__ = ["EmulatedBus", "EmulatedServo", "EmulatorStats", "FaultCounts", "Faults"]
