"""Flow-matching action head (π0 convention).

    x_t = t * noise + (1 - t) * actions,   target velocity u = noise - actions,
    t ~ Beta(alpha, beta) scaled into [time_min, 1],   Euler from t = 1 (noise) to t = 0 with num_steps.

The expert's noisy-action tokens attend to the backbone's keys/values through `attention.joint_forward`. The
denoising step (`velocity`) takes either the prefix hidden states (uncached: the joint pass is recomputed)
or the prefix's KVCache (cached: only the action tokens run), and training uses the same joint pass.

Real-time chunking (Black, Galliker, Levine 2025) is an option of the one sampler: `RTCGuidance` pulls the
chunk's first rows towards actions already committed (inpainting), with the ΠGDM-style vector-Jacobian
correction of the paper (one backward through the denoising step; the prefix cache stays fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla.model.attention import KVCache, Segment, TokenLayout, joint_forward
from vla.model.backbone import Backbone
from vla.model.config import VLAConfig
from vla.model.expert import ActionExpert
from vla.model.prefix import STATE_BLOCK, encode_prefix, suffix_layout


@dataclass
class RTCGuidance:
    """Inpainting target for real-time chunking (the runner's `rtc` strategy).

    target: [B, H, A] normalised actions to match, A <= max_action_dim (the real action dims);
    weights: [H] or [B, H] per-row weights (1: frozen, decaying over the overlap, 0: free);
    beta: clip on the guidance scale (the paper's β).
    """

    target: torch.Tensor
    weights: torch.Tensor
    beta: float = 5.0
    frozen: int = 0  # rows [0, frozen) are committed; a prefix-trained head clamps them instead of guiding

    def scale(self, t: torch.Tensor) -> torch.Tensor:
        """t [B] (1 = noise) -> min(β, (1-τ) / (τ r²)) with τ = 1 - t, r² = (1-τ)² / (τ² + (1-τ)²)."""
        ratio = (t.square() + (1 - t).square()) / (t * (1 - t)).clamp(min=1e-6)
        return ratio.clamp(max=self.beta)


class FlowMatchingHead(nn.Module):
    def __init__(self, expert: ActionExpert, cfg: VLAConfig) -> None:
        super().__init__()
        self.expert = expert
        self.chunk_size = cfg.chunk_size
        self.max_action_dim = cfg.max_action_dim
        self.beta = (cfg.time_beta_alpha, cfg.time_beta_beta)
        self.time_min = cfg.time_min
        self.rtc_max_delay = cfg.rtc_max_delay
        self.samples = cfg.flow_samples
        self.causal = cfg.causal_actions

    # ------------------------------------------------------------------ the state token (π0)

    @staticmethod
    def state_layout(prefix_layout: TokenLayout) -> TokenLayout:
        """The expert-stream state token's layout [B, 1]: its own block, the position after the prefix."""
        b = prefix_layout.valid.shape[0]
        device = prefix_layout.valid.device
        return TokenLayout(
            valid=torch.ones((b, 1), dtype=torch.bool, device=device),
            block=torch.full((b, 1), STATE_BLOCK, dtype=torch.long, device=device),
            position=prefix_layout.next_position(),
        )

    def extend_cache(self, backbone: Backbone, cache: KVCache, state: torch.Tensor) -> KVCache:
        """Prefix cache + the state token [B, 1, W] run through the expert layers -> a cache of both (the
        state token never sees the actions, so once per observation is exact)."""
        layout = self.state_layout(cache.layout)
        _, extended = joint_forward(
            [Segment(state, self.expert.layers)], layout, backbone, past=cache, keep_cache=True
        )
        assert extended is not None
        return extended

    # ------------------------------------------------------------------ the denoising step

    def velocity(
        self,
        backbone: Backbone,
        x_t: torch.Tensor,
        t: torch.Tensor,
        prefix_layout: TokenLayout,
        prefix: torch.Tensor | None = None,
        cache: KVCache | None = None,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_t [B, H, A], t [B] or [B, H] -> predicted velocity [B, H, A] (float32). Give `prefix` or `cache`.
        state [B, 1, W]: the expert-stream state token (model.state_token=expert), run with the prefix when
        uncached; a cache already holds it (extend_cache), and then prefix_layout is the cache's layout."""
        tokens, cond = self.expert.embed_actions(x_t, t)  # [B, H, W]
        valid = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        action_seg = Segment(tokens, self.expert.layers, cond)
        if cache is not None:
            layout = suffix_layout(prefix_layout, valid, causal=self.causal)
            (hidden,), _ = joint_forward([action_seg], layout, backbone, past=cache)
        elif prefix is not None:
            segments, layouts = [Segment(prefix, backbone.layers)], [prefix_layout]
            if state is not None:
                segments.append(Segment(state, self.expert.layers))
                layouts.append(self.state_layout(prefix_layout))
            context = TokenLayout.cat(layouts) if len(layouts) > 1 else prefix_layout
            layout = suffix_layout(context, valid, causal=self.causal)
            joint = TokenLayout.cat([*layouts, layout])
            *_, hidden = joint_forward([*segments, action_seg], joint, backbone)[0]
        else:
            raise ValueError("velocity needs the prefix hidden states or its key/value cache")
        return self.expert.project_out(hidden, cond)

    # ------------------------------------------------------------------ training

    def sample_time(self, batch_size: int, device: torch.device) -> torch.Tensor:
        alpha = torch.full((batch_size,), self.beta[0], device=device)
        beta = torch.full((batch_size,), self.beta[1], device=device)
        t = torch.distributions.Beta(alpha, beta).sample()  # [B]
        return t * (1.0 - self.time_min) + self.time_min

    def loss(
        self,
        backbone: Backbone,
        prefix: torch.Tensor,
        prefix_layout: TokenLayout,
        actions: torch.Tensor,
        action_is_pad: torch.Tensor | None,
        action_dim_mask: torch.Tensor,
        noise: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """actions [B, H, A_max] normalised and zero-padded; masks: action_is_pad [B, H], dims [B, A_max].
        With flow_samples k > 1 the prefix is encoded once and each observation gets k draws (noise and
        t, when given, are then [B*k, ...], sample i's draws in rows i*k .. i*k+k-1)."""
        cache = None
        if self.samples > 1:
            k = self.samples
            _, cache = encode_prefix(backbone, prefix, prefix_layout)
            if state is not None:
                cache = self.extend_cache(backbone, cache, state)
            cache = cache.repeat_interleave(k)
            prefix_layout = cache.layout
            actions, action_dim_mask = (
                actions.repeat_interleave(k, 0),
                action_dim_mask.repeat_interleave(k, 0),
            )
            if action_is_pad is not None:
                action_is_pad = action_is_pad.repeat_interleave(k, 0)
        b, h = actions.shape[:2]
        noise = torch.randn_like(actions) if noise is None else noise
        t = self.sample_time(b, actions.device) if t is None else t
        time: torch.Tensor = t  # [B], or [B, H] with a committed prefix
        committed = None
        if self.rtc_max_delay > 0:  # training-time RTC: the first d actions are given, clean
            d = torch.randint(0, self.rtc_max_delay + 1, (b,), device=actions.device)  # [B]
            committed = torch.arange(h, device=actions.device)[None, :] < d[:, None]  # [B, H]
            time = t[:, None].expand(b, h).masked_fill(committed, 0.0)
        tt = time[:, None, None] if time.ndim == 1 else time[:, :, None]  # [B, 1|H, 1]
        x_t = tt * noise + (1.0 - tt) * actions
        target = noise - actions
        if cache is not None:  # the same joint pass: the prefix never attends to the action tokens
            pred = self.velocity(backbone, x_t, time, prefix_layout, cache=cache)
        else:
            pred = self.velocity(backbone, x_t, time, prefix_layout, prefix=prefix, state=state)
        weight = action_dim_mask[:, None, :].float().expand_as(pred)  # [B, H, A]
        if action_is_pad is not None:
            weight = weight * (~action_is_pad.bool())[:, :, None].float()
        if committed is not None:  # no loss on what was given
            weight = weight * (~committed)[:, :, None].float()
        err = (pred - target).pow(2) * weight
        loss = err.sum() / weight.sum().clamp(min=1.0)
        return {"loss": loss, "flow_mse": loss.detach()}

    # ------------------------------------------------------------------ inference

    def sample(
        self,
        backbone: Backbone,
        prefix_layout: TokenLayout,
        noise: torch.Tensor,
        num_steps: int,
        prefix: torch.Tensor | None = None,
        cache: KVCache | None = None,
        guidance: RTCGuidance | None = None,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Euler integration from noise [B, H, A] at t = 1 to actions at t = 0 -> [B, H, A] normalised.
        With `guidance`, each step's velocity is corrected towards its target (real-time chunking).
        state [B, 1, W]: the expert-stream state token; with a cache it joins the cache once here."""
        if cache is not None and state is not None:
            cache, state = self.extend_cache(backbone, cache, state), None
            prefix_layout = cache.layout
        x = noise.float()
        dt = -1.0 / num_steps
        if guidance is not None and guidance.frozen > 0 and self.rtc_max_delay > 0:
            return self._sample_committed(
                backbone, prefix_layout, x, num_steps, prefix, cache, guidance, state
            )
        for step in range(num_steps):
            t = torch.full((x.shape[0],), 1.0 + step * dt, device=x.device)
            if guidance is None:
                v = self.velocity(backbone, x, t, prefix_layout, prefix=prefix, cache=cache, state=state)
            else:
                v = self._guided_velocity(guidance, backbone, x, t, prefix_layout, prefix, cache, state)
            x = x + dt * v
        return x

    def _sample_committed(
        self,
        backbone: Backbone,
        prefix_layout: TokenLayout,
        x: torch.Tensor,
        num_steps: int,
        prefix: torch.Tensor | None,
        cache: KVCache | None,
        guidance: RTCGuidance,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training-time RTC at inference: the committed rows are clamped to the target at time 0 and the
        rest is denoised conditioned on them (as the head was trained: `rtc_max_delay`), with the soft
        guidance over the overlap after them."""
        b, h, _ = x.shape
        a = guidance.target.shape[-1]
        d = min(guidance.frozen, self.rtc_max_delay, h - 1)
        given = torch.zeros_like(x[:, :d])  # [B, d, A_max], zero-padded as in training
        given[:, :, :a] = guidance.target[:, :d].to(x)
        dt = -1.0 / num_steps
        # The rows after the committed ones are still pulled towards the old chunk by the soft mask
        # (inference-time RTC's guidance): measured, the two together cut the largest discontinuity at
        # a chunk switch to 0.27x of plain async, conditioning alone to 0.39x (bench/README.md).
        weights = guidance.weights.to(x.device, torch.float32).clone()
        weights[..., :d] = 0.0
        soft = RTCGuidance(guidance.target, weights, guidance.beta) if bool(weights.any()) else None
        for step in range(num_steps):
            x[:, :d] = given
            t = torch.full((b, h), 1.0 + step * dt, device=x.device)
            t[:, :d] = 0.0
            if soft is None:
                v = self.velocity(backbone, x, t, prefix_layout, prefix=prefix, cache=cache, state=state)
            else:  # and the soft mask over the rows after them, as inference-time RTC does
                v = self._guided_velocity(soft, backbone, x, t, prefix_layout, prefix, cache, state)
            x = x + dt * v
        x[:, :d] = given
        return x

    def _guided_velocity(
        self,
        guidance: RTCGuidance,
        backbone: Backbone,
        x_t: torch.Tensor,
        t: torch.Tensor,
        prefix_layout: TokenLayout,
        prefix: torch.Tensor | None,
        cache: KVCache | None,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ΠGDM guidance in this file's convention (t = 1 is noise, v = noise - actions):
        v - c(t) · Jᵀ (W ⊙ (Y - â)), with â = x_t - t v the one-step estimate of the clean chunk."""
        a = guidance.target.shape[-1]
        weights = guidance.weights.to(x_t.device, torch.float32)
        weights = weights[None, :, None] if weights.ndim == 1 else weights[:, :, None]  # [B|1, H, 1]
        with torch.enable_grad():
            x_in = x_t.detach().requires_grad_(True)
            v = self.velocity(backbone, x_in, t, prefix_layout, prefix=prefix, cache=cache, state=state)
            tt = t[:, None, None] if t.ndim == 1 else t[:, :, None]  # [B, 1|H, 1]
            denoised = x_in - tt * v  # [B, H, A_max]
            error = torch.zeros_like(denoised)
            error[:, :, :a] = (guidance.target.to(denoised) - denoised[:, :, :a].detach()) * weights
            (vjp,) = torch.autograd.grad(denoised, x_in, grad_outputs=error)  # [B, H, A_max]
        scale = guidance.scale(t)
        scale = scale[:, None, None] if t.ndim == 1 else scale[:, :, None]
        return (v - scale * vjp).detach()
