"""Discrete action head (π0-FAST style): FAST tokens appended after the prefix and predicted by the
backbone's LM head.

FAST id k maps to backbone id `vocab_size - 1 - k` (the top of the vocabulary, away from the text tokens,
as π0-FAST does); the sequence ends with the text tokenizer's EOS. Training is next-token cross-entropy on
the action tokens; inference decodes greedily with the key/value cache, restricted to FAST ids and EOS, and
turns the ids back into a chunk with `FASTTokenizer.decode(strict=False)`, which tolerates truncated or
malformed sequences.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vla.model.attention import TokenLayout
from vla.model.backbone import Backbone
from vla.model.config import ModelConfigError
from vla.model.fast import FASTTokenizer
from vla.model.lm import answer_loss, greedy_decode


class FastActionHead(nn.Module):
    """No weights of its own: it uses the backbone's embeddings, layers and LM head."""

    def __init__(self, tokenizer: FASTTokenizer, vocab_size: int, eos_id: int, max_tokens: int) -> None:
        super().__init__()
        if tokenizer.vocab_size >= vocab_size:
            raise ModelConfigError(
                f"FAST vocabulary ({tokenizer.vocab_size}) does not fit in the backbone vocabulary ({vocab_size})"
            )
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_id = eos_id
        self.max_tokens = max_tokens

    def to_backbone_ids(self, fast_ids: list[int]) -> list[int]:
        return [self.vocab_size - 1 - i for i in fast_ids]

    def from_backbone_ids(self, ids: list[int]) -> list[int]:
        """Backbone ids up to (excluding) the first EOS -> FAST ids (non-FAST ids dropped)."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            k = self.vocab_size - 1 - i
            if 0 <= k < self.tokenizer.vocab_size:
                out.append(k)
        return out

    def target_ids(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """actions [B, H, A] normalised (real dims only) -> ids [B, L] (FAST tokens + EOS), valid [B, L]."""
        chunks = actions.detach().float().cpu().numpy()
        rows = [
            [*self.to_backbone_ids(r)[: self.max_tokens - 1], self.eos_id]
            for r in self.tokenizer.encode_batch(chunks)
        ]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.eos_id, dtype=torch.long)
        valid = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            valid[i, : len(r)] = True
        return ids.to(actions.device), valid.to(actions.device)

    def loss(
        self, backbone: Backbone, prefix: torch.Tensor, prefix_layout: TokenLayout, actions: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        ids, valid = self.target_ids(actions)  # [B, L]
        loss, accuracy = answer_loss(backbone, prefix, prefix_layout, ids, valid)
        return {"loss": loss, "token_accuracy": accuracy}

    @torch.no_grad()
    def generate(self, backbone: Backbone, prefix: torch.Tensor, prefix_layout: TokenLayout) -> torch.Tensor:
        """Greedy decoding with the KV cache -> normalised chunks [B, H, A] (float32, on prefix's device)."""
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool, device=prefix.device)
        allowed[self.vocab_size - self.tokenizer.vocab_size :] = True
        allowed[self.eos_id] = True
        ids = greedy_decode(backbone, prefix, prefix_layout, self.max_tokens, self.eos_id, allowed)
        chunks = self.decode([self.from_backbone_ids(r) for r in ids.cpu().tolist()])
        return torch.from_numpy(chunks).to(prefix.device)

    def decode(self, fast_ids: list[list[int]]) -> np.ndarray:
        """FAST id lists -> [B, H, A]; malformed or truncated sequences still give a valid chunk."""
        return np.stack([self.tokenizer.decode(r, strict=False) for r in fast_ids]).astype(np.float32)
