"""What one episode of the runner returns, and the per-step callback it feeds (moved here from the
retired vla/episode.py: the runner is the one loop)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Called with the observation the action was chosen from and the action actually sent.
StepCallback = Callable[[dict[str, np.ndarray], np.ndarray], None]


@dataclass
class EpisodeResult:
    seed: int | None
    task: str
    success: bool
    steps: int
    interrupted: bool = False
