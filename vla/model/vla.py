"""`VLAModel`: a VLM backbone extended with state and action tokens (π0 / SmolVLA / π0-FAST style).

    model = VLAModel(config, stats=dataset_stats, tasks=task_strings)        # fresh (random or pretrained VLM)
    out = model(batch)                  # training: {"loss": ..., ...}; see vla.model.batch for the contract
    actions = model.sample_actions(batch)                   # [B, chunk_size, action_dim] in dataset units
    model.save_pretrained(path); model = VLAModel.from_pretrained(path)

The pieces: `backbone` (HF VLM adapter), `normalizer`, a text tokenizer, `state_proj` (continuous state),
and one head: `flow` (action expert + flow matching) or `fast` (FAST tokens through the LM head).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vla.model import checkpoint
from vla.model.attention import KVCache, TokenLayout
from vla.model.backbone import Backbone, resize_with_pad
from vla.model.batch import (
    ACTION,
    ACTION_IS_PAD,
    IMAGE_PREFIX,
    STATE,
    ModelInputs,
    validate_batch,
)
from vla.model.config import ModelConfigError, VLAConfig, coerce_config
from vla.model.expert import ActionExpert
from vla.model.fast import FASTTokenizer
from vla.model.fast_head import FastActionHead
from vla.model.flow import FlowMatchingHead, RTCGuidance
from vla.model.normalize import Normalizer
from vla.model.prefix import StateProjection, embed_prefix, encode_prefix
from vla.model.tokenizer import TextTokenizer, digitize_state, discretize_state

logger = logging.getLogger(__name__)


class VLAModel(nn.Module):
    def __init__(
        self,
        config: VLAConfig | dict[str, Any] | Any,
        stats: dict[str, Any] | None = None,
        tasks: list[str] | None = None,
        *,
        fast_tokenizer: FASTTokenizer | None = None,
        action_chunks: np.ndarray | None = None,
        text_tokenizer: TextTokenizer | None = None,
        backbone_hf_config: dict[str, Any] | None = None,
    ) -> None:
        """config: VLAConfig / dict / hydra node. stats: LeRobot dataset stats. tasks: the dataset's task
        strings (for the offline tokenizer). For head=fast, give a fitted `fast_tokenizer` or `action_chunks`
        [N, chunk_size, action_dim] in dataset units to fit one. The last two keywords are for loading."""
        super().__init__()
        cfg = copy.deepcopy(coerce_config(config))
        self.normalizer = Normalizer(stats, cfg.normalization, cfg.max_state_dim, cfg.max_action_dim)
        if cfg.state_dim is None and self.normalizer.state_dim is not None:
            cfg.state_dim = self.normalizer.state_dim
        if cfg.action_dim is None and self.normalizer.action_dim is not None:
            cfg.action_dim = self.normalizer.action_dim
        cfg.validate()
        self.stats = stats
        self.backbone = Backbone.create(cfg.backbone, backbone_hf_config)
        _sync_backbone_fields(cfg, self.backbone)

        if text_tokenizer is None:
            if cfg.backbone.pretrained:
                text_tokenizer = TextTokenizer.from_pretrained(cfg.backbone.pretrained)
            else:
                text_tokenizer = TextTokenizer.from_tasks(tasks or [], number_words=max(256, cfg.state_bins))
        self.text_tokenizer = text_tokenizer
        reserved = cfg.fast_vocab_size if cfg.head == "fast" else 0
        if (
            text_tokenizer.source == "tasks"
            and text_tokenizer.vocab_size + reserved > self.backbone.vocab_size
        ):
            raise ModelConfigError(
                f"model.backbone.vocab_size={self.backbone.vocab_size} is too small for the task tokenizer "
                f"({text_tokenizer.vocab_size} words) + {reserved} FAST tokens; raise it"
            )

        self.flow: FlowMatchingHead | None = None
        self.fast: FastActionHead | None = None
        if cfg.head == "flow":
            expert = ActionExpert(
                cfg.expert,
                backbone_hidden=self.backbone.hidden_size,
                backbone_layers=len(self.backbone.layers),
                heads=self.backbone.num_heads,
                kv_heads=self.backbone.num_kv_heads,
                head_dim=self.backbone.head_dim,
                activation=self.backbone.mlp_activation,
                eps=self.backbone.rms_eps,
                max_action_dim=cfg.max_action_dim,
                min_period=cfg.time_min_period,
                max_period=cfg.time_max_period,
            )
            self.flow = FlowMatchingHead(expert, cfg)
        else:
            if fast_tokenizer is None:
                fast_tokenizer = self._fit_fast(cfg, action_chunks)
            if (fast_tokenizer.horizon, fast_tokenizer.action_dim) != (
                cfg.chunk_size,
                cfg.resolved_action_dim,
            ):
                raise ModelConfigError(
                    f"FAST tokenizer is for chunks {fast_tokenizer.horizon}x{fast_tokenizer.action_dim}, the model "
                    f"predicts {cfg.chunk_size}x{cfg.resolved_action_dim} (model.chunk_size x action_dim)"
                )
            self.fast = FastActionHead(
                fast_tokenizer, self.backbone.vocab_size, text_tokenizer.eos_id, cfg.fast_max_tokens
            )
        state_width = self.flow.expert.width if self.flow is not None else self.backbone.hidden_size
        if cfg.state_token == "prefix":
            state_width = self.backbone.hidden_size
        self.state_proj = (
            StateProjection(cfg.max_state_dim, state_width) if cfg.state_mode == "continuous" else None
        )
        self.config = cfg
        self._warned_missing: set[tuple[str, ...]] = set()
        # The prefix functions, as attributes so that GraphedSampler can swap in compiled versions.
        self.embed_prefix_fn = embed_prefix
        self.encode_prefix_fn = encode_prefix

    def _fit_fast(self, cfg: VLAConfig, action_chunks: np.ndarray | None) -> FASTTokenizer:
        if action_chunks is None:
            raise ModelConfigError("model.head=fast needs `fast_tokenizer` or `action_chunks` to fit one")
        chunks = torch.as_tensor(np.asarray(action_chunks, dtype=np.float32))  # [N, H, A]
        normalised = self.normalizer.normalize_action(chunks).numpy()
        try:
            return FASTTokenizer.fit(normalised, vocab_size=cfg.fast_vocab_size, scale=cfg.fast_scale)
        except ValueError as e:  # the dataset's actions do not fit the configured quantisation
            raise ModelConfigError(
                f"cannot fit the FAST tokenizer with model.fast_scale={cfg.fast_scale}, "
                f"model.fast_vocab_size={cfg.fast_vocab_size}: {e}"
            ) from None

    def fp32_modules(self) -> list[nn.Module]:
        """What model.keep_fp32 keeps in float32 under a cast: the vision tower, the projector, every
        RMSNorm (backbone and expert), the state/action/time projections and the normaliser (LeRobot's
        processors normalise in float32)."""
        kept: list[nn.Module] = [self.backbone.vision, self.backbone.projector, self.backbone.norm]
        kept.append(self.normalizer)
        layer: Any
        for layer in self.backbone.layers:
            kept += [layer.input_layernorm, layer.post_attention_layernorm]
        if self.state_proj is not None:
            kept.append(self.state_proj)
        if self.flow is not None:
            expert = self.flow.expert
            kept += [expert.norm, expert.action_in, expert.action_out, expert.time_mlp]
            for layer in expert.layers:
                kept += [layer.input_layernorm, layer.post_attention_layernorm]
        return kept

    def _apply(self, fn: Any, recurse: bool = True) -> VLAModel:
        """`.to(dtype)`, `.half()`, ...; with model.keep_fp32, the fp32 modules are cast back to float32."""
        super()._apply(fn, recurse)
        if getattr(self, "config", None) is not None and self.config.keep_fp32:
            for module in self.fp32_modules():
                module.float()
        return self

    # ------------------------------------------------------------------ inputs

    @property
    def device(self) -> torch.device:
        return self.normalizer.state_offset.device

    def prepare_inputs(self, batch: dict[str, Any], training: bool = False) -> ModelInputs:
        """Validate, normalise, tokenise and pad a batch (see vla.model.batch) -> static-shape tensors."""
        cfg = self.config
        tasks = validate_batch(batch, cfg, training)
        device = self.device
        raw_state = batch[STATE].to(device)
        b, s = raw_state.shape
        images, image_valid = self._camera_images(batch, b)
        state = torch.zeros((b, cfg.max_state_dim), device=device)
        state[:, :s] = self.normalizer.normalize_state(raw_state)
        state_mask = torch.zeros((b, cfg.max_state_dim), dtype=torch.bool, device=device)
        state_mask[:, :s] = True
        words = None
        if cfg.state_mode == "discrete":
            binned = digitize_state if cfg.prompt_format == "pi05" else discretize_state
            words = binned(state[:, :s], cfg.state_bins)
        ids, valid = self.text_tokenizer.encode_prompts(tasks, words, cfg.max_text_tokens, cfg.prompt_format)
        inputs = ModelInputs(
            images, ids.to(device), valid.to(device), state, state_mask, image_valid=image_valid
        )
        if training:
            raw_action = batch[ACTION].to(device)
            a = raw_action.shape[-1]
            actions = torch.zeros((b, cfg.chunk_size, cfg.max_action_dim), device=device)
            actions[:, :, :a] = self.normalizer.normalize_action(raw_action)
            dim_mask = torch.zeros((b, cfg.max_action_dim), dtype=torch.bool, device=device)
            dim_mask[:, :a] = True
            pad = batch.get(ACTION_IS_PAD)
            inputs.actions, inputs.action_dim_mask = actions, dim_mask
            inputs.action_is_pad = pad.to(device).bool() if pad is not None else None
        return inputs

    def _camera_images(self, batch: dict[str, Any], b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> images [B, N, 3, H, W] and image_valid [B, N]; a missing camera (model.missing_cameras=mask)
        is a black image whose tokens are masked out. Cameras of different sizes (model.image_size null)
        are each resized with padding to the backbone's input here (the same resize the backbone applies)."""
        cfg, device = self.config, self.device
        present = {
            cam: batch[IMAGE_PREFIX + cam].to(device) for cam in cfg.cameras if IMAGE_PREFIX + cam in batch
        }
        missing = [cam for cam in cfg.cameras if cam not in present]
        if missing and tuple(missing) not in self._warned_missing:
            self._warned_missing.add(tuple(missing))
            logger.warning(
                "cameras %s missing: their tokens are masked out (model.missing_cameras=mask)", missing
            )
        if len({tuple(x.shape[-2:]) for x in present.values()}) > 1:  # cameras of different sizes
            size, mode = self.backbone.image_size, self.backbone.image_resize
            present = {cam: resize_with_pad(x, size, mode) for cam, x in present.items()}  # each [B, 3, S, S]
        like = next(iter(present.values()))
        images = torch.stack([present.get(cam, torch.zeros_like(like)) for cam in cfg.cameras], dim=1)
        valid = torch.tensor([cam in present for cam in cfg.cameras], device=device)
        return images, valid[None].expand(b, -1)  # [B, N, 3, H, W], [B, N]

    # ------------------------------------------------------------------ training

    def forward(
        self,
        batch: dict[str, Any],
        vlm_batch: dict[str, Any] | None = None,
        vlm_weight: float = 1.0,
        max_answer_tokens: int = 12,
    ) -> dict[str, torch.Tensor]:
        """Training loss on a batch with `action` (and optionally `action_is_pad`) -> {"loss": scalar, ...}.

        Co-training (π0.5 style): with `vlm_batch` (images, prompts, answers: vla.vlm.samples.collate) the
        backbone's next-token loss on the answers is added, weighted by `vlm_weight`; `action_loss` and
        `lm_loss` are returned beside the total. One forward, so DDP sees every parameter's gradient."""
        inputs = self.prepare_inputs(batch, training=True)
        out = self.loss_from_inputs(inputs)
        if vlm_batch is None:
            return out
        from vla.vlm.model import question_answer_loss

        lm = question_answer_loss(
            self.backbone, self.text_tokenizer, vlm_batch, self.config.max_text_tokens, max_answer_tokens
        )
        return {
            **out,
            "loss": out["loss"] + vlm_weight * lm["loss"],
            "action_loss": out["loss"].detach(),
            "lm_loss": lm["loss"].detach(),
            "lm_token_accuracy": lm["token_accuracy"],
        }

    @property
    def prefix_state_proj(self) -> StateProjection | None:
        """The state projection when the state token is part of the prefix (model.state_token=prefix)."""
        return self.state_proj if self.config.state_token == "prefix" else None

    def expert_state(self, inputs: ModelInputs) -> torch.Tensor | None:
        """The expert-stream state token [B, 1, W] (model.state_token=expert), else None."""
        if self.config.state_token != "expert":
            return None
        assert self.state_proj is not None and self.flow is not None
        return self.state_proj(inputs.state, inputs.state_mask).to(self.flow.expert.layer_dtype)  # [B, 1, W]

    def loss_from_inputs(self, inputs: ModelInputs, **flow_kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        assert inputs.actions is not None and inputs.action_dim_mask is not None
        prefix, layout = embed_prefix(self.backbone, self.prefix_state_proj, inputs)
        if self.flow is not None:
            return self.flow.loss(
                self.backbone,
                prefix,
                layout,
                inputs.actions,
                inputs.action_is_pad,
                inputs.action_dim_mask,
                state=self.expert_state(inputs),
                **flow_kwargs,
            )
        assert self.fast is not None
        return self.fast.loss(
            self.backbone, prefix, layout, inputs.actions[:, :, : self.config.resolved_action_dim]
        )

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def sample_actions(
        self,
        batch: dict[str, Any],
        num_steps: int | None = None,
        use_cache: bool = True,
        noise: torch.Tensor | None = None,
        guidance: RTCGuidance | None = None,
    ) -> torch.Tensor:
        """-> [B, chunk_size, action_dim] float32 in dataset units. noise: [B, chunk_size, max_action_dim].
        guidance: real-time chunking target in normalised units (flow head only; see vla.model.flow)."""
        inputs = self.prepare_inputs(batch, training=False)
        normalised = self.sample_from_inputs(inputs, num_steps, use_cache, noise, guidance)
        return self.normalizer.unnormalize_action(normalised)

    @torch.no_grad()
    def sample_from_inputs(
        self,
        inputs: ModelInputs,
        num_steps: int | None = None,
        use_cache: bool = True,
        noise: torch.Tensor | None = None,
        guidance: RTCGuidance | None = None,
    ) -> torch.Tensor:
        """The pure-tensor inference path (no validation, no tokenising): normalised [B, chunk, action_dim]."""
        cfg = self.config
        prefix, layout = self.embed_prefix_fn(self.backbone, self.prefix_state_proj, inputs)
        if self.fast is not None:
            if guidance is not None:
                raise ModelConfigError("guided sampling (real-time chunking) needs model.head=flow")
            return self.fast.generate(self.backbone, prefix, layout)
        assert self.flow is not None
        if noise is None:
            noise = torch.randn((inputs.batch_size, cfg.chunk_size, cfg.max_action_dim), device=prefix.device)
        steps = num_steps or cfg.num_steps
        state = self.expert_state(inputs)
        if use_cache:
            _, cache = self.encode_prefix_fn(self.backbone, prefix, layout)
            x = self.flow.sample(
                self.backbone, layout, noise, steps, cache=cache, guidance=guidance, state=state
            )
        else:
            x = self.flow.sample(
                self.backbone, layout, noise, steps, prefix=prefix, guidance=guidance, state=state
            )
        return x[:, :, : cfg.resolved_action_dim]

    def encode_observation(self, inputs: ModelInputs) -> tuple[KVCache, TokenLayout]:
        """Prefix once per observation -> its key/value cache (for runners that denoise themselves); with
        model.state_token=expert the cache (and layout) cover the state token too."""
        prefix, layout = self.embed_prefix_fn(self.backbone, self.prefix_state_proj, inputs)
        cache = self.encode_prefix_fn(self.backbone, prefix, layout)[1]
        state = self.expert_state(inputs)
        if state is not None:
            assert self.flow is not None
            cache = self.flow.extend_cache(self.backbone, cache, state)
            layout = cache.layout
        return cache, layout

    # ------------------------------------------------------------------ files

    def save_pretrained(self, directory: str | Path) -> Path:
        """Atomically write weights, resolved config, stats and tokenizers into `directory`."""
        return checkpoint.save(self, Path(directory))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> VLAModel:
        """Load a directory written by save_pretrained (safetensors and JSON only; nothing is unpickled)."""
        return checkpoint.load(cls, Path(directory), device)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def _sync_backbone_fields(cfg: VLAConfig, backbone: Backbone) -> None:
    """Write the backbone's real sizes into the resolved config (they differ from the fields when pretrained)."""
    b = cfg.backbone
    b.hidden_size, b.heads, b.kv_heads = backbone.hidden_size, backbone.num_heads, backbone.num_kv_heads
    b.head_dim, b.vocab_size, b.image_size = backbone.head_dim, backbone.vocab_size, backbone.image_size
    if b.pretrained:
        b.layers = len(backbone.layers)
