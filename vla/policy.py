"""The Policy protocol: from an observation, a chunk of actions."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from vla.features import Features


@runtime_checkable
class Policy(Protocol):
    """A policy returns a chunk of absolute joint targets, shape (horizon, action_dim).

    `reset(task)` starts an episode with its language instruction. A closed-loop policy returns a
    chunk of length 1; a chunking policy (the VLA) returns its whole horizon.
    """

    def reset(self, task: str | None = None) -> None: ...

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray: ...


# Optional capabilities, checked once with isinstance (the protocols are runtime-checkable) rather than
# with hasattr probes scattered through the callers.


@runtime_checkable
class GuidedPolicy(Policy, Protocol):
    """A policy that can continue a previous chunk (real-time chunking): rows [0, inference_delay) of
    `prev_chunk` are frozen, guidance decays until `execution_horizon` rows from the end; `beta` clips
    the guidance scale (None: the policy's own). Returns the whole chunk [H, A]."""

    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray: ...


@runtime_checkable
class ConnectablePolicy(Policy, Protocol):
    """A policy with something to open before the first chunk (a leader arm, a server connection)."""

    def connect(self) -> None: ...


@runtime_checkable
class ClosablePolicy(Policy, Protocol):
    """A policy holding a resource to release at the end (a child process, a socket, a terminal)."""

    def close(self) -> None: ...


@runtime_checkable
class FeaturedPolicy(Policy, Protocol):
    """A policy that declares, before its first chunk, the features it reads and the actions it returns
    (LeRobot feature dicts, as a Robot's) and the length of its chunks (None: it varies)."""

    @property
    def observation_features(self) -> Features: ...

    @property
    def action_features(self) -> Features: ...

    @property
    def chunk_size(self) -> int | None: ...
