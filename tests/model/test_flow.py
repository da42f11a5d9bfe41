"""Flow matching: time sampling, loss masking, Euler integration, and fitting one batch."""

from __future__ import annotations

import torch

from vla.model import VLAModel
from vla.model.expert import sinusoidal_time_embedding

from .helpers import TASKS, small_config, toy_batch, toy_stats


def _model(*overrides: str) -> VLAModel:
    torch.manual_seed(0)
    return VLAModel(small_config(*overrides), stats=toy_stats(), tasks=TASKS)


def test_training_times_follow_the_scaled_beta() -> None:
    model = _model()
    assert model.flow is not None
    torch.manual_seed(1)
    t = model.flow.sample_time(20000, torch.device("cpu"))
    assert t.min() >= model.config.time_min and t.max() <= 1.0
    # Beta(1.5, 1) has mean 0.6; scaled into [0.001, 1] -> 0.6004
    assert abs(t.mean().item() - 0.6004) < 0.01


def test_time_embedding_is_sinusoidal() -> None:
    emb = sinusoidal_time_embedding(torch.tensor([0.0, 0.5, 1.0]), 16, 4e-3, 4.0)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb[0, :8], torch.zeros(8))  # sin(0)
    torch.testing.assert_close(emb[0, 8:], torch.ones(8))  # cos(0)
    torch.testing.assert_close(emb.pow(2).view(3, 2, 8).sum(1), torch.ones(3, 8))


def test_loss_ignores_padded_steps_and_padded_dims() -> None:
    model = _model()
    assert model.flow is not None
    batch = toy_batch(model.config)
    inputs = model.prepare_inputs(batch, training=True)
    assert inputs.actions is not None and inputs.action_dim_mask is not None
    assert inputs.action_dim_mask[0].tolist() == [True] * 5 + [False] * 3  # ACTION_DIM=5 of max 8
    pad = torch.zeros(2, model.config.chunk_size, dtype=torch.bool)
    pad[:, -3:] = True
    pred = torch.randn_like(inputs.actions)
    model.flow.velocity = lambda *args, **kwargs: pred  # type: ignore[method-assign]
    noise, t = torch.randn_like(inputs.actions), torch.tensor([0.3, 0.8])

    def loss(actions: torch.Tensor) -> torch.Tensor:
        args = (model.backbone, None, None, actions, pad, inputs.action_dim_mask)
        return model.flow.loss(*args, noise=noise, t=t)["loss"]  # type: ignore[arg-type, union-attr]

    base = loss(inputs.actions)
    changed = inputs.actions.clone()
    changed[:, -3:, :] += 100.0  # padded steps
    changed[:, :, 5:] += 100.0  # padded dims
    torch.testing.assert_close(loss(changed), base)
    expected = (pred - (noise - inputs.actions))[:, :-3, :5].pow(2).mean()
    torch.testing.assert_close(base, expected)


def test_euler_integration_follows_a_constant_velocity() -> None:
    model = _model()
    assert model.flow is not None
    flow = model.flow
    velocity = torch.full((1, model.config.chunk_size, model.config.max_action_dim), 0.25)
    flow.velocity = lambda *args, **kwargs: velocity  # type: ignore[method-assign]
    noise = torch.randn_like(velocity)
    out = flow.sample(model.backbone, None, noise, num_steps=7, cache=None)  # type: ignore[arg-type]
    torch.testing.assert_close(out, noise - velocity)  # x_0 = x_1 - ∫ v dt


def test_flow_loss_fits_one_batch() -> None:
    """A model that cannot fit one small batch (with fresh noise and times every step) is broken."""
    model = _model()
    batch = toy_batch(model.config)
    inputs = model.prepare_inputs(batch, training=True)
    assert inputs.actions is not None
    g = torch.Generator().manual_seed(1)
    noise, t = torch.randn(inputs.actions.shape, generator=g), torch.rand(2, generator=g)

    def probe() -> float:
        with torch.no_grad():
            return model.loss_from_inputs(inputs, noise=noise, t=t)["loss"].item()

    start = probe()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert probe() < 0.5 * start


def test_training_time_rtc_conditions_on_the_committed_prefix() -> None:
    """rtc_max_delay: training hides no loss in the given rows; sampling clamps them and continues."""
    import pytest

    from vla.model.config import ModelConfigError
    from vla.model.flow import RTCGuidance

    model = _model("rtc_max_delay=3")
    assert model.flow is not None and model.flow.rtc_max_delay == 3
    batch = toy_batch(model.config)
    inputs = model.prepare_inputs(batch, training=True)
    assert inputs.actions is not None
    # a random committed prefix of 0..3 rows per sample: the loss is finite and trains the expert
    out = model.loss_from_inputs(inputs)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.flow.expert.action_in.weight.grad is not None
    # at inference, the committed rows come back exactly; the others are sampled
    h, a = model.config.chunk_size, 5
    target = torch.randn(1, h, a)
    guidance = RTCGuidance(target, torch.ones(h), frozen=2)
    inputs = model.prepare_inputs(toy_batch(model.config, batch_size=1, with_action=False))
    noise = torch.randn(1, h, model.config.max_action_dim)
    x = model.sample_from_inputs(inputs, noise=noise, guidance=guidance)  # [1, H, A] normalised
    torch.testing.assert_close(x[:, :2], target[:, :2])
    free = model.sample_from_inputs(inputs, noise=noise)
    assert not torch.allclose(x[:, 2:], free[:, 2:])  # the continuation depends on what was committed
    with pytest.raises(ModelConfigError, match="rtc_max_delay"):
        small_config("rtc_max_delay=8")  # chunk_size is 8
    with pytest.raises(ModelConfigError, match="rtc_max_delay"):
        small_config("rtc_max_delay=2", "expert.adarms=true")


def test_several_flow_draws_per_observation_equal_the_repeated_batch() -> None:
    """flow_samples=k encodes the prefix once; its loss and gradients equal k copies of each
    observation through the plain joint pass with the same noise and times."""
    model = _model("flow_samples=3")
    assert model.flow is not None and model.flow.samples == 3
    batch = toy_batch(model.config)
    inputs = model.prepare_inputs(batch, training=True)
    assert inputs.actions is not None and inputs.action_dim_mask is not None
    pad = torch.zeros(2, model.config.chunk_size, dtype=torch.bool)
    pad[1, -2:] = True
    inputs.action_is_pad = pad
    torch.manual_seed(3)
    noise = torch.randn(6, *inputs.actions.shape[1:])
    t = torch.rand(6)
    drawn = model.loss_from_inputs(inputs, noise=noise, t=t)["loss"]
    grads = torch.autograd.grad(drawn, list(model.backbone.layers[0].parameters()))

    model.flow.samples = 1
    repeated = model.prepare_inputs({k: _repeat(v, 3) for k, v in batch.items()}, training=True)
    repeated.action_is_pad = pad.repeat_interleave(3, 0)
    plain = model.loss_from_inputs(repeated, noise=noise, t=t)["loss"]
    plain_grads = torch.autograd.grad(plain, list(model.backbone.layers[0].parameters()))
    torch.testing.assert_close(drawn, plain, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert drawn.item() > 0


def _repeat(value: object, k: int) -> object:
    if isinstance(value, torch.Tensor):
        return value.repeat_interleave(k, 0)
    if isinstance(value, list):
        return [v for v in value for _ in range(k)]
    return value
