"""Side by side with LeRobot: our VLA vs LeRobot's ACT and Diffusion Policy, same data, same wall clock.

For each task (our SO-101 `touch` and Meta-World tasks) the harness
  1. records `--demos` scripted demonstrations with `vla-record` (seeds 0..N-1, PNG frames, kept if the
     expert succeeded), once, under `--root`;
  2. trains each method for `--budget` seconds of wall clock from random initialisation (no pretrained
     weights anywhere), each job pinned to one CPU core with one torch thread, `--parallel` jobs at a time;
  3. evaluates every trained policy on the same held-out seeds (100000..) through our runner in simulated
     time, synchronously, as LeRobot's eval does (success = `is_success` at any step; no latency).

Fairness (what a sceptical reader asks): every method reads the same frames, decoded once into memory
before its clock starts, and its batches are built by the same code (action chunks padded at episode ends
with `action_is_pad`, Diffusion's two-frame history clamped at episode starts). The clock covers batch
building, forward, backward and the optimiser step. Each method keeps its own loss, optimiser type,
batch size and gradient clip (LeRobot's presets for theirs); all share one learning-rate shape over the
budget (linear warm-up over the first 5%, cosine to 10% at the end). Deviations from LeRobot's defaults are
listed in the JSON (`methods`) and in bench/README.md.

    python bench/side_by_side.py                      # touch + 5 Meta-World easy tasks, 300 s each
    python bench/side_by_side.py --tasks touch,reach-v3 --budget 60 --eval-episodes 10

Writes `--out` (JSON, default bench/results/side_by_side.json) and prints a markdown table.
A job (one task, one method) runs in its own process: `--job TASK METHOD` (used by the driver).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = ("ours", "act", "diffusion")
EVAL_SEED = 100000  # held out: recording uses seeds 0..demos-1
WARMUP_FRACTION = 0.05
MIN_LR_RATIO = 0.1


def easy_tasks(count: int) -> list[str]:
    """`count` Meta-World easy tasks picked by a fixed rule (evenly spaced through LeRobot's easy list,
    starting at its first), so the choice is not made after seeing results."""
    from envs.metaworld import DIFFICULTY

    easy = DIFFICULTY["easy"]
    stride = max(1, len(easy) // count)
    return [easy[i * stride] for i in range(count)]


def expand_tasks(spec: str) -> list[str]:
    tasks: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item.startswith("easy:"):
            tasks += easy_tasks(int(item.split(":", 1)[1]))
        elif item:
            tasks.append(item)
    return tasks


def env_name(task: str) -> str:
    from envs.metaworld import INSTRUCTIONS

    return "metaworld" if task in INSTRUCTIONS else "so101"


def make_robot(task: str) -> Any:
    """The env as vla-record and vla-rollout build it (configs/env/<name>.yaml)."""
    from omegaconf import OmegaConf

    from vla.apps.common import instantiate

    cfg = OmegaConf.load(ROOT / "configs" / "env" / f"{env_name(task)}.yaml")
    return instantiate(cfg, "env", task=task)


def record(task: str, demos: int, root: Path) -> Path:
    """Scripted demonstrations for `task` (reused when already there)."""
    path = root / "data" / task
    if (path / "meta" / "info.json").is_file():
        return path
    cmd = [
        str(Path(sys.executable).with_name("vla-record")),
        f"env={env_name(task)}",
        f"env.task={task}",
        "policy=scripted",
        f"episodes={demos}",
        "keep=success",
        "dataset.video=false",  # PNG frames: decoded once into memory below, no video decoder involved
        f"dataset.root={path}",
        f"dataset.repo_id=local/{task}",
        "progress=false",
        f"hydra.run.dir={root / 'logs' / ('record_' + task)}",
    ]
    print(f"[record] {task}: {demos} scripted demonstrations", flush=True)
    subprocess.run(cmd, check=True)
    return path


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
            out[k] = pixels.movedim(-1, -3).float().div_(255.0)  # [B, (T,) 3, H, W]
        if obs_steps > 1:
            for k in (STATE, *self.cameras):
                out[f"{k}_is_pad"] = torch.from_numpy(obs_pad)
        return out


# --------------------------------------------------------------------------------------------- methods


def lr_shape(progress: float) -> float:
    """The learning-rate factor at a fraction of the budget: our trainer's warm-up + cosine schedule
    (vla.train.trainer.lr_factor) on a clock of 1,000 ticks per budget."""
    from vla.train.trainer import lr_factor

    ticks = 1000
    return lr_factor(min(int(progress * ticks), ticks), int(WARMUP_FRACTION * ticks), ticks, MIN_LR_RATIO)


class Method:
    """One contestant: builds its model from the dataset, trains on batches, acts as our Policy."""

    name = ""
    batch_size = 8
    horizon = 50
    obs_steps = 1
    grad_clip = 10.0

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

    def __init__(self, frames: Frames, device: str = "cpu", model: str = "tiny") -> None:
        super().__init__(frames, device)
        from omegaconf import OmegaConf

        from vla.model.config import coerce_config
        from vla.model.vla import VLAModel
        from vla.train.augment import AugmentConfig
        from vla.train.data import inspect_dataset

        cfg = coerce_config(OmegaConf.to_container(OmegaConf.load(ROOT / f"configs/model/{model}.yaml")))
        # chunk_size=1: a chunk may be longer than an episode (short `touch` demos); it is padded
        spec = inspect_dataset(frames.repo_id, frames.root, chunk_size=1)
        cfg.cameras, cfg.image_size = list(spec.cameras), list(spec.image_size)
        cfg.state_dim, cfg.action_dim = spec.state_dim, spec.action_dim
        recipe = DEMO_RECIPE if model == "tiny" else {}
        if recipe:
            cfg.chunk_size, cfg.backbone.image_size = recipe["chunk_size"], recipe["backbone_image_size"]
            cfg.validate()
        self.n_action_steps = recipe.get("n_action_steps")
        self.horizon = cfg.chunk_size
        self.cameras = spec.cameras
        self.model = VLAModel(cfg, stats=spec.stats, tasks=spec.tasks).to(device).train()
        train_cfg = OmegaConf.load(ROOT / "configs/train.yaml")
        self.augment = AugmentConfig(**OmegaConf.to_container(train_cfg.augment))  # type: ignore[arg-type]
        self.optim = OmegaConf.load(ROOT / "configs/optim/adamw.yaml")
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
        }

    def parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def loss(self, batch: dict[str, Any]) -> Any:
        import torch

        from vla.train.augment import augment_images
        from vla.train.trainer import _to_device

        batch = augment_images(_to_device(batch, torch.device(self.device)), self.cameras, self.augment)
        return self.model(batch)["loss"]

    def optimizer(self) -> Any:
        import torch

        o = self.optim
        return torch.optim.AdamW(
            self.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay
        )

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


class LeRobotPolicy:
    """A LeRobot policy behind our Policy protocol, called exactly as lerobot-eval calls it: one
    `select_action` per control step (its own action queue and observation history inside)."""

    def __init__(self, model: Any, pre: Any, post: Any, cameras: list[str]) -> None:
        self.model, self.pre, self.post, self.cameras = model, pre, post, cameras
        self.task = ""

    def reset(self, task: str | None = None) -> None:
        self.task = task or ""
        self.model.reset()

    def select_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from vla.robot import STATE

        obs: dict[str, Any] = {"task": self.task}
        obs[STATE] = torch.from_numpy(np.asarray(observation[STATE], np.float32))
        for k in self.cameras:
            obs[k] = torch.from_numpy(np.ascontiguousarray(observation[k])).permute(2, 0, 1).float() / 255.0
        with torch.inference_mode():
            action = self.post(self.model.select_action(self.pre(obs)))
        return action.reshape(1, -1).float().numpy()  # [1, A]


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


def make_method(name: str, frames: Frames, args: argparse.Namespace) -> Method:
    device = getattr(args, "device", "cpu")
    if name == "ours":
        return Ours(frames, device, getattr(args, "ours_model", "tiny"))
    if name == "act":
        return ACT(frames, args.act_lr, device)
    if name == "diffusion":
        return Diffusion(frames, device)
    raise SystemExit(f"error: unknown method {name!r}; choose from {', '.join(METHODS)}")


# ---------------------------------------------------------------------------------------- train + eval


def train_for(method: Method, seconds: float, seed: int) -> dict[str, Any]:
    """Train until `seconds` of wall clock have passed (the step under way finishes)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = method.optimizer()
    base = [g["lr"] for g in optimizer.param_groups]
    params = method.parameters()
    n = len(method.frames.state)
    steps, losses = 0, []
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for group, lr in zip(optimizer.param_groups, base, strict=True):
            group["lr"] = lr * lr_shape(elapsed / seconds)
        batch = method.frames.batch(rng.integers(0, n, method.batch_size), method.horizon, method.obs_steps)
        loss = method.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if method.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, method.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        steps += 1
    took = time.perf_counter() - started
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "seconds": took,
        "steps": steps,
        "samples": steps * method.batch_size,
        "steps_per_s": steps / took,
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(tail)) if tail else None,
    }


def evaluate(method: Method, task: str, episodes: int) -> dict[str, Any]:
    """Seeded held-out episodes through our runner, synchronously, in simulated time."""
    from vla.apps.rollout import summarize
    from vla.runner import Runner, RunnerConfig

    robot = make_robot(task)
    policy = TimedPolicy(method.policy(robot))
    config = RunnerConfig(strategy="sync", realtime=False, measure_compute=False, warmup=False)
    results: list[dict[str, Any]] = []
    inference: dict[str, Any] = {}
    started = time.perf_counter()
    robot.connect()
    runner = Runner(robot, policy, config)
    try:
        for i in range(episodes):
            r = runner.run_episode(EVAL_SEED + i)
            results.append(
                {"task": task, "seed": EVAL_SEED + i, "success": bool(r.success), "steps": r.steps}
            )
            print(f"[eval] {task} {method.name} seed {EVAL_SEED + i}: "
                  f"{'success' if r.success else 'fail'} in {r.steps} steps", flush=True)  # fmt: skip
        calls = np.asarray(policy.seconds) * 1e3
        ticks = sum(r["steps"] for r in results)
        inference = {
            "calls": len(calls),
            "ms_per_control_step": float(calls.sum() / max(1, ticks)),
            "p50_ms_per_call": float(np.percentile(calls, 50)) if len(calls) else None,
            "max_ms_per_call": float(calls.max()) if len(calls) else None,
        }
    finally:
        runner.close()
        robot.disconnect()
    stats = summarize(results)
    stats.update(seconds=time.perf_counter() - started, episodes_detail=results, inference_ms=inference)
    return stats


def eval_episodes(task: str, args: argparse.Namespace) -> int:
    return int(args.so101_eval_episodes if env_name(task) == "so101" else args.eval_episodes)


def run_job(task: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    path = Path(args.root) / "data" / task
    t0 = time.perf_counter()
    frames = Frames.load(path, f"local/{task}")
    load_s = time.perf_counter() - t0
    method = make_method(name, frames, args)
    print(f"[train] {task} {name}: {method.num_parameters() / 1e6:.1f}M parameters, "
          f"{len(frames.state)} frames, {args.budget:.0f} s", flush=True)  # fmt: skip
    train = train_for(method, args.budget, args.seed)
    print(f"[train] {task} {name}: {train['steps']} steps, loss {train['first_loss']:.3f} -> "
          f"{train['final_loss']:.3f}", flush=True)  # fmt: skip
    evaluation = evaluate(method, task, eval_episodes(task, args))
    return {
        "task": task,
        "method": name,
        "parameters_m": round(method.num_parameters() / 1e6, 2),
        "settings": method.settings,
        "batch_size": method.batch_size,
        "grad_clip": method.grad_clip,
        "frames": len(frames.state),
        "demonstrations": frames.episodes,
        "load_seconds": load_s,
        "train": train,
        "eval": evaluation,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
    }


# -------------------------------------------------------------------------------------------- driver


def job_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        LP_NUM_THREADS="1",  # Mesa llvmpipe (offscreen MuJoCo rendering) on the job's core only
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
        PYOPENGL_PLATFORM=env.get("PYOPENGL_PLATFORM", "egl"),
    )
    return env


def run_all(args: argparse.Namespace, tasks: list[str], methods: list[str]) -> list[dict[str, Any]]:
    """Every (task, method) job, `args.parallel` at a time, each pinned to its own core. Jobs are
    ordered so that each method runs beside each other method (no method always has the same
    neighbour), and a finished job's JSON is reused on a rerun."""
    root = Path(args.root)
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    jobs = [
        (t, m)
        for i, t in enumerate(tasks)
        for m in (methods[i % len(methods) :] + methods[: i % len(methods)])
    ]
    parallel = 1 if args.device != "cpu" else max(1, args.parallel)  # one GPU: one job at a time
    cores = sorted(os.sched_getaffinity(0))[:parallel]
    free = list(cores)
    running: list[tuple[subprocess.Popen, int, Path, Any]] = []
    pending = list(jobs)
    failed: list[str] = []
    while pending or running:
        while pending and free:
            task, method = pending.pop(0)
            out = root / "jobs" / f"{task}__{method}.json"
            if out.is_file() and not args.fresh:
                print(f"[reuse] {out}", flush=True)
                continue
            core = free.pop(0)
            log = open(root / "logs" / f"{task}__{method}.log", "w")  # noqa: SIM115 (closed below)
            cmd = [sys.executable, __file__, "--job", task, method, "--job-out", str(out), *job_args(args)]
            proc = subprocess.Popen(
                cmd, env=job_env(), stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=functools.partial(os.sched_setaffinity, 0, {core}),
            )  # fmt: skip
            print(f"[start] {task} {method} on core {core}", flush=True)
            running.append((proc, core, out, log))
        time.sleep(1.0)
        for item in list(running):
            proc, core, out, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            free.append(core)
            name = Path(log.name).stem
            if proc.returncode != 0:
                failed.append(name)
                print(f"[fail] {name} (exit {proc.returncode}); see {log.name}", flush=True)
            else:
                print(f"[done] {name}", flush=True)
    if failed:
        raise SystemExit(f"error: {len(failed)} job(s) failed: {', '.join(failed)}")
    return [json.loads((root / "jobs" / f"{t}__{m}.json").read_text()) for t, m in jobs]


def job_args(args: argparse.Namespace) -> list[str]:
    return [
        "--root", str(args.root), "--budget", str(args.budget), "--eval-episodes", str(args.eval_episodes),
        "--so101-eval-episodes", str(args.so101_eval_episodes),
        "--seed", str(args.seed), "--act-lr", str(args.act_lr), "--device", args.device,
        "--ours-model", args.ours_model,
    ]  # fmt: skip


def table(results: list[dict[str, Any]], tasks: list[str], methods: list[str]) -> tuple[str, dict[str, Any]]:
    by = {(r["task"], r["method"]): r for r in results}
    head = "| task | " + " | ".join(methods) + " | ours ≥ best baseline |"
    lines = [head, "|" + "---|" * (len(methods) + 2)]
    verdicts: dict[str, Any] = {}
    for task in tasks:
        cells, rates = [], {}
        for m in methods:
            r = by.get((task, m))
            if r is None:
                cells.append("–")
                continue
            e = r["eval"]
            rates[m] = e["success_rate"]
            wins = sum(x["success"] for x in e["episodes_detail"])
            cells.append(f"{wins}/{len(e['episodes_detail'])} ({r['train']['steps']} steps)")
        baselines = [rates[m] for m in rates if m != "ours"]
        ok = None if "ours" not in rates or not baselines else rates["ours"] >= max(baselines)
        verdicts[task] = ok
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {'–' if ok is None else '✔' if ok else '✘'} |")
    means = {m: np.mean([by[(t, m)]["eval"]["success_rate"] for t in tasks if (t, m) in by]) for m in methods}
    lines.append("| **mean** | " + " | ".join(f"{100 * means[m]:.0f}%" for m in methods) + " | |")
    return "\n".join(lines), {"per_task": verdicts, "mean_success": {m: float(v) for m, v in means.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--tasks", default="touch,easy:5", help="comma list; easy:K = K Meta-World easy tasks")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per (task, method)")
    p.add_argument("--demos", type=int, default=50, help="scripted demonstrations per task")
    p.add_argument("--eval-episodes", type=int, default=10, help="per Meta-World task (LeRobot's eval: 10)")
    p.add_argument("--so101-eval-episodes", type=int, default=50, help="per SO-101 task (short episodes)")
    p.add_argument("--parallel", type=int, default=2, help="jobs at a time, one CPU core each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--act-lr", type=float, default=1e-4)
    p.add_argument("--device", default="cpu", help="cpu | cuda (then one job at a time)")
    p.add_argument("--ours-model", default="tiny", help="our model config: tiny | smolvla (on a GPU)")
    p.add_argument("--root", default="outputs/side_by_side")
    p.add_argument("--out", default=str(ROOT / "bench/results/side_by_side.json"))
    p.add_argument("--fresh", action="store_true", help="rerun jobs whose JSON is already there")
    p.add_argument("--job", nargs=2, metavar=("TASK", "METHOD"), help=argparse.SUPPRESS)
    p.add_argument("--job-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.budget <= 0 or min(args.eval_episodes, args.so101_eval_episodes, args.demos) < 1:
        raise SystemExit("error: --budget, --eval-episodes and --demos must be positive")
    if args.job:
        result = run_job(args.job[0], args.job[1], args)
        tmp = Path(args.job_out + ".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, args.job_out)
        return
    tasks, methods = expand_tasks(args.tasks), [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"error: unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    try:
        import diffusers  # noqa: F401
    except ImportError:
        if "diffusion" in methods:
            raise SystemExit(
                "error: LeRobot's Diffusion Policy needs diffusers; run `make install`"
            ) from None
    for task in tasks:
        make_robot(task).disconnect()  # an unknown task fails here, before anything is recorded
    root = Path(args.root)
    (root / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for task in tasks:
        record(task, args.demos, root)
    results = run_all(args, tasks, methods)
    md, verdicts = table(results, tasks, methods)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "setup": {
            "tasks": tasks,
            "methods": methods,
            "budget_s_per_job": args.budget,
            "demonstrations_per_task": args.demos,
            "eval_episodes_per_task": {t: eval_episodes(t, args) for t in tasks},
            "eval_seeds": f"{EVAL_SEED}..{EVAL_SEED} + episodes - 1",
            "record_seeds": f"0..{args.demos - 1}",
            "train_seed": args.seed,
            "device": args.device,
            "ours_model": args.ours_model,
            "parallel_jobs": 1 if args.device != "cpu" else args.parallel,
            "threads_per_job": 1,
            "lr_shape": f"linear warm-up over {WARMUP_FRACTION:.0%} of the budget, cosine to {MIN_LR_RATIO}x",
        },
        "results": results,
        "verdicts": verdicts,
        "seconds": time.perf_counter() - started,
        "table": md,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)
    print(md)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
