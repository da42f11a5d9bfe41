"""The action expert: a narrower transformer whose layers pair 1:1 with the backbone's (π0's mixture of
transformers).

Each expert layer has its own weights but the backbone's attention layout (heads, kv heads, head_dim), so
its queries can attend over the concatenation of the backbone's keys/values and its own in one attention
(`attention.joint_forward`). Its attributes mirror a Hugging Face decoder layer (`input_layernorm`,
`self_attn.{q,k,v,o}_proj`, `post_attention_layernorm`, `mlp`) so the joint forward treats both streams alike.

Time conditioning: a sinusoidal embedding of the flow time through an MLP, either mixed into each action
token (π0) or driving adaptive RMSNorms (π0.5: scale, shift and a residual gate per norm).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla.model.config import ExpertConfig, ModelConfigError, expert_intermediate_size


class RMSNorm(nn.Module):
    """x / rms(x) * (1 + w) with w starting at zero (Gemma), or with `plain` x / rms(x) * w with w
    starting at one (Llama). Returns (normed, None) to share AdaRMSNorm's signature."""

    def __init__(self, dim: int, eps: float, plain: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim) if plain else torch.zeros(dim))
        self.eps = eps
        self.plain = plain

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)  # fused where available

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)  # float32 throughout, x's dtype out
        weight = self.weight.float()
        return (normed * (weight if self.plain else 1.0 + weight)).to(x.dtype), None


class AdaRMSNorm(RMSNorm):
    """π0.5's adaptive RMSNorm: cond [B, C] -> scale, shift, gate; zero-initialised, so it starts as RMSNorm."""

    def __init__(self, dim: int, eps: float, cond_dim: int) -> None:
        super().__init__(dim, eps)
        self.modulation = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if cond is None:
            raise ValueError("AdaRMSNorm needs the time conditioning")
        modulation = self.modulation(cond.to(self.modulation.weight.dtype))[:, None, :].float()  # [B, 1, 3D]
        scale, shift, gate = modulation.chunk(3, dim=-1)  # each [B, 1, D]
        normed = F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps)
        return (normed * (1.0 + scale) + shift).to(x.dtype), (1.0 + gate).to(x.dtype)


class ExpertAttention(nn.Module):
    """Projections of one expert layer. A cross-attention layer's k/v project the backbone's keys and
    values ([.., kv_heads * head_dim]) instead of the expert's own hidden states."""

    def __init__(self, width: int, heads: int, kv_heads: int, head_dim: int, cross: bool = False) -> None:
        super().__init__()
        kv_in = kv_heads * head_dim if cross else width
        self.q_proj = nn.Linear(width, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(kv_in, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(kv_in, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, width, bias=False)


class GatedMLP(nn.Module):
    def __init__(self, width: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(width, hidden, bias=False)
        self.up_proj = nn.Linear(width, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, width, bias=False)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_proj(x)
        gate = F.gelu(gate, approximate="tanh") if self.activation == "gelu_tanh" else F.silu(gate)
        return self.down_proj(gate * self.up_proj(x))


class ExpertLayer(nn.Module):
    def __init__(
        self,
        width: int,
        hidden: int,
        heads: int,
        kv_heads: int,
        head_dim: int,
        activation: str,
        eps: float,
        adarms: bool,
        cross: bool = False,
        llama_norm: bool = False,
    ) -> None:
        super().__init__()
        norm = (
            (lambda: AdaRMSNorm(width, eps, width)) if adarms else (lambda: RMSNorm(width, eps, llama_norm))
        )
        self.cross = cross  # read by attention.joint_forward
        self.input_layernorm = norm()
        self.self_attn = ExpertAttention(width, heads, kv_heads, head_dim, cross)
        self.post_attention_layernorm = norm()
        self.mlp = GatedMLP(width, hidden, activation)


def sinusoidal_time_embedding(
    t: torch.Tensor, dim: int, min_period: float, max_period: float
) -> torch.Tensor:
    """t [B] in [0, 1] -> [B, dim]: sin/cos at periods spaced geometrically in [min_period, max_period]."""
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction  # [dim/2]
    angle = (2.0 * math.pi / period)[None, :] * t.double()[:, None]  # [B, dim/2]
    return torch.cat([angle.sin(), angle.cos()], dim=-1).float()


class ActionExpert(nn.Module):
    """Layers paired with the backbone's, plus the action/time projections in and out."""

    def __init__(
        self,
        cfg: ExpertConfig,
        *,
        backbone_hidden: int,
        backbone_layers: int,
        heads: int,
        kv_heads: int,
        head_dim: int,
        activation: str,
        eps: float,
        max_action_dim: int,
        min_period: float,
        max_period: float,
    ) -> None:
        super().__init__()
        width = cfg.width or round(backbone_hidden * cfg.width_ratio)
        width += width % 2  # the sinusoidal embedding needs an even width
        layers = cfg.layers if cfg.layers is not None else backbone_layers
        if layers != backbone_layers:
            raise ModelConfigError(
                f"model.expert.layers={layers} must equal the backbone's kept layers ({backbone_layers}): "
                "expert layers pair 1:1 with backbone layers; leave it null"
            )
        hidden = cfg.intermediate_size or expert_intermediate_size(width)
        self.width = width
        self.adarms = cfg.adarms
        self.min_period, self.max_period = min_period, max_period
        every = cfg.self_attn_every
        self.layers = nn.ModuleList(
            [
                ExpertLayer(
                    width,
                    hidden,
                    heads,
                    kv_heads,
                    head_dim,
                    activation,
                    eps,
                    cfg.adarms,
                    cross=every == 0 or i % every != 0,
                    llama_norm=cfg.llama_norm,
                )
                for i in range(layers)
            ]
        )
        self.norm = AdaRMSNorm(width, eps, width) if cfg.adarms else RMSNorm(width, eps, cfg.llama_norm)
        self.action_in = nn.Linear(max_action_dim, width)
        self.action_out = nn.Linear(width, max_action_dim)
        if cfg.adarms:  # time -> conditioning vector for every adaptive norm
            self.time_mlp = nn.Sequential(
                nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU()
            )
        else:  # π0: concat(action, time) -> MLP per token
            self.time_mlp = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))

    @property
    def layer_dtype(self) -> torch.dtype:
        """The layers' dtype (under model.keep_fp32 the projections in and out may differ)."""
        layer: Any = self.layers[0]
        return layer.self_attn.q_proj.weight.dtype

    def embed_actions(self, noisy: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """noisy [B, H, A], t [B] (or [B, H]: a time per action) -> (tokens [B, H, W], cond [B, W] or None)."""
        dtype = self.action_in.weight.dtype
        layers = self.layer_dtype
        tokens = self.action_in(noisy.to(dtype))  # [B, H, W]
        if t.ndim == 2:  # per action (training-time RTC: the committed prefix is clean, at time 0)
            if self.adarms:
                raise ValueError("a time per action needs the action-time MLP, not adaRMS conditioning")
            flat = sinusoidal_time_embedding(t.reshape(-1), self.width, self.min_period, self.max_period)
            time = flat.to(dtype).view(*t.shape, -1)  # [B, H, W]
            return self.time_mlp(torch.cat([tokens, time], dim=-1)).to(layers), None
        time = sinusoidal_time_embedding(t, self.width, self.min_period, self.max_period).to(dtype)  # [B, W]
        if self.adarms:
            return tokens.to(layers), self.time_mlp(time)
        time = time[:, None, :].expand_as(tokens)  # [B, H, W]
        return self.time_mlp(torch.cat([tokens, time], dim=-1)).to(layers), None

    def project_out(self, hidden: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Expert hidden [B, H, W] after the last layer -> velocity [B, H, A] in float32."""
        normed, _ = self.norm(hidden, cond)
        return self.action_out(normed.to(self.action_out.weight.dtype)).float()
