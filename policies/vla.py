"""The VLA policy: a trained checkpoint behind the Policy protocol.

Pre-processing turns a Robot observation (H×W×3 uint8 frames, a state vector) into the model's batch
contract; post-processing returns the first `n_action_steps` actions of the sampled chunk, in the robot's
units (the model un-normalises). `select_chunk_guided` is real-time chunking (the runner's `rtc` strategy):
the whole chunk, inpainted so that its first rows continue the previous chunk.

On a GPU the defaults are the fast path: bf16 weights, the prefix key/value cache reused across denoising
steps, the whole chunk captured once in a CUDA graph (`vla.model.graphed`; `compile=true` runs
torch.compile first) and replayed for every observation, and frames copied through pinned host memory.
The guided (RTC) call differentiates through the model, so it stays eager.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vla.errors import VLAError
from vla.features import ACTION, IMAGE_PREFIX, STATE, TASK
from vla.model.batch import image_tensor
from vla.robot import Robot
from vla.serve.spec import ObservationFeature, PolicySpec

if TYPE_CHECKING:
    from vla.model.vla import VLAModel

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(requested: str, device: torch.device) -> torch.dtype:
    if requested == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if requested not in DTYPES:
        raise VLAError(f"policy.dtype={requested!r}: choose auto, {', '.join(DTYPES)}")
    return DTYPES[requested]


def _device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class VLAPolicy:
    def __init__(
        self,
        robot: Robot | None = None,
        checkpoint: str = "",
        device: str = "auto",
        num_steps: int | None = None,
        n_action_steps: int | None = None,
        seed: int = 0,
        rtc_beta: float = 5.0,
        dtype: str = "auto",
        graphed: bool | None = None,
        compile: bool = False,
    ) -> None:
        from vla.model.vla import VLAModel

        path = Path(checkpoint).expanduser()
        if not checkpoint or not (path / "config.json").is_file():
            raise VLAError(
                f"policy.checkpoint={checkpoint!r}: not a checkpoint directory (no config.json there)"
            )
        device_ = _device(device)
        model = VLAModel.from_pretrained(path, device=device_).to(_dtype(dtype, device_))
        self._setup(model, robot, num_steps, n_action_steps, seed, rtc_beta, graphed, compile)

    @classmethod
    def from_model(
        cls,
        model: VLAModel,
        robot: Robot | None = None,
        num_steps: int | None = None,
        n_action_steps: int | None = None,
        seed: int = 0,
        rtc_beta: float = 5.0,
        graphed: bool | None = None,
        compile: bool = False,
    ) -> VLAPolicy:
        """A policy around a VLAModel already in memory (on its device and dtype): benchmarks, tests."""
        policy = cls.__new__(cls)
        policy._setup(model, robot, num_steps, n_action_steps, seed, rtc_beta, graphed, compile)
        return policy

    def _setup(
        self,
        model: VLAModel,
        robot: Robot | None,
        num_steps: int | None,
        n_action_steps: int | None,
        seed: int,
        rtc_beta: float,
        graphed: bool | None,
        compile: bool,
    ) -> None:
        self.model = model.eval()
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        cfg = self.model.config
        if num_steps is not None:
            cfg.num_steps = int(num_steps)  # one value for the eager, graphed and guided paths
        # The GPU path: the whole chunk replayed from a CUDA graph (captured on the first call, which the
        # runner's warm-up makes before the first tick), frames staged through pinned host memory.
        on_gpu_flow = self.device.type == "cuda" and self.model.flow is not None
        self.graphed = on_gpu_flow if graphed is None else bool(graphed)
        self.compile = bool(compile)
        self._sampler: Any = None
        self._staging: dict[str, torch.Tensor] = {}  # pinned host buffers, one per input key
        self.cameras = list(cfg.cameras)
        self.num_steps = num_steps
        self.n_action_steps = int(n_action_steps or cfg.chunk_size)
        if not 1 <= self.n_action_steps <= cfg.chunk_size:
            raise VLAError(
                f"policy.n_action_steps={n_action_steps}: must be in 1..{cfg.chunk_size} (model.chunk_size)"
            )
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.rtc_beta = float(rtc_beta)  # when a guided call names no beta (the runner always does)
        self.task: str = ""
        if robot is not None:
            self._check_robot(robot.observation_features, robot.action_features)

    def _check_robot(self, obs_features: dict, action_features: dict) -> None:
        cfg = self.model.config
        for cam in self.cameras:
            key = IMAGE_PREFIX + cam
            if key not in obs_features:
                have = [k for k in obs_features if k.startswith(IMAGE_PREFIX)]
                if cfg.missing_cameras == "mask" and any(
                    IMAGE_PREFIX + c in obs_features for c in self.cameras
                ):
                    logger.warning("the checkpoint expects camera %s, the robot lacks it: masked out", key)
                    continue
                raise VLAError(f"the checkpoint needs camera {key}; the robot has {have}")
            h, w = obs_features[key]["shape"][:2]
            if cfg.image_size is not None and [h, w] != list(cfg.image_size):
                raise VLAError(
                    f"{key} is {h}x{w} on the robot; the checkpoint was trained on "
                    f"{cfg.image_size[0]}x{cfg.image_size[1]} (set robot.image_size)"
                )
        dim = action_features[ACTION]["shape"][0]
        if dim != cfg.resolved_action_dim:
            raise VLAError(
                f"the robot takes {dim}-D actions; the checkpoint predicts {cfg.resolved_action_dim}-D"
            )

    def reset(self, task: str | None = None) -> None:
        self.task = task or ""

    def policy_spec(self) -> PolicySpec:
        """What `vla-serve` tells its clients: the checkpoint's cameras (any size when the model takes
        any), state width, action width and the chunk this policy returns."""
        cfg = self.model.config
        h, w = cfg.image_size if cfg.image_size is not None else (None, None)
        obs: dict[str, ObservationFeature] = {STATE: ObservationFeature("float32", (cfg.state_dim,))}
        for cam in self.cameras:
            obs[IMAGE_PREFIX + cam] = ObservationFeature("uint8", (h, w, 3))
        model = f"vla ({cfg.head} head, {cfg.backbone.family} backbone)"
        return PolicySpec(obs, cfg.resolved_action_dim, self.n_action_steps, None, model, guided=True)

    def to_batch(self, observation: dict[str, np.ndarray]) -> dict[str, Any]:
        """One Robot observation → a batch of one (the model's contract)."""
        batch: dict[str, Any] = {TASK: [self.task]}
        state = self._to_device(STATE, np.asarray(observation[STATE], dtype=np.float32))
        batch[STATE] = state[None].float()  # [1, S]
        for cam in self.cameras:
            if IMAGE_PREFIX + cam not in observation:  # model.missing_cameras=mask (checked at load)
                continue
            frame = self._to_device(cam, np.asarray(observation[IMAGE_PREFIX + cam]))  # [H, W, 3] uint8
            batch[IMAGE_PREFIX + cam] = image_tensor(frame)[None]  # [1, 3, H, W]
        return batch

    def _to_device(self, key: str, array: np.ndarray) -> torch.Tensor:
        """Host array -> device tensor; on a GPU through a reused pinned buffer (an asynchronous copy)."""
        host = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type != "cuda":
            return host
        staging = self._staging.get(key)
        if staging is None or staging.shape != host.shape or staging.dtype != host.dtype:
            staging = self._staging[key] = torch.empty_like(host).pin_memory()
        staging.copy_(host)  # the previous copy from it finished: the last result was read back
        return staging.to(self.device, non_blocking=True)

    def _noise(self) -> torch.Tensor:
        cfg = self.model.config
        shape = (1, cfg.chunk_size, cfg.max_action_dim)
        return torch.randn(shape, generator=self.generator, device=self.device)  # [1, H, A_max]

    @torch.no_grad()
    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        noise = self._noise()
        if not self.graphed:
            chunk = self.model.sample_actions(self.to_batch(observation), noise=noise)
        else:
            from vla.model.graphed import GraphedSampler

            inputs = self.model.prepare_inputs(self.to_batch(observation))
            if self._sampler is None:  # capture at the first call's shapes (compiling first if asked)
                self._sampler = GraphedSampler(self.model, inputs, compile=self.compile)
            chunk = self.model.normalizer.unnormalize_action(self._sampler(inputs, noise))
        return chunk[0, : self.n_action_steps].float().cpu().numpy()  # [n_action_steps, A]

    @torch.no_grad()
    def select_chunk_guided(
        self,
        observation: dict[str, np.ndarray],
        prev_chunk: np.ndarray,
        inference_delay: int,
        execution_horizon: int,
        beta: float | None = None,
    ) -> np.ndarray:
        """Real-time chunking: prev_chunk [H', A] in robot units, row 0 at this observation's tick (rows
        past its end repeat its last action); rows [0, d) are frozen, [d, H - s) decay, the rest are free.
        A checkpoint trained with `model.rtc_max_delay` conditions on the frozen rows (training-time
        RTC); any other flow checkpoint is guided towards them (ΠGDM, the paper's inference-time RTC) with
        the guidance scale clipped at `beta` (the runner's `runner.rtc_beta`; None: this policy's own).
        -> the whole chunk [H, A] (not cut to n_action_steps: the runner schedules it)."""
        from vla.model.flow import RTCGuidance
        from vla.runner.rtc import guidance_weights

        h = self.model.config.chunk_size
        prev = np.asarray(prev_chunk, dtype=np.float32)
        prev = prev[np.clip(np.arange(h), 0, len(prev) - 1)]  # [H, A]
        target = self.model.normalizer.normalize_action(torch.as_tensor(prev, device=self.device)[None])
        d = int(np.clip(inference_delay, 0, h))
        weights = guidance_weights(h, d, int(np.clip(execution_horizon, 0, h)))  # [H]
        clip = self.rtc_beta if beta is None else float(beta)
        guidance = RTCGuidance(target, torch.as_tensor(weights, device=self.device), clip, frozen=d)
        chunk = self.model.sample_actions(self.to_batch(observation), noise=self._noise(), guidance=guidance)
        return chunk[0].float().cpu().numpy()  # [H, A]
