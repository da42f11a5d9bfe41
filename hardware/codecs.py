"""The one registry of servo protocols, for the host's bus and the emulator alike: a name -> its `Codec`.

    codec("feetech").instruction(1, Instruction.PING)   # the bytes of a PING to servo 1

A protocol is added here once (its framing in a module beside `hardware.feetech`), and both sides of the
wire speak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hardware.dynamixel import DYNAMIXEL
from hardware.errors import BusError
from hardware.feetech import FEETECH
from hardware.protocol import Codec

CODECS: Mapping[str, Codec] = MappingProxyType({"feetech": FEETECH, "dynamixel": DYNAMIXEL})


class UnknownProtocol(BusError, ValueError):
    """A protocol name that is not in the registry."""


def codec(protocol: str) -> Codec:
    """The codec of `protocol` ("feetech" | "dynamixel"); UnknownProtocol names the choices."""
    try:
        return CODECS[protocol]
    except (KeyError, TypeError):
        raise UnknownProtocol(f"protocol={protocol!r}: must be one of {', '.join(CODECS)}") from None
