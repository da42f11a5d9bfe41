"""Simulated robots: MuJoCo scenes, gymnasium envs and their Robot adapter.

Importing this package registers the SO-101 tabletop envs in our own gymnasium namespace:
`vla/SO101-v0` (kwarg `task`), `vla/SO101Touch-v0`, `vla/SO101Pick-v0`, `vla/SO101Bin-v0`.
"""

from __future__ import annotations

import gymnasium as gym

from envs.so101.tasks import TASKS

_ENTRY = "envs.so101.env:SO101Env"
ENV_IDS: dict[str, str] = {"touch": "vla/SO101Touch-v0", "pick": "vla/SO101Pick-v0", "bin": "vla/SO101Bin-v0"}


def _register() -> None:
    # Registration is idempotent so a re-import (tests, hydra) does not warn about overrides.
    if "vla/SO101-v0" not in gym.registry:
        gym.register(id="vla/SO101-v0", entry_point=_ENTRY, kwargs={"task": "pick"})
    for task, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=_ENTRY, kwargs={"task": task})


_register()

__all__ = ["ENV_IDS", "TASKS"]
