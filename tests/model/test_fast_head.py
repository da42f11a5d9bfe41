"""The discrete (π0-FAST style) head end to end, on top of the FAST tokenizer from vla.model.fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vla.model import VLAModel
from vla.model.config import ModelConfigError
from vla.model.fast import FASTTokenizer

from .helpers import ACTION_DIM, TASKS, small_config, toy_batch, toy_stats

FAST = ("head=fast", "normalization=quantile", "fast_vocab_size=300", "fast_max_tokens=24")


def _chunks(n: int, horizon: int) -> np.ndarray:
    """Smooth toy trajectories in dataset units around toy_stats()."""
    rng = np.random.default_rng(0)
    stats = toy_stats()["action"]
    t = np.linspace(0, 1, horizon)[None, :, None]
    phase, amp = rng.uniform(0, 6, (n, 1, ACTION_DIM)), rng.uniform(0.5, 1.5, (n, 1, ACTION_DIM))
    return (stats["mean"] + stats["std"] * amp * np.sin(3 * t + phase)).astype(np.float32)  # [N, H, A]


def _model(*extra: str) -> VLAModel:
    cfg = small_config(*FAST, *extra)
    torch.manual_seed(0)
    return VLAModel(cfg, stats=toy_stats(), tasks=TASKS, action_chunks=_chunks(64, cfg.chunk_size)).eval()


def test_fast_head_trains_and_decodes_a_valid_chunk(tmp_path: Path) -> None:
    model = _model()
    assert model.fast is not None and model.flow is None
    assert model.fast.tokenizer.horizon == model.config.chunk_size
    batch = toy_batch(model.config)
    batch["action"] = torch.from_numpy(_chunks(2, model.config.chunk_size))
    model.train()
    out = model(batch)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    assert model.backbone.embed_tokens.weight.grad is not None
    model.eval()
    actions = model.sample_actions(batch)
    assert actions.shape == (2, model.config.chunk_size, ACTION_DIM)
    assert torch.isfinite(actions).all()
    # save -> load keeps the FAST tokenizer and gives the same greedy decode
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "fast" / "tokenizer.json").is_file()
    loaded = VLAModel.from_pretrained(tmp_path / "ckpt").eval()
    torch.testing.assert_close(loaded.sample_actions(batch), actions, rtol=0, atol=0)


def test_fast_head_learns_to_emit_the_target_tokens() -> None:
    """A few steps on one batch make teacher-forced token accuracy rise (the LM-head path is wired)."""
    model = _model("backbone.layers=1")
    batch = toy_batch(model.config, batch_size=1)
    batch["action"] = torch.from_numpy(_chunks(1, model.config.chunk_size))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model(batch)
    for _ in range(40):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = model(batch)
    assert last["loss"] < 0.3 * first["loss"]
    assert last["token_accuracy"] > 0.9
    model.eval()
    target = model.normalizer.normalize_action(batch["action"])
    decoded = model.normalizer.normalize_action(model.sample_actions(batch))
    # greedy decoding reproduces the memorised chunk up to FAST's quantisation
    assert (decoded - target).abs().max() < 0.2


def test_malformed_token_sequences_decode_to_valid_chunks() -> None:
    model = _model()
    assert model.fast is not None
    head = model.fast
    ids = head.tokenizer.encode(np.zeros((model.config.chunk_size, ACTION_DIM), dtype=np.float32))
    backbone_ids = head.to_backbone_ids(ids)
    cases = [
        [],  # nothing generated
        head.from_backbone_ids(backbone_ids[: len(backbone_ids) // 2]),  # truncated
        head.from_backbone_ids([*backbone_ids, head.eos_id, 5, 6]),  # junk after EOS is ignored
        head.from_backbone_ids([7, 8, 9]),  # text ids only: dropped
        list(range(head.tokenizer.vocab_size))[:200],  # garbage FAST ids
    ]
    chunks = head.decode(cases)
    assert chunks.shape == (len(cases), model.config.chunk_size, ACTION_DIM)
    assert np.isfinite(chunks).all()
    np.testing.assert_allclose(chunks[2], 0.0, atol=0.06)


def test_fast_head_needs_a_tokenizer_that_fits() -> None:
    cfg = small_config(*FAST)
    with pytest.raises(ModelConfigError, match="action_chunks"):
        VLAModel(cfg, stats=toy_stats(), tasks=TASKS)
    other = FASTTokenizer.fit(np.zeros((4, 3, ACTION_DIM), dtype=np.float32), vocab_size=300)
    with pytest.raises(ModelConfigError, match="chunk_size"):
        VLAModel(cfg, stats=toy_stats(), tasks=TASKS, fast_tokenizer=other)
    with pytest.raises(ModelConfigError, match="vocab_size"):
        VLAModel(
            small_config(*FAST, "fast_vocab_size=900"),
            stats=toy_stats(),
            tasks=TASKS,
            action_chunks=_chunks(8, 8),
        )
