"""Fast inference: one whole action chunk (prefix encoding + every denoising step) captured in a CUDA graph.

Eager PyTorch launches thousands of small kernels per chunk (layers x steps); on an H200 the host spends
~150 ms launching what the GPU finishes in ~30. A CUDA graph replays the recorded kernels with one launch.
Shapes are static by construction (`ModelInputs`: fixed cameras, text length, chunk), so one capture serves
every observation of the same camera count. Optionally the denoising step and the prefix passes are first
compiled with torch.compile (inductor fuses the norms, RoPE and gates), then captured; this swaps compiled
functions into the model itself (`uncompile` undoes it).

    sampler = GraphedSampler(model, model.prepare_inputs(first_batch))
    actions = model.normalizer.unnormalize_action(sampler(model.prepare_inputs(batch)))

On a CPU it simply calls `model.sample_from_inputs` (so code using it runs anywhere). Flow head only.
Measured on an H200 (bench/gpu_model.py): set `model.backbone.attention = "math"` before capturing; cuDNN's
masked SDPA at head_dim 256 cost pi0 ~10 ms per chunk more than the explicit path.
"""

from __future__ import annotations

import torch

from vla.model.batch import ModelInputs
from vla.model.config import ModelConfigError
from vla.model.vla import VLAModel

_INPUT_FIELDS = ("images", "text_ids", "text_valid", "state", "state_mask", "image_valid")


class GraphedSampler:
    def __init__(
        self,
        model: VLAModel,
        example: ModelInputs,
        *,
        compile: bool = False,
        compile_mode: str = "default",
        warmup: int = 2,
    ) -> None:
        if model.flow is None:
            raise ModelConfigError("GraphedSampler needs the flow head (model.head=flow)")
        self.model = model
        self.device = example.images.device
        cfg = model.config
        self._static = ModelInputs(
            **{f: getattr(example, f).clone() for f in _INPUT_FIELDS if getattr(example, f) is not None}
        )
        shape = (example.batch_size, cfg.chunk_size, cfg.max_action_dim)
        self._noise = torch.zeros(shape, device=self.device)
        if compile:
            flow = model.flow
            flow.velocity = torch.compile(flow.velocity, dynamic=False, mode=compile_mode)  # type: ignore[method-assign]
            model.encode_prefix_fn = torch.compile(model.encode_prefix_fn, dynamic=False, mode=compile_mode)
            model.embed_prefix_fn = torch.compile(model.embed_prefix_fn, dynamic=False, mode=compile_mode)
        self.graph: torch.cuda.CUDAGraph | None = None
        if self.device.type != "cuda":
            return
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm-up off the capture: allocator, cuBLAS handles, compilation
            for _ in range(warmup):
                model.sample_from_inputs(self._static, noise=self._noise)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._out = model.sample_from_inputs(self._static, noise=self._noise)

    def __call__(self, inputs: ModelInputs, noise: torch.Tensor | None = None) -> torch.Tensor:
        """-> normalised actions [B, chunk, action_dim]. The result is the graph's own output buffer:
        clone it if it must outlive the next call."""
        if self.graph is None:
            return self.model.sample_from_inputs(inputs, noise=noise)
        for name in _INPUT_FIELDS:
            src, dst = getattr(inputs, name), getattr(self._static, name)
            if src is None or dst is None:
                if src is not dst:
                    raise ValueError(f"{name}: given in one call and not in the captured one")
                continue
            if src.shape != dst.shape:
                raise ValueError(
                    f"{name}: shape {tuple(src.shape)} differs from the captured {tuple(dst.shape)}"
                )
            dst.copy_(src, non_blocking=True)
        if noise is None:
            self._noise.normal_()
        else:
            self._noise.copy_(noise, non_blocking=True)
        self.graph.replay()
        return self._out


def uncompile(model: VLAModel) -> None:
    """Undo `GraphedSampler(compile=True)`: back to the eager step and prefix functions."""
    from vla.model.prefix import embed_prefix, encode_prefix

    if model.flow is not None and "velocity" in vars(model.flow):
        del model.flow.velocity
    model.embed_prefix_fn, model.encode_prefix_fn = embed_prefix, encode_prefix
