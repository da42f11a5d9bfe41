"""The emulated servo bus: Feetech or Dynamixel servos with real register tables.

`EmulatedBus` serves a pty from a background thread (`vla-emulate`, the virtual SO-101, end-to-end tests)
or, through `EmulatedBus.transport()` (a `VirtualTransport`), a host's bus in-process (fast tests);
`EmulatedServo` is one servo's memory and dynamics; `Faults` injects corrupted, noisy, dropped and
delayed replies.
"""

from hardware.emulator.bus import EmulatedBus, EmulatorStats
from hardware.emulator.faults import FaultCounts, Faults
from hardware.emulator.servo import EmulatedServo
from hardware.emulator.transport import VirtualTransport

__all__ = ["EmulatedBus", "EmulatedServo", "EmulatorStats", "FaultCounts", "Faults", "VirtualTransport"]
