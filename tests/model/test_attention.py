"""The blockwise-causal mask and the key/value cache: structure and equivalence."""

from __future__ import annotations

import pytest
import torch

from vla.model import VLAModel
from vla.model.attention import Segment, TokenLayout, block_mask, joint_forward
from vla.model.prefix import embed_prefix, suffix_layout

from .helpers import TASKS, small_config, toy_batch, toy_stats


def test_block_mask_matches_the_layout_rules() -> None:
    # tokens: image, text, pad(text), state, action, action
    query = TokenLayout(
        valid=torch.tensor([[True, True, False, True, True, True]]),
        block=torch.tensor([[0, 0, 0, 1, 2, 2]]),
        position=torch.arange(6)[None],
    )
    mask = block_mask(query, query)[0, 0].int()
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],  # image: image+text only
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],  # padding still has somewhere to look (no NaN rows)
            [1, 1, 0, 1, 0, 0],  # state: prefix + itself
            [1, 1, 0, 1, 1, 1],  # actions: everything, bidirectional among themselves
            [1, 1, 0, 1, 1, 1],
        ]
    )
    assert torch.equal(mask, expected)


def _model(*overrides: str) -> VLAModel:
    torch.manual_seed(0)
    return VLAModel(small_config(*overrides), stats=toy_stats(), tasks=TASKS).eval()


def _joint(model: VLAModel, batch: dict, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefix and action outputs of one joint pass (the training path)."""
    assert model.flow is not None
    inputs = model.prepare_inputs(batch)
    prefix, layout = embed_prefix(model.backbone, model.state_proj, inputs)
    tokens, cond = model.flow.expert.embed_actions(actions, torch.full((actions.shape[0],), 0.5))
    act_layout = suffix_layout(layout, torch.ones(tokens.shape[:2], dtype=torch.bool), causal=False)
    segments = [Segment(prefix, model.backbone.layers), Segment(tokens, model.flow.expert.layers, cond)]
    (p, a), _ = joint_forward(segments, TokenLayout.cat([layout, act_layout]), model.backbone)
    return p, a


@torch.no_grad()
def test_prefix_ignores_actions_and_actions_see_prefix() -> None:
    model = _model()
    batch = toy_batch(model.config, with_action=False)
    a1 = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    a2 = torch.randn_like(a1) * 3
    p1, out1 = _joint(model, batch, a1)
    p2, out2 = _joint(model, batch, a2)
    torch.testing.assert_close(p1, p2, rtol=0, atol=1e-6)  # prefix output unchanged by the actions
    assert (out1 - out2).abs().max() > 1e-3
    other = dict(batch, **{"observation.images.top": torch.rand(2, 3, 48, 48)})
    _, out3 = _joint(model, other, a1)
    assert (out1 - out3).abs().max() > 1e-4  # the actions attend to the prefix


@pytest.mark.parametrize(
    "overrides",
    [(), ("expert.adarms=true",), ("state_mode=discrete", "backbone.family=paligemma")],
    ids=["pi0", "adarms", "discrete-paligemma"],
)
def test_cached_sampling_equals_uncached(overrides: tuple[str, ...]) -> None:
    model = _model(*overrides)
    batch = toy_batch(model.config, with_action=False)
    batch["task"] = ["pick up the red cube", "push"]  # different text lengths: padding inside the prefix
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    cached = model.sample_actions(batch, noise=noise, use_cache=True)
    uncached = model.sample_actions(batch, noise=noise, use_cache=False)
    assert cached.shape == (2, model.config.chunk_size, model.config.resolved_action_dim)
    torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-5)


@torch.no_grad()
def test_padding_in_text_does_not_change_the_sample() -> None:
    """Left padding is masked and positions skip it: a longer max_text_tokens gives the same actions."""
    short = _model("max_text_tokens=16")
    long = VLAModel(small_config("max_text_tokens=24"), stats=toy_stats(), tasks=TASKS).eval()
    long.load_state_dict(short.state_dict())
    batch = toy_batch(short.config, with_action=False)
    noise = torch.randn(2, short.config.chunk_size, short.config.max_action_dim)
    torch.testing.assert_close(
        short.sample_actions(batch, noise=noise), long.sample_actions(batch, noise=noise), rtol=0, atol=1e-5
    )


def test_math_attention_equals_sdpa() -> None:
    """The explicit grouped-query path ("math") matches PyTorch's SDPA, with padding in the prefix."""
    model = _model("backbone.family=paligemma", "backbone.kv_heads=1")  # 4 query heads share 1 kv head
    batch = toy_batch(model.config, with_action=False)
    batch["task"] = ["pick up the red cube", "push"]
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    sdpa = model.sample_actions(batch, noise=noise)
    model.backbone.attention = "math"
    torch.testing.assert_close(model.sample_actions(batch, noise=noise), sdpa, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        model.sample_actions(batch, noise=noise, use_cache=False), sdpa, rtol=0, atol=1e-5
    )


def test_graphed_sampler_falls_back_to_eager_on_cpu() -> None:
    from vla.model.graphed import GraphedSampler

    model = _model()
    inputs = model.prepare_inputs(toy_batch(model.config, with_action=False))
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    sampler = GraphedSampler(model, inputs)
    assert sampler.graph is None
    torch.testing.assert_close(sampler(inputs, noise), model.sample_from_inputs(inputs, noise=noise))
