"""Next-token prediction after a prefix, through the backbone's own layers and LM head (prefix-LM).

The prefix (images + text, block 0) attends bidirectionally; the tokens appended after it are causal (one
block each), so token j sees the whole prefix and tokens < j. Used by the VLM's answer loss and decoding
(vla/vlm/), by co-training in vla-train, and by the FAST action head, whose answer is a chunk's tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla.model.attention import AttentionProbe, Segment, TokenLayout, joint_forward
from vla.model.backbone import Backbone
from vla.model.prefix import suffix_layout


def answer_loss(
    backbone: Backbone,
    prefix: torch.Tensor,
    prefix_layout: TokenLayout,
    ids: torch.Tensor,
    valid: torch.Tensor,
    ordinal: torch.Tensor | None = None,
    sigma: float = 0.0,
    probe: AttentionProbe | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of `ids` [B, L] (valid [B, L] bool) predicted after prefix [B, P, D] -> (loss, accuracy).

    Position P-1 (the prefix's last token, always a real one: text is left-padded) predicts ids[:, 0],
    answer token j predicts ids[:, j+1]. ordinal [K]: ids of an ordered family of tokens (the location
    bins); with sigma > 0 a target among them is a Gaussian over its neighbours (sigma in bins), so a
    near miss costs less than a far one. probe: record attention maps of some queries (see attention)."""
    tokens = backbone.embed_text(ids).to(prefix.dtype)  # [B, L, D]
    layout = TokenLayout.cat([prefix_layout, suffix_layout(prefix_layout, valid, causal=True)])
    (hidden,), _ = joint_forward(
        [Segment(torch.cat([prefix, tokens], dim=1), backbone.layers)], layout, backbone, probe=probe
    )
    p, length = prefix.shape[1], ids.shape[1]
    predictors = hidden[:, p - 1 : p - 1 + length]  # [B, L, D]
    logits = backbone.logits(backbone.norm(predictors)).float()  # [B, L, V]
    targets = ids.masked_fill(~valid, -100)
    if ordinal is None or sigma <= 0:
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    else:
        loss = _ordinal_cross_entropy(logits, ids, valid, ordinal.to(ids.device), sigma)
    accuracy = ((logits.argmax(-1) == ids) & valid).sum() / valid.sum().clamp(min=1)
    return loss, accuracy.detach()


def _ordinal_cross_entropy(
    logits: torch.Tensor, ids: torch.Tensor, valid: torch.Tensor, ordinal: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Mean over valid targets of -sum(q log p), q one-hot except on ordinal targets (Gaussian over bins)."""
    logp = logits.log_softmax(-1)  # [B, L, V]
    lookup = torch.full((logits.shape[-1],), -1, dtype=torch.long, device=ids.device)
    lookup[ordinal] = torch.arange(len(ordinal), device=ids.device)
    rank = lookup[ids]  # [B, L]: bin of each target, -1 for other tokens
    hard = -logp.gather(-1, ids[..., None])[..., 0]  # [B, L]
    bins = torch.arange(len(ordinal), device=ids.device, dtype=logits.dtype)
    q = torch.exp(-0.5 * ((bins - rank[..., None].clamp(min=0).to(logits.dtype)) / sigma) ** 2)  # [B, L, K]
    q = q / q.sum(-1, keepdim=True)
    soft = -(q * logp[..., ordinal]).sum(-1)  # [B, L]
    per = torch.where(rank >= 0, soft, hard)
    return per[valid].mean()


@torch.no_grad()
def greedy_decode(
    backbone: Backbone,
    prefix: torch.Tensor,
    prefix_layout: TokenLayout,
    max_tokens: int,
    eos_id: int,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy decoding with the key/value cache -> ids [B, T] (T ≤ max_tokens; after EOS, EOS repeats).

    allowed: optional [V] bool, the ids that may be produced (EOS should be among them)."""
    b, device = prefix.shape[0], prefix.device
    (hidden,), cache = joint_forward(
        [Segment(prefix, backbone.layers)], prefix_layout, backbone, keep_cache=True
    )
    last = hidden[:, -1:]  # [B, 1, D]
    generated: list[torch.Tensor] = []
    done = torch.zeros(b, dtype=torch.bool, device=device)
    for step in range(max_tokens):
        logits = backbone.logits(backbone.norm(last))[:, 0].float()  # [B, V]
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        token = logits.argmax(-1)  # [B]
        token = torch.where(done, torch.full_like(token, eos_id), token)
        generated.append(token)
        done = done | (token == eos_id)
        if bool(done.all()) or step == max_tokens - 1:
            break
        assert cache is not None
        layout = suffix_layout(cache.layout, torch.ones((b, 1), dtype=torch.bool, device=device), causal=True)
        layout.block = layout.block + step  # one block per token: causal over the generated tokens
        emb = backbone.embed_text(token[:, None]).to(prefix.dtype)  # [B, 1, D]
        (last,), cache = joint_forward(
            [Segment(emb, backbone.layers)], layout, backbone, past=cache, keep_cache=True
        )
    return torch.stack(generated, dim=1)  # [B, T]
