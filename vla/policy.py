"""The Policy protocol: from an observation, a chunk of actions."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    """A policy returns a chunk of absolute joint targets, shape (horizon, action_dim).

    `reset(task)` starts an episode with its language instruction. A closed-loop policy returns a
    chunk of length 1; a chunking policy (the VLA) returns its whole horizon.
    """

    def reset(self, task: str | None = None) -> None: ...

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray: ...
