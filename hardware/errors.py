"""Errors of the serial-servo layer.

Every error here is a `VLAError`, so an app prints it as one line and exits non-zero: a servo that does
not answer, a cable that was pulled, a register name with a typo are things a user fixes, not bugs.
Messages name the motor (and its id), the register and what went wrong.
"""

from __future__ import annotations

from vla.errors import VLAError


class BusError(VLAError):
    """Something went wrong talking to servos on a bus."""


class Disconnected(BusError):
    """The port itself failed (cable pulled, adapter gone, emulator closed); the bus is now disconnected."""


class TransactionError(BusError):
    """A transaction still failed after its retries: no reply, bad checksums, wrong ids."""


class ServoRefused(BusError):
    """A servo answered with an error that means the instruction was not carried out."""


class HandshakeError(BusError):
    """At connect: a motor is missing or is another model than the config says."""


class RegisterError(BusError):
    """An unknown register, a read-only register written, or a value that does not fit the register."""


class PacketError(BusError):
    """A packet that cannot be decoded (too short, wrong shape); the bus counts these and retries."""
