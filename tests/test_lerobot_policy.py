"""policies/lerobot.py: a LeRobot policy driven through our Policy protocol, one select_action per step."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from policies.lerobot import LeRobotPolicy
from vla.policy import Policy
from vla.robot import STATE

CAM = "observation.images.top"


class FakeLeRobot:
    """Records what select_action receives; acts with the state's sum in every joint."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, batch: dict[str, Any]) -> torch.Tensor:
        self.seen.append(batch)
        return batch[STATE].sum().repeat(1, 3)  # [1, A] as LeRobot returns one action


def test_observation_reaches_lerobot_as_its_features() -> None:
    model = FakeLeRobot()
    policy = LeRobotPolicy(model, pre=lambda b: b | {"pre": True}, post=lambda a: a * 2, cameras=[CAM])
    assert isinstance(policy, Policy)
    policy.reset("touch the red cube")
    assert model.resets == 1
    frame = np.zeros((4, 6, 3), np.uint8)
    frame[..., 0] = 255  # red
    chunk = policy.select_chunk({STATE: np.array([1.0, 2.0]), CAM: frame, "other": np.ones(1)})
    batch = model.seen[-1]
    assert batch["pre"] and batch["task"] == "touch the red cube" and CAM in batch and "other" not in batch
    assert batch[STATE].dtype == torch.float32 and tuple(batch[STATE].shape) == (2,)
    image = batch[CAM]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 4, 6)
    assert torch.equal(image[0], torch.ones(4, 6)) and torch.equal(image[1:], torch.zeros(2, 4, 6))
    assert chunk.shape == (1, 3) and chunk.dtype == np.float32 and np.all(chunk == 6.0)  # post applied
