"""The prefix: camera tokens, text tokens and (continuous mode) the state token, with their layout.

Layout (blocks as in `attention`): images + text are block 0 (bidirectional), the state token block 1
(it sees images and text, they do not see it), and whatever a head appends comes after. The prefix never
attends to a head's tokens, so it can be encoded once per observation and its keys/values reused.
"""

from __future__ import annotations

import torch
from torch import nn

from vla.model.attention import KVCache, Segment, TokenLayout, joint_forward, positions_from_valid
from vla.model.backbone import Backbone
from vla.model.batch import ModelInputs

IMAGE_TEXT_BLOCK = 0
STATE_BLOCK = 1
ACTION_BLOCK = 2


class StateProjection(nn.Module):
    """Continuous state token: concat(state, mask) [B, 2*S_max] -> [B, 1, D] (the mask tells padding from 0)."""

    def __init__(self, max_state_dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * max_state_dim, hidden)

    def forward(self, state: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.cat([state, mask.to(state.dtype)], dim=-1).to(self.proj.weight.dtype)  # [B, 2*S_max]
        return self.proj(x)[:, None, :]  # [B, 1, D]


def embed_prefix(
    backbone: Backbone,
    state_proj: StateProjection | None,
    inputs: ModelInputs,
    image_tokens: torch.Tensor | None = None,
) -> tuple[torch.Tensor, TokenLayout]:
    """-> prefix hidden [B, P, D] and its layout. P = cameras * tokens_per_image + max_text_tokens (+ 1).
    image_tokens [B, N*T, D]: already embedded images (then inputs.images is not read)."""
    b = inputs.text_ids.shape[0]
    if image_tokens is None:
        n_cam = inputs.images.shape[1]
        pixels = inputs.images.flatten(0, 1)  # [B*N, 3, H, W]
        image_tokens = backbone.embed_images(pixels)  # [B*N, T, D]
        image_tokens = image_tokens.reshape(b, n_cam * image_tokens.shape[1], -1)  # [B, N*T, D]
    text = backbone.embed_text(inputs.text_ids).to(image_tokens.dtype)  # [B, L, D]
    parts = [image_tokens, text]
    device = image_tokens.device
    image_valid = torch.ones(image_tokens.shape[:2], dtype=torch.bool, device=device)  # [B, N*T]
    if inputs.image_valid is not None:  # a missing camera's tokens are never attended to
        n_cam = inputs.image_valid.shape[1]
        per_camera = inputs.image_valid.to(device)[:, :, None].expand(
            b, n_cam, image_tokens.shape[1] // n_cam
        )
        image_valid = per_camera.reshape(b, -1)
    valid = [image_valid, inputs.text_valid.to(device)]
    block = [torch.full(image_tokens.shape[:2], IMAGE_TEXT_BLOCK, dtype=torch.long, device=device)]
    block.append(torch.full(text.shape[:2], IMAGE_TEXT_BLOCK, dtype=torch.long, device=device))
    if state_proj is not None:
        parts.append(state_proj(inputs.state, inputs.state_mask).to(image_tokens.dtype))  # [B, 1, D]
        valid.append(torch.ones((b, 1), dtype=torch.bool, device=device))
        block.append(torch.full((b, 1), STATE_BLOCK, dtype=torch.long, device=device))
    valid_all = torch.cat(valid, dim=1)  # [B, P]
    layout = TokenLayout(
        valid=valid_all, block=torch.cat(block, dim=1), position=positions_from_valid(valid_all)
    )
    return torch.cat(parts, dim=1), layout


def suffix_layout(prefix: TokenLayout, valid: torch.Tensor, causal: bool) -> TokenLayout:
    """Layout of tokens appended after the prefix: valid [B, T]; one block (bidirectional) or one per token."""
    b, t = valid.shape
    steps = torch.arange(t, device=valid.device)[None, :].expand(b, t)  # [B, T]
    block = ACTION_BLOCK + steps if causal else torch.full_like(steps, ACTION_BLOCK)
    return TokenLayout(valid=valid, block=block, position=prefix.next_position() + steps)


def encode_prefix(
    backbone: Backbone, prefix: torch.Tensor, layout: TokenLayout
) -> tuple[torch.Tensor, KVCache]:
    """Run the prefix through the backbone once -> (last hidden [B, P, D], its key/value cache)."""
    (hidden,), cache = joint_forward([Segment(prefix, backbone.layers)], layout, backbone, keep_cache=True)
    assert cache is not None
    return hidden, cache
