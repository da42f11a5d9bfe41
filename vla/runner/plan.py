"""The action plan: which action each tick executes, and how an arriving chunk is merged into it.

A chunk computed from the observation of tick k has its row 0 at tick k. It arrives at a later tick (or
the same one, under `sync` with a fast policy); rows for ticks already executed are history.

    replace   the new chunk owns every tick from its arrival on (async, rtc: RTC did its merge while
              sampling)
    average   over the ticks both chunks cover, a linear cross-fade from the old chunk to the new one
    ensemble  ACT's temporal ensembling: every chunk covering a tick votes with weight exp(-m·i),
              i = 0 for the oldest
    sync      the new chunk starts at its arrival tick (the robot waited for it)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TimedChunk:
    start: int  # the tick of row 0
    actions: np.ndarray  # [H, A]

    @property
    def end(self) -> int:
        """First tick past the chunk."""
        return self.start + len(self.actions)

    def at(self, tick: int) -> np.ndarray | None:
        i = tick - self.start
        return self.actions[i] if 0 <= i < len(self.actions) else None


def ensemble_weights(n: int, decay: float) -> np.ndarray:
    """ACT: w_i = exp(-m·i) for i = 0 (oldest) .. n-1, normalised -> [n]."""
    w = np.exp(-decay * np.arange(n, dtype=np.float64))
    return w / w.sum()


class ActionPlan:
    def __init__(self, merge: str = "replace", ensemble_decay: float | None = None) -> None:
        self.merge = merge  # replace | average | sync
        self.ensemble_decay = ensemble_decay  # not None: ensembling instead of `merge`
        self.chunks: list[TimedChunk] = []  # oldest first; one unless ensembling

    def clear(self) -> None:
        self.chunks.clear()

    @property
    def current(self) -> TimedChunk | None:
        return self.chunks[-1] if self.chunks else None

    def end(self) -> int:
        """First tick with no planned action (0 when empty)."""
        return max((c.end for c in self.chunks), default=0)

    def remaining(self, tick: int) -> int:
        """Planned actions after tick `tick`."""
        return max(0, self.end() - tick - 1)

    def action_at(self, tick: int) -> np.ndarray | None:
        """The action for `tick` [A], or None if nothing is planned for it."""
        if self.ensemble_decay is not None:
            rows = [a for c in self.chunks if (a := c.at(tick)) is not None]
            if not rows:
                return None
            w = ensemble_weights(len(rows), self.ensemble_decay)
            return np.tensordot(w, np.stack(rows), axes=1)  # [A]
        current = self.current
        return None if current is None else current.at(tick)

    def add(self, chunk: np.ndarray, obs_tick: int, arrive_tick: int) -> None:
        """Merge a chunk [H, A] computed from tick `obs_tick`'s observation that is ready at `arrive_tick`."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if self.merge == "sync":
            self.chunks = [TimedChunk(arrive_tick, chunk)]
            return
        new = TimedChunk(obs_tick, chunk)
        if self.ensemble_decay is not None:
            self.chunks = [c for c in self.chunks if c.end > arrive_tick] + [new]
            return
        old = self.current
        if self.merge == "average" and old is not None:
            overlap = range(max(arrive_tick, new.start), min(old.end, new.end))
            merged = chunk.copy()
            for j, tick in enumerate(overlap):
                w_new = (j + 1) / (len(overlap) + 1)  # linear cross-fade, old-heavy first
                merged[tick - new.start] = (1 - w_new) * old.actions[tick - old.start] + w_new * chunk[
                    tick - new.start
                ]
            new = TimedChunk(obs_tick, merged)
        self.chunks = [new]
