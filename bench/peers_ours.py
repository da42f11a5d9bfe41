"""The shared half of bench/bench_peers.py and our side of it: timing (interleaved calls, summaries),
the inputs both models get (one batch, two views), memory checks, and our VLA built and called at a
pair's configuration (eager, and CUDA-graphed on a GPU)."""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.peers_lerobot import ACTION_DIM, STATE_DIM, TASK, BenchError

EXIT_MISSING, EXIT_MEMORY = 2, 3
GIB = 1024**3


# ---------------------------------------------------------------------------------------------- timing


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summary(times_ms: list[float]) -> dict[str, Any]:
    times = sorted(times_ms)
    return {
        "median_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[min(len(times) - 1, int(0.9 * len(times)))], 3),
        "min_ms": round(times[0], 3),
        "runs": len(times),
    }


def interleaved(
    calls: dict[str, Callable[[], Any]], device: Any, runs: int, warmup: int, errors: dict[str, str]
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Warm-up rounds, then `runs` timed rounds; each round calls every variant once, the order rotating
    from round to round. -> (times in ms per variant, the last output per variant). A variant that raises
    is dropped (its error goes into `errors`) so that it does not lose the others' numbers."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, Any] = {}
    for r in range(warmup + runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if name in errors:
                continue
            try:
                sync(device)
                start = time.perf_counter()
                outputs[name] = calls[name]()
                sync(device)
            except Exception as e:
                traceback.print_exc()
                errors[name] = f"{type(e).__name__}: {e}"[:400]
                continue
            if r >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {k: v for k, v in times.items() if k not in errors}, outputs


# ---------------------------------------------------------------------------------------------- inputs


def pair_config(pair: str) -> Any:
    """Our model config for a pair, with the state/action sizes of the benchmark."""
    from vla.model.config import load_config

    cfg = load_config(pair)
    cfg.state_dim, cfg.action_dim = STATE_DIM, ACTION_DIM
    return cfg


def frame_size(cfg: Any, frame: tuple[int, int] | None) -> tuple[int, int]:
    """The camera frame size fed to both sides: --frame, else the config's camera size, else the backbone's
    resolution (so neither side resizes)."""
    if frame is not None:
        return frame
    if cfg.image_size is not None:
        return int(cfg.image_size[0]), int(cfg.image_size[1])
    return int(cfg.backbone.image_size), int(cfg.backbone.image_size)


def make_inputs(cfg: Any, frame: tuple[int, int], device: Any, valid_tokens: int) -> dict[str, Any]:
    """The shared observation: images, state, our task string, their token ids and mask."""
    import torch

    g = torch.Generator().manual_seed(0)
    h, w = frame
    text_tokens = int(cfg.max_text_tokens)
    vocab = int(cfg.backbone.vocab_size)
    batch: dict[str, Any] = {
        f"observation.images.{cam}": torch.rand(1, 3, h, w, generator=g).to(device) for cam in cfg.cameras
    }
    batch["observation.state"] = torch.randn(1, STATE_DIM, generator=g).to(device)
    batch["task"] = [TASK]
    ids = torch.randint(8, min(vocab, 32000), (1, text_tokens), generator=g)
    mask = torch.zeros(1, text_tokens, dtype=torch.bool)
    mask[:, :valid_tokens] = True
    batch["observation.language.tokens"] = ids.to(device)
    batch["observation.language.attention_mask"] = mask.to(device)
    return batch


def ours_view(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("observation.language.")}


def meminfo_available() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise BenchError("cannot read MemAvailable from /proc/meminfo")


def check_memory(what: str, needed: int, device: Any) -> dict[str, float]:
    """Fail with one line when the device (host RAM on the CPU) has less free memory than `needed`."""
    import torch

    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        where = f"free memory on {device}"
    else:
        free = meminfo_available()
        where = "MemAvailable (/proc/meminfo)"
    if free < needed:
        raise BenchError(
            f"not enough memory to build {what}: needs ~{needed / GIB:.1f} GiB, {where} is "
            f"{free / GIB:.1f} GiB (skip it with --pairs, or free memory)",
            EXIT_MEMORY,
        )
    return {"needed_gib": round(needed / GIB, 1), "free_gib": round(free / GIB, 1)}


def build_bytes(parameters: int) -> int:
    """Peak host/device memory to build a model of `parameters` parameters (built in fp32, then cast)."""
    return int(parameters * 4 * 1.1) + 2 * GIB


# ---------------------------------------------------------------------------------------------- ours


def build_ours(cfg: Any, device: Any, dtype: Any) -> Any:
    import torch

    from vla.model import VLAModel

    cfg.image_size = None  # any frame size; the model resizes with padding to the backbone's resolution
    torch.manual_seed(0)
    with torch.device(device):
        model = VLAModel(cfg, tasks=[TASK])
    return model.to(dtype).eval()


def ours_params_meta(cfg: Any) -> int:
    import copy

    import torch

    from vla.model import VLAModel

    with torch.device("meta"):
        return int(VLAModel(copy.deepcopy(cfg), tasks=[TASK]).num_parameters())


def ours_calls(
    model: Any, batch: dict[str, Any], device: Any, errors: dict[str, str], math: bool = True
) -> dict[str, Callable[[], Any]]:
    """ours (SDPA), ours_math (explicit attention; unless math=False), and on CUDA ours_graphed (VLAPolicy's
    GPU path; a failed capture goes into `errors`)."""
    import torch

    view = ours_view(batch)

    def eager(impl: str) -> Callable[[], Any]:
        def call() -> Any:
            model.backbone.attention = impl
            with torch.inference_mode():
                return model.sample_actions(view)

        return call

    calls = {"ours": eager("sdpa")}
    if math:
        calls["ours_math"] = eager("math")
    if device.type == "cuda":
        try:
            calls["ours_graphed"] = graphed_call(model, view)
        except Exception as e:
            traceback.print_exc()
            errors["ours_graphed"] = f"{type(e).__name__}: {e}"[:400]
    return calls


def graphed_call(model: Any, view: dict[str, Any]) -> Callable[[], Any]:
    """What VLAPolicy.select_chunk runs on a GPU: inputs prepared eagerly, the chunk replayed from a CUDA
    graph captured once (here, before any timing), then un-normalised. SDPA attention."""
    import torch

    from vla.model.graphed import GraphedSampler

    cfg = model.config
    model.backbone.attention = "sdpa"
    with torch.no_grad():
        sampler = GraphedSampler(model, model.prepare_inputs(view))

    def call() -> Any:
        model.backbone.attention = "sdpa"
        with torch.no_grad():  # as VLAPolicy.select_chunk
            inputs = model.prepare_inputs(view)
            noise = torch.randn((1, cfg.chunk_size, cfg.max_action_dim), device=inputs.images.device)
            return model.normalizer.unnormalize_action(sampler(inputs, noise)).clone()

    return call


def ours_info(model: Any, pair: str, dtype: Any) -> dict[str, Any]:
    cfg = model.config
    ids, valid = model.text_tokenizer.encode_prompts([TASK], None, cfg.max_text_tokens)
    return {
        "model": f"ours: VLAModel, configs/model/{pair}.yaml",
        "call": "VLAModel.sample_actions(batch) (as VLAPolicy.select_chunk, from tensors)",
        "params_m": round(model.num_parameters() / 1e6, 2),
        "dtype": str(dtype).replace("torch.", ""),
        "text_tokens": int(ids.shape[1]),
        "text_valid_tokens": int(valid.sum()),
        "tokens_per_image": int(model.backbone.tokens_per_image),
        "backbone_layers": len(model.backbone.layers),
        "expert_width": int(model.flow.expert.width) if model.flow is not None else None,
        "vision_attention": "sdpa",
    }
