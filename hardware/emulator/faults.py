"""Fault injection for the emulated servo bus: what a noisy cable and a slow servo do to replies.

Each reply independently may be dropped, have its checksum corrupted, or be preceded by noise; the
replies to each request may start late (as behind a USB adapter's latency timer). One seeded `random.Random` draws them, so a run with the same seed and the same requests
injects the same faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vla.errors import VLAError


@dataclass(frozen=True)
class Faults:
    """Per-reply fault probabilities (0..1) and an extra delay; all zero means a perfect bus."""

    corrupt: float = 0.0  # the reply's checksum / CRC is damaged
    garbage: float = 0.0  # 1..garbage_max_bytes random bytes are sent before the reply
    drop: float = 0.0  # the reply is not sent at all
    delay_ms: float = 0.0  # the replies to each request start this much later (on top of Return_Delay_Time)
    seed: int = 0
    garbage_max_bytes: int = 8

    def __post_init__(self) -> None:
        for name in ("corrupt", "garbage", "drop"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise VLAError(f"faults.{name}={value}: must be a probability in [0, 1]")
        if not 0.0 <= self.delay_ms <= 1000.0:
            raise VLAError(f"faults.delay_ms={self.delay_ms}: must be in [0, 1000] ms")
        if not 1 <= self.garbage_max_bytes <= 256:
            raise VLAError(f"faults.garbage_max_bytes={self.garbage_max_bytes}: must be in 1..256")

    @property
    def any(self) -> bool:
        return bool(self.corrupt or self.garbage or self.drop or self.delay_ms)

    def describe(self) -> str:
        if not self.any:
            return "none"
        parts = [f"{n}={getattr(self, n):g}" for n in ("corrupt", "garbage", "drop") if getattr(self, n)]
        if self.delay_ms:
            parts.append(f"delay_ms={self.delay_ms:g}")
        return " ".join(parts) + f" (seed {self.seed})"


@dataclass
class FaultCounts:
    corrupted: int = 0
    garbage: int = 0
    dropped: int = 0
    delayed: int = 0  # requests whose replies were delayed

    @property
    def total(self) -> int:
        return self.corrupted + self.garbage + self.dropped + self.delayed


@dataclass
class FaultInjector:
    """Applies `Faults` to one reply at a time; not thread-safe (the serving thread owns it)."""

    faults: Faults
    counts: FaultCounts = field(default_factory=FaultCounts)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.faults.seed)

    def reset(self, faults: Faults) -> None:
        """Other faults from now on; the counts carry on, the random sequence restarts from its seed."""
        self._rng = random.Random(faults.seed)
        self.faults = faults

    def delay_s(self) -> float:
        """Seconds to wait before answering a request (counted once per request that is delayed)."""
        if self.faults.delay_ms:
            self.counts.delayed += 1
        return self.faults.delay_ms / 1000.0

    def apply(self, reply: bytes) -> bytes | None:
        """The bytes to send for one reply, or None when it is dropped."""
        f, rng = self.faults, self._rng
        # The three decisions are drawn for every reply, whatever their outcome.
        drop, corrupt, garbage = rng.random() < f.drop, rng.random() < f.corrupt, rng.random() < f.garbage
        if drop:
            self.counts.dropped += 1
            return None
        if corrupt:
            self.counts.corrupted += 1
            reply = reply[:-1] + bytes([reply[-1] ^ rng.randrange(1, 256)])
        if garbage:
            self.counts.garbage += 1
            reply = rng.randbytes(rng.randint(1, f.garbage_max_bytes)) + reply
        return reply
