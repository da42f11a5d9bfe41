"""LoRA (peft) on the backbone's language layers: only adapters train there; save/load keeps them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.model.helpers import small_config, toy_batch, toy_stats
from vla.model.config import ModelConfigError
from vla.model.vla import VLAModel

TASKS = ["pick up the red cube", "push the button"]


def _lora_model(*overrides: str) -> VLAModel:
    torch.manual_seed(0)
    return VLAModel(small_config("backbone.lora_rank=4", *overrides), stats=toy_stats(), tasks=TASKS)


def test_only_adapters_train_in_the_language_layers() -> None:
    model = _lora_model()
    layer_params = dict(model.backbone.layers.named_parameters())
    trainable = {n for n, p in layer_params.items() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert any(n.endswith("q_proj.lora_A.default.weight") for n in trainable)
    assert model.flow is not None and all(p.requires_grad for p in model.flow.parameters())

    frozen_before = {n: p.detach().clone() for n, p in layer_params.items() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in layer_params.items() if "lora_B" in n}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for seed in range(2):
        loss = model(toy_batch(model.config, seed=seed))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(model.backbone.layers.named_parameters())
    assert all(torch.equal(after[n], v) for n, v in frozen_before.items())
    assert any(not torch.equal(after[n], v) for n, v in lora_before.items())  # lora_B starts at 0 and moves


def test_lora_checkpoint_round_trip(tmp_path: Path) -> None:
    model = _lora_model().eval()
    with torch.no_grad():
        for n, p in model.backbone.layers.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)  # non-zero adapters, so they matter to the output
    batch = toy_batch(model.config, with_action=False)
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    expected = model.sample_actions(batch, noise=noise)
    loaded = VLAModel.from_pretrained(model.save_pretrained(tmp_path / "ckpt")).eval()
    torch.testing.assert_close(loaded.sample_actions(batch, noise=noise), expected, rtol=0, atol=1e-6)


def test_bad_lora_targets_are_a_config_error() -> None:
    with pytest.raises(ModelConfigError, match="lora_targets"):
        _lora_model("backbone.lora_targets=[no_such_proj]")
