"""The one joint forward: blockwise-causal attention over one or more token streams, with a key/value cache.

Every path goes through `joint_forward`: the flow-matching loss (prefix on the backbone + actions on the
expert, one pass), cached sampling (prefix once, then the action stream against the cached prefix keys and
values at every denoising step), uncached sampling (the joint pass again at every step), and the FAST head
(prefix + action tokens on the backbone, then one token at a time against the growing cache).

A stream (`Segment`) is a run of tokens with its own layer weights: the backbone's decoder layers or the
action expert's. At each layer each stream computes its own queries/keys/values; all keys/values (cached
ones first) are concatenated and every query attends over them under the mask, then each stream applies
its own output projection and MLP. Positions (RoPE) and the mask come from a `TokenLayout` per token:

    allowed(q, k) = valid[k] and block[k] <= block[q]

Equal block ids attend bidirectionally; a higher block sees all lower ones; a lower block never sees a
higher one. The VLA uses blocks 0 = images + text, 1 = state, 2 = actions (FAST: 2, 3, ... one per token,
which makes them causal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from vla.model.expert import RMSNorm

ATTENTION_IMPLS = ("sdpa", "math")


class AttentionSpec(Protocol):
    """What the joint forward needs from the backbone: RoPE, the head size, the attention kernel."""

    head_dim: int
    attention: str  # "sdpa" (PyTorch picks a fused kernel) | "math" (explicit matmul-softmax-matmul)

    def rope(self, reference: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TokenLayout:
    """Per token: valid [B, T] bool (False = padding), block [B, T] long, position [B, T] long (RoPE)."""

    valid: torch.Tensor
    block: torch.Tensor
    position: torch.Tensor

    @staticmethod
    def cat(layouts: Sequence[TokenLayout]) -> TokenLayout:
        return TokenLayout(
            valid=torch.cat([x.valid for x in layouts], dim=1),
            block=torch.cat([x.block for x in layouts], dim=1),
            position=torch.cat([x.position for x in layouts], dim=1),
        )

    def repeat_interleave(self, k: int) -> TokenLayout:
        """Each sample's layout repeated k times along the batch (sample i -> rows i*k .. i*k+k-1)."""
        return TokenLayout(*(x.repeat_interleave(k, dim=0) for x in (self.valid, self.block, self.position)))

    def next_position(self) -> torch.Tensor:
        """[B, 1]: the position after the last valid token (positions count valid tokens only)."""
        return self.valid.long().sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return self.valid.shape[1]


def positions_from_valid(valid: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
    """valid [B, T] -> positions [B, T]: running count of valid tokens (padding repeats its neighbour's)."""
    return (torch.cumsum(valid.long(), dim=1) - 1).clamp(min=0) + start


@dataclass
class KVCache:
    """Keys/values per layer, each [B, kv_heads, T, head_dim] after RoPE, with the layout of those tokens."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    layout: TokenLayout

    def repeat_interleave(self, k: int) -> KVCache:
        """Each sample's cache repeated k times along the batch (gradients flow back to the original)."""
        return KVCache(
            [x.repeat_interleave(k, dim=0) for x in self.keys],
            [x.repeat_interleave(k, dim=0) for x in self.values],
            self.layout.repeat_interleave(k),
        )


@dataclass
class Segment:
    """One stream of tokens: hidden [B, T, D], the layers that own it, optional conditioning (adaRMS)."""

    hidden: torch.Tensor
    layers: nn.ModuleList
    cond: torch.Tensor | None = None


def block_mask(query: TokenLayout, key: TokenLayout) -> torch.Tensor:
    """-> [B, 1, Q, K] bool, True where the query may attend to the key."""
    allowed = key.valid[:, None, :] & (key.block[:, None, :] <= query.block[:, :, None])  # [B, Q, K]
    return allowed[:, None, :, :]


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float, impl: str
) -> torch.Tensor:
    """q [B, H, Q, hd], k/v [B, KV, K, hd] (H a multiple of KV), mask [B, 1, Q, K] bool -> [B, H, Q, hd].

    "math" exists because on an H200 cuDNN's masked attention took ~75 µs per call at head_dim 256 for
    what two small matmuls do in a fraction of that; at VLA sequence lengths (< 1k tokens) the score
    matrix is small, and inductor fuses the mask and softmax."""
    b, h, n_q, hd = q.shape
    kv = k.shape[1]
    groups = h // kv
    if impl == "math":
        qg = q.reshape(b, kv, groups * n_q, hd)  # [B, KV, G*Q, hd]: each kv head serves G query heads
        scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale  # [B, KV, G*Q, K]
        scores = scores.view(b, kv, groups, n_q, -1).masked_fill(~mask[:, :, None], float("-inf"))
        probs = scores.softmax(dim=-1).to(v.dtype).view(b, kv, groups * n_q, -1)
        return torch.matmul(probs, v).view(b, h, n_q, hd)
    if groups > 1:  # grouped-query attention; explicit so every SDPA backend (masked ones too) applies
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # [B, H, K, hd]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def _norm(
    norm: nn.Module, hidden: torch.Tensor, cond: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(norm, RMSNorm):  # ours: (normed, gate)
        return norm(hidden, cond)
    return norm(hidden), None


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on x [B, H, T, hd] with cos/sin [B, 1, T, hd] (rotate-half convention, as HF Llama/Gemma)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


@dataclass
class AttentionProbe:
    """Asks `joint_forward` for one query's attention per sample: `position` [B] (index into the
    concatenated tokens); after the call `maps` holds, per layer, the probabilities [B, H, K] over keys."""

    position: torch.Tensor
    maps: list[torch.Tensor]


@dataclass
class _LayerPlan:
    """Masks and RoPE for one pattern of joint / cross-attention layers (see `joint_forward`)."""

    joint: list[int]  # segments that attend jointly (their keys/values are shared)
    cross: list[int]  # segments that cross-attend to the joint segments' (and cached) keys/values
    mask: torch.Tensor | None  # [B, 1, Q_joint, K]
    rope: tuple[torch.Tensor, torch.Tensor] | None  # cos, sin [B, 1, Q_joint, hd]
    cross_masks: dict[int, torch.Tensor]  # segment -> [B, 1, T_j, K]
    cross_rope: dict[int, tuple[torch.Tensor, torch.Tensor]]  # segment -> cos, sin [B, 1, T_j, hd]


def _rope(
    spec: AttentionSpec, reference: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = spec.rope(reference, positions)  # each [B, T, hd]
    return cos[:, None], sin[:, None]  # [B, 1, T, hd]


def _plan_layer(
    cross: tuple[bool, ...],
    layout: TokenLayout,
    parts: list[TokenLayout],
    past: KVCache | None,
    spec: AttentionSpec,
    reference: torch.Tensor,
) -> _LayerPlan:
    joint = [j for j, c in enumerate(cross) if not c]
    crossing = [j for j, c in enumerate(cross) if c]
    query = layout if not crossing else (TokenLayout.cat([parts[j] for j in joint]) if joint else None)
    keys = [x for x in (past.layout if past is not None else None, query) if x is not None]
    if not keys:
        raise ValueError("a cross-attention layer needs keys/values: a joint segment or a cache")
    key_layout = TokenLayout.cat(keys) if len(keys) > 1 else keys[0]
    plan = _LayerPlan(joint, crossing, None, None, {}, {})
    if query is not None:
        plan.mask = block_mask(query, key_layout)
        plan.rope = _rope(spec, reference, query.position)
    for j in crossing:
        plan.cross_masks[j] = block_mask(parts[j], key_layout)
        start = parts[j].position.min(dim=1, keepdim=True).values
        plan.cross_rope[j] = _rope(spec, reference, parts[j].position - start)  # queries from position 0
    return plan


def _project_heads(linear: nn.Module, x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """x [B, T, D] -> [B, heads, T, hd]."""
    b, t, _ = x.shape
    return linear(x).view(b, t, -1, head_dim).transpose(1, 2)


def joint_forward(
    segments: Sequence[Segment],
    layout: TokenLayout,
    spec: AttentionSpec,
    past: KVCache | None = None,
    keep_cache: bool = False,
    probe: AttentionProbe | None = None,
) -> tuple[list[torch.Tensor], KVCache | None]:
    """Run all layers over the segments (concatenated in order; `layout` covers exactly their tokens).

    Returns each segment's last hidden state (before any final norm) and, with keep_cache, a KVCache
    covering past + these tokens. With `probe`, the probed queries' attention maps are recorded too.

    A layer with `cross = True` (expert.self_attn_every) cross-attends instead: its queries (RoPE
    positions counted from 0 within the segment) attend only to the keys/values of the joint segments and
    the cache at that layer, projected through its own k_proj/v_proj (keys after RoPE, as cached); its
    own tokens add no keys. Such layers cannot keep a cache or be probed.
    """
    head_dim = spec.head_dim
    lengths = [s.hidden.shape[1] for s in segments]
    if sum(lengths) != len(layout):
        raise ValueError(f"layout covers {len(layout)} tokens, segments have {sum(lengths)}")
    num_layers = len(segments[0].layers)
    starts = [sum(lengths[:j]) for j in range(len(segments))]
    parts = [
        TokenLayout(layout.valid[:, a : a + n], layout.block[:, a : a + n], layout.position[:, a : a + n])
        for a, n in zip(starts, lengths, strict=True)
    ]
    key_layout = TokenLayout.cat([past.layout, layout]) if past is not None else layout
    plans: dict[tuple[bool, ...], _LayerPlan] = {}
    hidden = [s.hidden for s in segments]
    new_keys: list[torch.Tensor] = []
    new_values: list[torch.Tensor] = []
    scale = head_dim**-0.5
    for i in range(num_layers):
        pattern = tuple(bool(getattr(seg.layers[i], "cross", False)) for seg in segments)
        if pattern not in plans:
            if any(pattern) and (keep_cache or probe is not None):
                raise ValueError("cross-attention layers cannot keep a cache or be probed")
            plans[pattern] = _plan_layer(pattern, layout, parts, past, spec, segments[0].hidden)
        plan = plans[pattern]
        layers: list[Any] = [seg.layers[i] for seg in segments]
        normed, gates = [], []
        for seg, layer, h in zip(segments, layers, hidden, strict=True):
            x, gate = _norm(layer.input_layernorm, h, seg.cond)
            normed.append(x)
            gates.append(gate)
        outs: list[torch.Tensor | None] = [None] * len(segments)
        if plan.joint:
            assert plan.mask is not None and plan.rope is not None
            attns = [(layers[j].self_attn, normed[j]) for j in plan.joint]
            q = torch.cat([_project_heads(a.q_proj, x, head_dim) for a, x in attns], dim=2)  # [B, H, T, hd]
            k = torch.cat([_project_heads(a.k_proj, x, head_dim) for a, x in attns], dim=2)  # [B, KV, T, hd]
            v = torch.cat([_project_heads(a.v_proj, x, head_dim) for a, x in attns], dim=2)
            cos, sin = plan.rope  # q [B, H, T, hd], k/v [B, KV, T, hd]
            q, k = _rotate(q, cos.to(q.dtype), sin.to(q.dtype)), _rotate(k, cos.to(k.dtype), sin.to(k.dtype))
            if past is not None:
                k = torch.cat([past.keys[i], k], dim=2)  # [B, KV, P + T, hd]
                v = torch.cat([past.values[i], v], dim=2)
            if keep_cache:
                new_keys.append(k)
                new_values.append(v)
            if probe is not None:
                rows = torch.arange(q.shape[0], device=q.device)
                picked = q[rows, :, probe.position]  # [B, H, hd]
                expanded = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # [B, H, K, hd]
                scores = torch.einsum("bhd,bhkd->bhk", picked, expanded).float() * scale
                allowed = plan.mask[rows, 0, probe.position][:, None, :]  # [B, 1, K]
                probe.maps.append(scores.masked_fill(~allowed, float("-inf")).softmax(-1))
            out = attend(q, k, v, plan.mask, scale, spec.attention)  # [B, H, T, hd]
            out = out.transpose(1, 2).flatten(2)  # [B, T, H*hd]
            for j, chunk in zip(plan.joint, out.split([lengths[j] for j in plan.joint], dim=1), strict=True):
                outs[j] = chunk
        else:
            assert past is not None  # _plan_layer checked
            k, v = past.keys[i], past.values[i]
        for j in plan.cross:
            attn = layers[j].self_attn
            cos, sin = plan.cross_rope[j]
            q = _rotate(
                _project_heads(attn.q_proj, normed[j], head_dim),
                cos.to(normed[j].dtype),
                sin.to(normed[j].dtype),
            )
            source_k = k.transpose(1, 2).flatten(2).to(normed[j].dtype)  # [B, K, KV*hd], keys after RoPE
            source_v = v.transpose(1, 2).flatten(2).to(normed[j].dtype)
            ck = _project_heads(attn.k_proj, source_k, head_dim)  # [B, KV, K, hd]
            cv = _project_heads(attn.v_proj, source_v, head_dim)
            out = attend(q, ck, cv, plan.cross_masks[j], scale, spec.attention)  # [B, H, T_j, hd]
            outs[j] = out.transpose(1, 2).flatten(2)  # [B, T_j, H*hd]
        for j, (seg, layer) in enumerate(zip(segments, layers, strict=True)):
            chunk = outs[j]
            assert chunk is not None
            branch = layer.self_attn.o_proj(chunk)
            h = hidden[j] + (branch if gates[j] is None else branch * gates[j])
            x, gate = _norm(layer.post_attention_layernorm, h, seg.cond)
            branch = layer.mlp(x)
            hidden[j] = h + (branch if gate is None else branch * gate)
    cache = KVCache(new_keys, new_values, key_layout) if keep_cache else None
    return hidden, cache
