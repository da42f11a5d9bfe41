"""VLAModel end to end: save/load, input validation, state modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vla.errors import VLAError
from vla.model import VLAModel
from vla.model.config import ModelConfigError

from .helpers import TASKS, small_config, toy_batch, toy_stats


def _model(*overrides: str) -> VLAModel:
    torch.manual_seed(0)
    return VLAModel(small_config(*overrides), stats=toy_stats(), tasks=TASKS).eval()


def test_outputs_are_in_dataset_units_with_the_dataset_action_dim() -> None:
    model = _model()
    assert model.config.action_dim == 5 and model.config.state_dim == 6  # resolved from the stats
    batch = toy_batch(model.config, with_action=False)
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    actions = model.sample_actions(batch, noise=noise)
    assert actions.shape == (2, model.config.chunk_size, 5) and actions.dtype == torch.float32
    normalised = model.sample_from_inputs(model.prepare_inputs(batch), noise=noise)
    torch.testing.assert_close(model.normalizer.normalize_action(actions), normalised, atol=1e-4, rtol=1e-4)


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model("expert.adarms=true")
    batch = toy_batch(model.config)
    with torch.no_grad():
        for p in model.parameters():  # move away from the init so that every weight matters
            p.add_(0.01 * torch.randn_like(p))
    target = tmp_path / "ckpt"
    model.save_pretrained(target)
    model.save_pretrained(target)  # overwriting an existing checkpoint is atomic too
    names = sorted(p.name for p in target.iterdir())
    assert names == [
        "backbone_config.json",
        "config.json",
        "model.safetensors",
        "stats.safetensors",
        "text_tokenizer.json",
        "tokenizer.json",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind
    loaded = VLAModel.from_pretrained(target).eval()
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    torch.testing.assert_close(
        loaded.sample_actions(batch, noise=noise), model.sample_actions(batch, noise=noise), rtol=0, atol=0
    )
    torch.manual_seed(3)
    loss_a = model(batch)["loss"]
    torch.manual_seed(3)
    loss_b = loaded(batch)["loss"]
    assert loss_a.item() == loss_b.item()
    assert loaded.config == model.config


def test_loading_a_checkpoint_whose_weights_do_not_match_its_config_is_a_clear_error(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path / "ckpt")
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    meta["config"]["expert"]["intermediate_size"] = 32
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelConfigError, match="does not match"):
        VLAModel.from_pretrained(tmp_path / "ckpt")
    meta["config"]["expert"]["bogus"] = 1
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelConfigError, match=r"expert\.bogus"):
        VLAModel.from_pretrained(tmp_path / "ckpt")
    with pytest.raises(ModelConfigError, match="not a VLA checkpoint"):
        VLAModel.from_pretrained(tmp_path / "nothing")


def _mutations(cfg) -> list[tuple[str, str, object]]:  # (name, field named in the message, change)
    return [
        ("missing camera", "observation.images.wrist", lambda b: b.pop("observation.images.wrist")),
        (
            "wrong image size",
            "observation.images.top",
            lambda b: b.__setitem__("observation.images.top", torch.rand(2, 3, 40, 48)),
        ),
        (
            "state too long",
            "observation.state",
            lambda b: b.__setitem__("observation.state", torch.zeros(2, cfg.max_state_dim + 1)),
        ),
        (
            "NaN state",
            "observation.state",
            lambda b: b["observation.state"].__setitem__((0, 1), float("nan")),
        ),
        ("missing task", "task", lambda b: b.pop("task")),
        ("missing action", "action", lambda b: b.pop("action")),
        ("NaN action", "action", lambda b: b["action"].__setitem__((1, 0, 0), float("inf"))),
        ("short chunk", "action", lambda b: b.__setitem__("action", b["action"][:, :3])),
    ]


@pytest.mark.parametrize("index", range(8))
def test_bad_input_raises_a_value_error_naming_the_field(index: int) -> None:
    model = _model()
    name, field, mutate = _mutations(model.config)[index]
    batch = toy_batch(model.config)
    mutate(batch)  # type: ignore[operator]
    with pytest.raises(ValueError, match=field.replace(".", r"\.")) as info:
        model(batch)
    assert isinstance(info.value, VLAError), name


def test_discrete_state_goes_into_the_prompt() -> None:
    model = _model("state_mode=discrete", "max_text_tokens=32")
    assert model.state_proj is None
    batch = toy_batch(model.config)
    inputs = model.prepare_inputs(batch)
    words = model.text_tokenizer.tokenizer.decode(inputs.text_ids[0][inputs.text_valid[0]].tolist())
    assert "state" in words and len(words.split("state")[-1].split()) >= 6  # ':' then 6 bins
    assert torch.isfinite(model(batch)["loss"])
    other = dict(batch, **{"observation.state": batch["observation.state"] + 50.0})
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    assert not torch.equal(model.sample_actions(batch, noise=noise), model.sample_actions(other, noise=noise))


def test_training_step_on_the_tiny_config_runs_and_backpropagates() -> None:
    from vla.model.config import load_config

    torch.manual_seed(0)
    model = VLAModel(load_config("tiny"), stats=toy_stats(), tasks=TASKS)
    assert 1e6 < model.num_parameters() < 5e6
    batch = toy_batch(model.config, batch_size=2)
    loss = model(batch)["loss"]
    loss.backward()
    assert model.flow is not None
    grad = model.flow.expert.layers[0].self_attn.q_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    vision_grad = next(model.backbone.vision.parameters()).grad
    assert vision_grad is not None  # tiny does not freeze the vision encoder


def test_freezing_the_vision_encoder() -> None:
    model = _model("backbone.freeze_vision=true")
    assert not any(p.requires_grad for p in model.backbone.vision.parameters())
    assert all(p.requires_grad for p in model.backbone.layers.parameters())
    expert_only = _model("backbone.freeze_language=true")
    assert model.num_parameters(trainable_only=True) > expert_only.num_parameters(trainable_only=True) > 0
