"""The VLA policy: a trained checkpoint behind the Policy protocol.

Pre-processing turns a Robot observation (H×W×3 uint8 frames, a state vector) into the model's batch
contract; post-processing returns the first `n_action_steps` actions of the sampled chunk, in the robot's
units (the model un-normalises). `select_chunk_guided` is real-time chunking (the runner's `rtc` strategy):
the whole chunk, inpainted so that its first rows continue the previous chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.errors import VLAError
from vla.robot import IMAGE_PREFIX, STATE


def _device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class VLAPolicy:
    def __init__(
        self,
        robot: Any = None,
        checkpoint: str = "",
        device: str = "auto",
        num_steps: int | None = None,
        n_action_steps: int | None = None,
        seed: int = 0,
        rtc_beta: float = 5.0,
    ) -> None:
        from vla.model.vla import VLAModel

        path = Path(checkpoint).expanduser()
        if not checkpoint or not (path / "config.json").is_file():
            raise VLAError(
                f"policy.checkpoint={checkpoint!r}: not a checkpoint directory (no config.json there)"
            )
        self.device = _device(device)
        self.model = VLAModel.from_pretrained(path, device=self.device).eval()
        cfg = self.model.config
        self.cameras = list(cfg.cameras)
        self.num_steps = num_steps
        self.n_action_steps = int(n_action_steps or cfg.chunk_size)
        if not 1 <= self.n_action_steps <= cfg.chunk_size:
            raise VLAError(
                f"policy.n_action_steps={n_action_steps}: must be in 1..{cfg.chunk_size} (model.chunk_size)"
            )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.rtc_beta = float(rtc_beta)  # the runner sets it from runner.rtc_beta
        self.task: str = ""
        if robot is not None:
            self._check_robot(robot.observation_features, robot.action_features)

    def _check_robot(self, obs_features: dict, action_features: dict) -> None:
        cfg = self.model.config
        for cam in self.cameras:
            key = IMAGE_PREFIX + cam
            if key not in obs_features:
                have = [k for k in obs_features if k.startswith(IMAGE_PREFIX)]
                raise VLAError(f"the checkpoint needs camera {key}; the robot has {have}")
            h, w = obs_features[key]["shape"][:2]
            if cfg.image_size is not None and [h, w] != list(cfg.image_size):
                raise VLAError(
                    f"{key} is {h}x{w} on the robot; the checkpoint was trained on "
                    f"{cfg.image_size[0]}x{cfg.image_size[1]} (set env.image_size)"
                )
        dim = action_features["action"]["shape"][0]
        if dim != cfg.resolved_action_dim:
            raise VLAError(
                f"the robot takes {dim}-D actions; the checkpoint predicts {cfg.resolved_action_dim}-D"
            )

    def reset(self, task: str | None = None) -> None:
        self.task = task or ""

    def to_batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        """One Robot observation → a batch of one (the model's contract)."""
        batch: dict[str, Any] = {"task": [self.task]}
        state = torch.as_tensor(np.asarray(observation[STATE], dtype=np.float32))
        batch[STATE] = state[None].to(self.device)  # [1, S]
        for cam in self.cameras:
            frame = torch.as_tensor(observation[IMAGE_PREFIX + cam])  # [H, W, 3] uint8
            batch[IMAGE_PREFIX + cam] = (frame.permute(2, 0, 1)[None].float() / 255.0).to(self.device)
        return batch

    def _noise(self) -> torch.Tensor:
        cfg = self.model.config
        shape = (1, cfg.chunk_size, cfg.max_action_dim)
        return torch.randn(shape, generator=self.generator, device=self.device)  # [1, H, A_max]

    @torch.no_grad()
    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        noise = self._noise()
        chunk = self.model.sample_actions(self.to_batch(observation), num_steps=self.num_steps, noise=noise)
        return chunk[0, : self.n_action_steps].float().cpu().numpy()  # [n_action_steps, A]

    @torch.no_grad()
    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
    ) -> np.ndarray:
        """Real-time chunking: prev_chunk [H', A] in robot units, row 0 at this observation's tick (rows
        past its end repeat its last action); rows [0, d) are frozen, [d, H - s) decay, the rest are free.
        -> the whole chunk [H, A] (not cut to n_action_steps: the runner schedules it)."""
        from vla.model.flow import RTCGuidance
        from vla.runner.rtc import guidance_weights

        h = self.model.config.chunk_size
        prev = np.asarray(prev_chunk, dtype=np.float32)
        prev = prev[np.clip(np.arange(h), 0, len(prev) - 1)]  # [H, A]
        target = self.model.normalizer.normalize_action(torch.as_tensor(prev, device=self.device)[None])
        d = int(np.clip(inference_delay, 0, h))
        weights = guidance_weights(h, d, int(np.clip(execution_horizon, 0, h)))  # [H]
        guidance = RTCGuidance(target, torch.as_tensor(weights, device=self.device), self.rtc_beta)
        chunk = self.model.sample_actions(
            self.to_batch(observation), num_steps=self.num_steps, noise=self._noise(), guidance=guidance
        )
        return chunk[0].float().cpu().numpy()  # [H, A]
