"""Data-parallel set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK): DDP, optionally FSDP."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def setup(requested_device: str) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on GPUs)."""
    _export_slurm_env()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(requested_device)
    if world <= 1:
        return DistInfo(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def _export_slurm_env() -> None:
    """Under SLURM (hydra's submitit launcher) there is no torchrun: derive its variables from SLURM's."""
    if "WORLD_SIZE" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    TorchDistributedEnvironment().export()  # sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, info: DistInfo, strategy: str) -> torch.nn.Module:
    """DDP by default; FSDP (parameters sharded per transformer block) for models too big to replicate."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        blocks = {
            type(m) for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "ExpertLayer"))
        }
        policy = ModuleWrapPolicy(blocks) if blocks else None
        return FSDP(
            model,
            auto_wrap_policy=policy,
            use_orig_params=True,
            device_id=info.device if info.device.type == "cuda" else None,
        )
    ids = [info.local_rank] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def params_checksum(model: torch.nn.Module) -> float:
    """A cheap fingerprint of all parameters (to check that ranks stay identical)."""
    with torch.no_grad():
        return float(
            sum(p.detach().double().sum().item() * (i + 1) for i, p in enumerate(model.parameters()))
        )
