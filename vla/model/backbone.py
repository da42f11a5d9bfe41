"""Backbone adapter: one face over Hugging Face vision-language models of different families.

Families differ in attribute paths (SmolVLM: `model.vision_model` / `model.connector` / `model.text_model`;
PaliGemma: `model.vision_tower` / `model.multi_modal_projector` / `model.language_model`). This file plucks the
parts the VLA needs and hides the rest:

- `embed_images`: camera pixels in [0, 1] -> a fixed number of tokens per image,
- `embed_text`: token ids -> embeddings (Gemma's sqrt(hidden) scale lives inside its embedding module),
- `layers`: the decoder layers, run layer by layer by `attention.joint_forward` together with the expert,
- `norm`, `rotary`, `logits` (LM head; tied to the embedding when the family ties them).

The HF wrapper object is discarded after plucking, so the state dict has our own, stable key names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla.model.config import BackboneConfig, ModelConfigError


def hf_config_from_fields(cfg: BackboneConfig) -> Any:
    """A transformers config built from our size fields (random weights, nothing downloaded)."""
    import transformers

    classes: Any = transformers  # their dataclass-style configs confuse mypy's keyword checks
    layers = cfg.num_layers or cfg.layers
    head_dim = cfg.head_dim or cfg.hidden_size // cfg.heads
    text: dict[str, Any] = {
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": cfg.heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": head_dim,
        "intermediate_size": cfg.intermediate_size,
        "vocab_size": cfg.vocab_size,
        "rope_theta": cfg.rope_theta,
        "max_position_embeddings": cfg.max_position_embeddings,
        "pad_token_id": 0,
    }
    vision: dict[str, Any] = {
        "hidden_size": cfg.vision_hidden_size,
        "num_hidden_layers": cfg.vision_layers,
        "num_attention_heads": cfg.vision_heads,
        "intermediate_size": cfg.vision_intermediate_size,
        "patch_size": cfg.patch_size,
        "image_size": cfg.image_size,
    }
    if cfg.patch_stem:
        vision[PATCH_STEM_KEY] = cfg.patch_stem
    if cfg.family == "smolvlm":
        text |= {"model_type": "llama", "rms_norm_eps": 1e-5, "tie_word_embeddings": False}
        return classes.SmolVLMConfig(
            text_config=text,
            vision_config=vision,
            scale_factor=cfg.pixel_shuffle,
            image_token_id=0,
            pad_token_id=0,
            tie_word_embeddings=False,
        )
    text |= {"model_type": "gemma", "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6}
    vision |= {"model_type": "siglip_vision_model", "vision_use_head": False}
    return classes.PaliGemmaConfig(
        text_config=text,
        vision_config=vision,
        projection_dim=cfg.hidden_size,
        hidden_size=cfg.hidden_size,
        vocab_size=cfg.vocab_size,
        image_token_index=0,
        tie_word_embeddings=True,
    )


def build_hf_model(cfg: BackboneConfig, hf_config: dict[str, Any] | None = None) -> Any:
    """The transformers VLM: loaded from `cfg.pretrained` (its family checked), rebuilt from a saved HF
    config dict (a checkpoint's, weights loaded later), or built from our size fields (random weights);
    cut to `cfg.num_layers` language layers when asked."""
    if cfg.pretrained and hf_config is None:
        model = _load_pretrained(cfg.pretrained)
        family = _FAMILY_OF[model.config.model_type]
        if family != cfg.family:
            raise ModelConfigError(
                f"model.backbone.family={cfg.family!r} but {cfg.pretrained} is a {family} model "
                f"(model_type {model.config.model_type!r}); set model.backbone.family={family}"
            )
        if cfg.num_layers is not None:
            _truncate(model, cfg.num_layers)
        return model
    from transformers import AutoConfig

    config = AutoConfig.for_model(**hf_config) if hf_config is not None else hf_config_from_fields(cfg)
    if cfg.num_layers is not None and config.text_config.num_hidden_layers > cfg.num_layers:
        config.text_config.num_hidden_layers = cfg.num_layers  # never allocate the dropped layers
    config._attn_implementation = "sdpa"
    model = _model_class(config.model_type)(config)
    install_patch_stem(model)
    return model


def _model_class(model_type: str) -> Any:
    import transformers

    classes = {
        "smolvlm": transformers.SmolVLMForConditionalGeneration,
        "idefics3": transformers.Idefics3ForConditionalGeneration,
        "paligemma": transformers.PaliGemmaForConditionalGeneration,
    }
    if model_type not in classes:
        raise ModelConfigError(
            f"model.backbone: unsupported transformers model_type {model_type!r}; supported: {sorted(classes)}"
        )
    return classes[model_type]


_FAMILY_OF = {"smolvlm": "smolvlm", "idefics3": "smolvlm", "paligemma": "paligemma"}


class Backbone(nn.Module):
    """The VLM parts the VLA uses. Build with `Backbone.create`."""

    def __init__(
        self,
        hf_model: Any,
        family: str,
        image_pooling: int = 1,
        *,
        image_resize: str = "default",
        embed_scale: bool = False,
        fixed_rope_theta: float | None = None,
    ) -> None:
        super().__init__()
        config = hf_model.config
        text_config = config.text_config
        inner = hf_model.model
        self.family = family
        if family == "smolvlm":
            self.vision: nn.Module = inner.vision_model
            self.projector: nn.Module = inner.connector
            language = inner.text_model
            patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
            tokens = patches // config.scale_factor**2
        else:
            self.vision = inner.vision_tower
            self.projector = inner.multi_modal_projector
            language = inner.language_model
            tokens = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
        self.embed_tokens: nn.Embedding = language.embed_tokens
        self.layers: nn.ModuleList = language.layers
        self.norm: nn.Module = language.norm
        self.rotary: nn.Module = language.rotary_emb
        tied = bool(getattr(config, "tie_word_embeddings", False) or text_config.tie_word_embeddings)
        lm_head = getattr(hf_model, "lm_head", None)
        self.lm_head: nn.Linear | None = None if tied or lm_head is None else lm_head

        self.image_size = int(config.vision_config.image_size)
        self.image_pooling = image_pooling
        self.image_resize = image_resize
        self.fixed_rope_theta = fixed_rope_theta
        grid = math.isqrt(tokens)
        if grid * grid != tokens or grid % image_pooling:
            raise ModelConfigError(
                f"model.backbone.image_pooling={image_pooling} must divide the image token grid ({grid}x{grid})"
            )
        self.tokens_per_image = tokens // image_pooling**2
        self.hidden_size = int(text_config.hidden_size)
        self.embed_multiplier = math.sqrt(self.hidden_size) if embed_scale else 1.0
        self.num_heads = int(text_config.num_attention_heads)
        self.num_kv_heads = int(text_config.num_key_value_heads)
        self.head_dim = int(getattr(text_config, "head_dim", None) or self.hidden_size // self.num_heads)
        self.vocab_size = int(text_config.vocab_size)
        self.mlp_activation = "gelu_tanh" if family == "paligemma" else "silu"
        self.rms_eps = float(text_config.rms_norm_eps)
        self.attention = "sdpa"  # or "math"; see attention.attend (a runtime choice, not saved)
        self.hf_config: dict[str, Any] = config.to_dict()
        self._check_layers()

    # ------------------------------------------------------------------ building

    @classmethod
    def create(cls, cfg: BackboneConfig, hf_config: dict[str, Any] | None = None) -> Backbone:
        """From pretrained weights (`cfg.pretrained`), a saved HF config dict, or our size fields."""
        backbone = cls(
            build_hf_model(cfg, hf_config),
            cfg.family,
            cfg.image_pooling,
            image_resize=cfg.image_resize,
            embed_scale=cfg.embed_scale,
            fixed_rope_theta=cfg.fixed_rope_theta,
        )
        if cfg.freeze_vision:
            backbone.vision.requires_grad_(False)
        if cfg.freeze_language:
            backbone.requires_grad_(False)
        if cfg.lora_rank > 0:
            backbone.add_lora(cfg)
        return backbone

    def add_lora(self, cfg: BackboneConfig) -> None:
        """LoRA adapters (peft) on the language layers' projections; every other backbone weight of the
        language model freezes (the vision tower follows `freeze_vision`)."""
        from peft import LoraConfig, inject_adapter_in_model

        if cfg.lora_rank < 0:
            raise ModelConfigError(f"model.backbone.lora_rank={cfg.lora_rank}: must be ≥ 0")
        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_targets),
        )
        try:
            inject_adapter_in_model(lora, self.layers)
        except ValueError as e:
            raise ModelConfigError(f"model.backbone.lora_targets={list(cfg.lora_targets)}: {e}") from None
        self.embed_tokens.requires_grad_(False)
        for name, param in self.layers.named_parameters():
            param.requires_grad_("lora_" in name)

    def _check_layers(self) -> None:
        layer = self.layers[0]
        for name in ("input_layernorm", "post_attention_layernorm", "mlp", "self_attn"):
            if not hasattr(layer, name):
                raise ModelConfigError(
                    f"backbone decoder layer {type(layer).__name__} has no {name}: unsupported"
                )
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not hasattr(layer.self_attn, name):
                raise ModelConfigError(f"backbone attention {type(layer.self_attn).__name__} has no {name}")

    # ------------------------------------------------------------------ embeddings

    def vision_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, H, W] in [0, 1] -> the vision tower's patch features [N, patches, Dv] (row-major
        patch grid of the image resized with padding to image_size)."""
        x = resize_with_pad(pixels, self.image_size, self.image_resize)  # [N, 3, S, S]
        dtype = next(self.vision.parameters()).dtype  # the text's, or float32 (model.keep_fp32)
        x = x.to(dtype) * 2.0 - 1.0  # SigLIP: mean 0.5, std 0.5
        return self._vision_features(x)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Patch features [N, patches, Dv] -> image tokens [N, tokens_per_image, hidden]."""
        tokens = self.projector(features)  # [N, T, D]
        if self.image_pooling > 1:
            n, t, d = tokens.shape
            grid = math.isqrt(t)
            tokens = tokens.transpose(1, 2).reshape(n, d, grid, grid)  # [N, D, g, g]
            tokens = F.avg_pool2d(tokens, self.image_pooling)  # [N, D, g/p, g/p]
            tokens = tokens.flatten(2).transpose(1, 2)  # [N, T/p², D]
        if self.embed_multiplier != 1.0:
            tokens = tokens * self.embed_multiplier
        return tokens

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, H, W] in [0, 1] -> tokens [N, tokens_per_image, hidden] in the text's dtype."""
        return self.project(self.vision_features(pixels)).to(self.embed_tokens.weight.dtype)

    def _vision_features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, S, S] in [-1, 1] -> [N, patches, Dv]."""
        if self.family != "smolvlm":
            return self.vision(pixel_values=x).last_hidden_state
        # SmolVLM's own forward supports ragged images through boolean-mask indexing, which syncs with the
        # host and cannot be captured in a CUDA graph. Our images are always full size, where its bucketed
        # position ids reduce to 0..P-1, so run its parts directly (same result, static shapes).
        vision: Any = self.vision
        patches = vision.embeddings.patch_embedding(x).flatten(2).transpose(1, 2)  # [N, P, Dv]
        hidden = patches + vision.embeddings.position_embedding.weight[: patches.shape[1]][None]
        hidden = vision.encoder(inputs_embeds=hidden).last_hidden_state
        return vision.post_layernorm(hidden)

    def embed_text(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, L] -> [B, L, hidden]."""
        tokens = self.embed_tokens(ids)
        return tokens * self.embed_multiplier if self.embed_multiplier != 1.0 else tokens

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden [..., D] -> logits [..., vocab]."""
        if self.lm_head is not None:
            return self.lm_head(hidden)
        return hidden @ self.embed_tokens.weight.t()

    def rope(self, reference: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [B, T] -> (cos, sin) each [B, T, head_dim] in reference's dtype."""
        if self.fixed_rope_theta is None:
            cos, sin = self.rotary(reference, positions)
            return cos, sin
        half = self.head_dim // 2
        exponent = (2.0 / self.head_dim) * torch.arange(half, dtype=torch.float32, device=positions.device)
        wavelength = self.fixed_rope_theta**exponent  # [hd/2]
        angle = positions[..., None].float() / wavelength  # [B, T, hd/2]
        angle = torch.cat([angle, angle], dim=-1)  # [B, T, hd]: rotate-half pairs i with i + hd/2
        return angle.cos().to(reference.dtype), angle.sin().to(reference.dtype)


PATCH_STEM_KEY = "vla_patch_stem"  # in the transformers vision config: the stem's width (absent: none)


class ConvPatchStem(nn.Module):
    """A convolutional patch stem in place of the single patch_size x patch_size convolution: log2(patch)
    3x3 stride-2 convolutions of `channels` channels with GELU between, then a 1x1 convolution to the
    vision width. Same output as the convolution it replaces: [N, width, S/patch, S/patch]."""

    def __init__(self, patch_size: int, channels: int, width: int) -> None:
        super().__init__()
        if channels < 1:
            raise ModelConfigError(f"model.backbone.patch_stem={channels}: must be ≥ 0")
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ModelConfigError(
                f"model.backbone.patch_stem needs a power-of-two patch_size (≥ 2); got {patch_size}"
            )
        layers: list[nn.Module] = []
        in_channels = 3
        for _ in range(patch_size.bit_length() - 1):
            layers += [nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.GELU()]
            in_channels = channels
        self.convs = nn.Sequential(*layers)
        self.project = nn.Conv2d(channels, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(x))


def _vision_embeddings(model: Any) -> Any:
    inner = model.model
    vision = inner.vision_model if hasattr(inner, "vision_model") else inner.vision_tower.vision_model
    return vision.embeddings


def install_patch_stem(model: Any) -> bool:
    """Swap a transformers VLM's patch embedding for a `ConvPatchStem` when its vision config asks for
    one (`vla_patch_stem`); True when it did."""
    vision_config = model.config.vision_config
    channels = int(getattr(vision_config, PATCH_STEM_KEY, 0) or 0)
    if channels == 0:
        return False
    embeddings = _vision_embeddings(model)
    old = embeddings.patch_embedding
    stem = ConvPatchStem(int(vision_config.patch_size), channels, int(vision_config.hidden_size))
    embeddings.patch_embedding = stem.to(device=old.weight.device, dtype=old.weight.dtype)
    return True


def resize_with_pad(pixels: torch.Tensor, size: int, mode: str = "default") -> torch.Tensor:
    """[N, 3, H, W] -> [N, 3, size, size]: keep the aspect ratio, pad the short side with 0.

    default: rounded size, antialiased when shrinking, padded bottom/right. smolvla / pi0 (as LeRobot
    resizes for those families): the size floored from the ratio of the longer side, plain bilinear,
    padded top/left (smolvla) or centred (pi0, which also clamps to [0, 1])."""
    h, w = pixels.shape[-2:]
    if h == size and w == size:
        return pixels
    if mode in ("smolvla", "pi0"):
        ratio = max(w / size, h / size)
        new_h, new_w = int(h / ratio), int(w / ratio)
        x = F.interpolate(pixels, size=(new_h, new_w), mode="bilinear", align_corners=False)
        pad_h, pad_w = size - new_h, size - new_w
        if mode == "smolvla":
            return F.pad(x, (pad_w, 0, pad_h, 0))
        top, left = pad_h // 2, pad_w // 2
        return F.pad(x.clamp(0.0, 1.0), (left, pad_w - left, top, pad_h - top))
    if mode != "default":
        raise ModelConfigError(f"model.backbone.image_resize={mode!r}: one of default, smolvla, pi0")
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    x = F.interpolate(pixels, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    return F.pad(x, (0, size - new_w, 0, size - new_h))


def _load_pretrained(source: str) -> Any:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as e:
        raise ModelConfigError(
            f"model.backbone.pretrained={source!r}: cannot read a transformers config there ({e}). "
            "Give a local directory written by save_pretrained, or a hub id already in the local cache."
        ) from e
    model = _model_class(config.model_type).from_pretrained(
        source, dtype=torch.float32, attn_implementation="sdpa"
    )
    if install_patch_stem(model):  # transformers dropped the stem's weights as unexpected: load them here
        _load_patch_stem(model, Path(source))
    return model


def _load_patch_stem(model: Any, directory: Path) -> None:
    from safetensors import safe_open

    marker = "embeddings.patch_embedding."
    stem = _vision_embeddings(model).patch_embedding
    wanted = set(stem.state_dict())
    found: dict[str, torch.Tensor] = {}
    for file in sorted(directory.glob("model*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                if marker in key and key.split(marker, 1)[1] in wanted:
                    found[key.split(marker, 1)[1]] = f.get_tensor(key)
    missing = wanted - set(found)
    if missing:
        raise ModelConfigError(
            f"model.backbone.pretrained={str(directory)!r}: its config asks for a convolutional patch stem "
            f"but the weights lack {sorted(missing)}"
        )
    stem.load_state_dict(found)


def _truncate(model: Any, num_layers: int) -> None:
    """Keep the first `num_layers` language layers of a loaded HF model."""
    inner = model.model
    language = inner.text_model if hasattr(inner, "text_model") else inner.language_model
    total = len(language.layers)
    if not 1 <= num_layers <= total:
        raise ModelConfigError(
            f"model.backbone.num_layers={num_layers} must be in [1, {total}] for this backbone"
        )
    language.layers = nn.ModuleList(list(language.layers)[:num_layers])
    model.config.text_config.num_hidden_layers = num_layers
