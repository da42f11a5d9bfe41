"""The contestants of bench/side_by_side.py: the in-memory dataset every method trains on, and each
method (ours, LeRobot's ACT and Diffusion Policy) behind one interface (build from the data, loss on a
batch, optimiser, policy for our runner, weights to keep)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

METHODS = ("ours", "act", "diffusion")

# ------------------------------------------------------------------------------------------------ data


@dataclass
class Frames:
    """A whole LeRobot dataset in memory: uint8 images, float state and action, episode bounds."""

    repo_id: str
    root: str
    cameras: list[str]  # full keys, observation.images.<name>
    images: dict[str, np.ndarray]  # key -> [N, H, W, 3] uint8
    state: np.ndarray  # [N, S]
    action: np.ndarray  # [N, A]
    start: np.ndarray  # [N] first frame of each frame's episode
    end: np.ndarray  # [N] one past its last frame
    task: list[str]  # [N]
    episodes: int = 0
    fps: int = 0
    meta: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, root: Path, repo_id: str) -> Frames:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        from vla.robot import ACTION, IMAGE_PREFIX, STATE

        ds = LeRobotDataset(repo_id, root=root)
        cams = [k for k in ds.meta.features if k.startswith(IMAGE_PREFIX)]
        n = len(ds)
        images = {k: np.empty((n, *ds.meta.features[k]["shape"][:2], 3), np.uint8) for k in cams}
        state = np.empty((n, ds.meta.features[STATE]["shape"][0]), np.float32)
        action = np.empty((n, ds.meta.features[ACTION]["shape"][0]), np.float32)
        episode = np.empty(n, np.int64)
        task: list[str] = []
        for i in range(n):
            item = ds[i]
            for k in cams:
                images[k][i] = (item[k].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            state[i] = item[STATE].numpy()
            action[i] = item[ACTION].numpy()
            episode[i] = int(item["episode_index"])
            task.append(str(item["task"]))
        start, end = np.empty(n, np.int64), np.empty(n, np.int64)
        for e in np.unique(episode):
            idx = np.flatnonzero(episode == e)
            start[idx], end[idx] = idx[0], idx[-1] + 1
        return cls(
            repo_id, str(root), cams, images, state, action, start, end, task,
            len(np.unique(episode)), int(ds.meta.fps), ds.meta,
        )  # fmt: skip

    def batch(self, idx: np.ndarray, horizon: int, obs_steps: int = 1) -> dict[str, Any]:
        """A training batch as LeRobotDataset returns it with delta timestamps, collated: `action`
        [B, horizon, A] from frame t - (obs_steps - 1) on with `action_is_pad`; observations [B, ...] for
        one step, or [B, obs_steps, ...] (t - obs_steps + 1 .. t, clamped at the episode start)."""
        import torch

        from vla.model.batch import image_tensor
        from vla.robot import ACTION, STATE

        first = idx - (obs_steps - 1)
        steps = first[:, None] + np.arange(horizon)[None]  # [B, H]
        pad = (steps < self.start[idx, None]) | (steps >= self.end[idx, None])
        steps = np.clip(steps, self.start[idx, None], self.end[idx, None] - 1)
        out: dict[str, Any] = {
            ACTION: torch.from_numpy(self.action[steps]),
            "action_is_pad": torch.from_numpy(pad),
            "task": [self.task[i] for i in idx],
        }
        if obs_steps == 1:
            obs = idx
        else:
            obs = idx[:, None] + np.arange(1 - obs_steps, 1)[None]  # [B, T]
            obs_pad = obs < self.start[idx, None]
            obs = np.maximum(obs, self.start[idx, None])
        out[STATE] = torch.from_numpy(self.state[obs])
        for k in self.cameras:
            pixels = torch.from_numpy(self.images[k][obs])  # [B, (T,) H, W, 3]
            out[k] = image_tensor(pixels)  # [B, (T,) 3, H, W]
        if obs_steps > 1:
            for k in (STATE, *self.cameras):
                out[f"{k}_is_pad"] = torch.from_numpy(obs_pad)
        return out


# --------------------------------------------------------------------------------------------- methods


class Method:
    """One contestant: builds its model from the dataset, trains on batches, acts as our Policy."""

    name = ""
    batch_size = 8
    horizon = 50
    obs_steps = 1
    grad_clip = 10.0
    model: Any  # the torch module whose weights are trained and kept

    def __init__(self, frames: Frames, device: str = "cpu") -> None:
        self.frames = frames
        self.device = device
        self.settings: dict[str, Any] = {}

    def parameters(self) -> list[Any]:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any]) -> Any:
        raise NotImplementedError

    def optimizer(self) -> Any:
        raise NotImplementedError

    def policy(self, robot: Any) -> Any:
        raise NotImplementedError

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# `make demo`'s recipe for the tiny VLA (the Makefile's vla-train / vla-rollout overrides, chosen in
# earlier work on `touch`, before this comparison existed): chunk 30, backbone at 96 px, lr 1e-3, and 10
# actions executed per chunk.
DEMO_RECIPE: dict[str, Any] = {"chunk_size": 30, "backbone_image_size": 96, "lr": 1e-3, "n_action_steps": 10}


class Ours(Method):
    """Our VLA (`tiny` by default: configs/model/<model>.yaml) with our training defaults
    (configs/train.yaml augmentation, configs/optim/adamw.yaml, configs/trainer/default.yaml batch size)
    and, for `tiny`, `make demo`'s recipe (DEMO_RECIPE)."""

    name = "ours"
    batch_size = 16

    def __init__(
        self,
        frames: Frames,
        device: str = "cpu",
        model: str = "tiny",
        pretrained: str | None = None,
        cotrain: float = 0.0,
    ) -> None:
        """pretrained: a VLM directory (vla-pretrain's model/) the backbone starts from; cotrain: VLM
        samples per robot sample in each step from the SO-101 grounding scenes (vla-train's
        trainer.cotrain.ratio), with the next-token loss added (weight 1)."""
        super().__init__(frames, device)
        from omegaconf import OmegaConf

        from vla.model.config import load_config
        from vla.model.vla import VLAModel
        from vla.train.augment import AugmentConfig
        from vla.train.data import inspect_dataset

        cfg = load_config(model)  # configs/model/<model>.yaml with its defaults (the shared backbone block)
        # chunk_size=1: a chunk may be longer than an episode (short `touch` demos); it is padded
        spec = inspect_dataset(frames.repo_id, frames.root, chunk_size=1)
        cfg.cameras, cfg.image_size = list(spec.cameras), spec.model_image_size
        cfg.state_dim, cfg.action_dim = spec.state_dim, spec.action_dim
        recipe = DEMO_RECIPE if model == "tiny" else {}
        if recipe:
            cfg.chunk_size, cfg.backbone.image_size = recipe["chunk_size"], recipe["backbone_image_size"]
            cfg.validate()
        if pretrained:
            cfg.backbone.pretrained = str(pretrained)
        self.n_action_steps = recipe.get("n_action_steps")
        self.horizon = cfg.chunk_size
        self.cameras = spec.cameras
        self.model = VLAModel(cfg, stats=spec.stats, tasks=spec.tasks).to(device).train()
        self.cotrain = float(cotrain)
        self._vlm_batches = self._cotrain_stream(spec) if self.cotrain > 0 else None
        train_cfg = OmegaConf.load(ROOT / "configs/train.yaml")
        self.augment = AugmentConfig(**OmegaConf.to_container(train_cfg.augment))  # type: ignore[arg-type]
        self.optim: Any = OmegaConf.load(ROOT / "configs/optim/adamw.yaml")
        if recipe:
            self.optim.lr = recipe["lr"]
        self.grad_clip = float(self.optim.grad_clip)
        self.settings = {
            "model": model,
            "recipe": "make demo" if recipe else None,
            "chunk_size": cfg.chunk_size,
            "backbone_image_size": cfg.backbone.image_size,
            "n_action_steps": self.n_action_steps or cfg.chunk_size,
            "num_steps": cfg.num_steps,
            "optimizer": f"AdamW lr {self.optim.lr} wd {self.optim.weight_decay}",
            "augmentation": "random shift 4 px + colour jitter (our default)",
            "pretrained_backbone": str(pretrained) if pretrained else None,
            "cotrain_ratio": self.cotrain,
        }

    def _cotrain_stream(self, spec: Any) -> Any:
        """VLM batches from the SO-101 grounding scenes (configs/data/so101.yaml), in this process."""
        from omegaconf import OmegaConf

        from vla.train.cotrain import VLM_KEYS, cotrain_source, items_per_batch
        from vla.vlm.samples import collate

        node = OmegaConf.load(ROOT / "configs/data/so101.yaml")
        source = cotrain_source(node, self.model, spec.cameras, int(spec.image_size[0]))
        items = items_per_batch(self.cotrain, self.batch_size, source.samples_per_item)
        rng = np.random.default_rng(1)
        while True:
            picks = rng.integers(len(source), size=items)
            batch = collate([source[int(i)] for i in picks], self.model.backbone.image_size)
            yield {k: v for k, v in batch.items() if k in VLM_KEYS}

    def parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, Any]) -> Any:
        from vla.train.data import to_device, training_batch

        batch = training_batch(batch, self.cameras, self.device, self.augment)  # as vla-train's step
        if self._vlm_batches is None:
            return self.model(batch)["loss"]
        vlm = to_device(next(self._vlm_batches), self.device)
        return self.model(batch, vlm_batch=vlm)["loss"]

    def optimizer(self) -> Any:
        from vla.train.common import adamw

        return adamw(self.parameters(), self.optim)  # vla-train's optimiser (its schedule: lr_shape)

    def policy(self, robot: Any) -> Any:
        from policies.vla import VLAPolicy

        return VLAPolicy.from_model(self.model.eval(), robot, n_action_steps=self.n_action_steps)


class LeRobotMethod(Method):
    """A LeRobot policy built by LeRobot's own factory from the dataset's metadata, with LeRobot's
    pre/post-processors (normalisation from the dataset's stats)."""

    def build(self, config: Any) -> None:
        from lerobot.policies.factory import make_policy, make_pre_post_processors

        self.config = config
        self.model = make_policy(config, ds_meta=self.frames.meta)
        self.pre, self.post = make_pre_post_processors(config, dataset_stats=self.frames.meta.stats)
        self.model.train()

    def parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, Any]) -> Any:
        loss, _ = self.model.forward(self.pre(batch))
        return loss

    def optimizer(self) -> Any:
        params = self.model.get_optim_params()
        return self.config.get_optimizer_preset().build(params)

    def policy(self, robot: Any) -> Any:
        from policies.lerobot import LeRobotPolicy

        return LeRobotPolicy(self.model.eval(), self.pre, self.post, self.frames.cameras)


class ACT(LeRobotMethod):
    name = "act"

    def __init__(self, frames: Frames, lr: float, device: str = "cpu") -> None:
        super().__init__(frames, device)
        from lerobot.policies.act.configuration_act import ACTConfig

        self.horizon = 50
        # LeRobot's defaults except: no ImageNet weights (offline, and "from scratch" for all three),
        # chunk 50 executed whole (= ours; its default 100 at 30 fps would run a whole `touch` episode
        # open-loop), and the learning rate (its 1e-5 preset is tuned for a pretrained backbone and
        # ~100k steps; from scratch in minutes it barely moves).
        self.build(
            ACTConfig(
                device=device,
                push_to_hub=False,
                pretrained_backbone_weights=None,
                chunk_size=self.horizon,
                n_action_steps=self.horizon,
                optimizer_lr=lr,
                optimizer_lr_backbone=lr,
            )
        )
        self.settings = {
            "changed from LeRobot's defaults": {
                "pretrained_backbone_weights": None,
                "chunk_size": self.horizon,
                "n_action_steps": self.horizon,
                "optimizer_lr": lr,
                "optimizer_lr_backbone": lr,
            },
            "optimizer": f"AdamW (preset) lr {lr} wd {self.config.optimizer_weight_decay}",
        }


class Diffusion(LeRobotMethod):
    name = "diffusion"

    def __init__(self, frames: Frames, device: str = "cpu") -> None:
        super().__init__(frames, device)
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

        h, w = frames.images[frames.cameras[0]].shape[1:3]
        crop = (int(h * 0.9) // 2 * 2, int(w * 0.9) // 2 * 2)
        # The Diffusion Policy paper's CNN recipe at CPU size: horizon 16 / 8 executed / 2 observations,
        # GroupNorm ResNet-18 from scratch, a smaller U-Net and 10 DDIM steps at inference (LeRobot's
        # defaults, a 255M-parameter U-Net and 100 DDPM steps, would take seconds per chunk here).
        changes = {
            "pretrained_backbone_weights": None,
            "use_group_norm": True,
            "horizon": 16,
            "n_action_steps": 8,
            "down_dims": (64, 128, 256),
            "crop_shape": crop,
            "noise_scheduler_type": "DDIM",
            "num_inference_steps": 10,
        }
        self.build(DiffusionConfig(device=device, push_to_hub=False, **changes))  # type: ignore[arg-type]
        self.horizon, self.obs_steps = 16, 2
        self.settings = {
            "changed from LeRobot's defaults": {
                k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()
            },
            "optimizer": f"Adam (preset) lr {self.config.optimizer_lr}",
        }


class TimedPolicy:
    """Times each policy call (the evaluation runs in simulated time, so compute never costs steps)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.seconds: list[float] = []

    def reset(self, task: str | None = None) -> None:
        self.policy.reset(task)

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        chunk = self.policy.select_chunk(observation)
        self.seconds.append(time.perf_counter() - t0)
        return chunk


SO101_TASKS = ("touch", "pick", "bin")


def make_method(name: str, frames: Frames, args: argparse.Namespace, task: str | None = None) -> Method:
    device = getattr(args, "device", "cpu")
    if name == "ours":
        # The grounded VLM is pretrained on SO-101 scenes: it serves the SO-101 tasks (Meta-World trains
        # from a bare backbone, as before).
        so101 = task in SO101_TASKS
        backbone = getattr(args, "ours_backbone", None) if so101 else None
        cotrain = float(getattr(args, "ours_cotrain", 0.0)) if so101 and backbone else 0.0
        return Ours(frames, device, getattr(args, "ours_model", "tiny"), backbone, cotrain)
    if name == "act":
        return ACT(frames, args.act_lr, device)
    if name == "diffusion":
        return Diffusion(frames, device)
    raise SystemExit(f"error: unknown method {name!r}; choose from {', '.join(METHODS)}")
