"""Model configuration: plain dataclasses (hydra structured-config friendly) for the VLA model.

`VLAConfig` is what `configs/model/*.yaml` fill in and what a checkpoint's `config.json` holds. Only plain
types (int, float, str, bool, lists, None) so OmegaConf can validate overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla.errors import VLAError

FAMILIES = ("smolvlm", "paligemma")
STATE_MODES = ("continuous", "discrete")
HEADS = ("flow", "fast")
NORMALIZATIONS = ("mean_std", "quantile")
IMAGE_RESIZES = ("default", "smolvla", "pi0")
PROMPT_FORMATS = ("bos_task", "task_newline", "pi05")
MISSING_CAMERAS = ("error", "mask")
STATE_TOKENS = ("prefix", "expert")


class ModelConfigError(VLAError, ValueError):
    """A model config value that cannot work; the message names the field and the fix."""


@dataclass
class BackboneConfig:
    """The vision-language backbone. Sizes are used when building from config (random weights)."""

    family: str = "smolvlm"  # smolvlm (SmolVLM / SmolVLM2 / Idefics3) | paligemma
    pretrained: str | None = None  # local directory or hub id; its own sizes then win over the fields below
    num_layers: int | None = None  # keep only the first N language layers (SmolVLA keeps 16 of 32)
    freeze_vision: bool = False
    freeze_language: bool = False  # train the action expert (and projections) only
    # LoRA adapters (peft) on the language layers: their base weights freeze, the adapters train.
    lora_rank: int = 0  # 0: off
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # Language model (Llama for smolvlm, Gemma for paligemma).
    hidden_size: int = 64
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int | None = None  # default hidden_size // heads
    intermediate_size: int = 128
    vocab_size: int = 2048
    rope_theta: float = 10000.0
    max_position_embeddings: int = 8192
    # Vision encoder (SigLIP).
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate_size: int = 128
    patch_size: int = 8
    # 0: the family's own patch embedding (one patch_size x patch_size convolution); c > 0: a convolutional
    # stem instead (Xiao et al. 2021, "Early convolutions help transformers see better"): log2(patch_size)
    # 3x3 stride-2 convolutions with c channels, GELU between, then a 1x1 convolution to the vision width.
    # Saved in the transformers config (vision_config.vla_patch_stem), so checkpoints rebuild it.
    patch_stem: int = 0
    image_size: int = 64  # the backbone's square input resolution
    pixel_shuffle: int = 2  # smolvlm connector's scale factor (tokens / factor**2)
    image_pooling: int = 1  # extra average pooling of the image-token grid (any family)
    # How a camera image becomes the square input (backbone.resize_with_pad): default (rounded size,
    # antialiased when shrinking, padded bottom/right) | smolvla (floor size, no antialias, padded
    # top/left) | pi0 (floor size, no antialias, centred pad). The imports pick their family's.
    image_resize: str = "default"
    embed_scale: bool = False  # image and text embeddings times sqrt(hidden_size) (SmolVLA)
    # RoPE in the VLA's attention at this fixed θ, whatever the backbone's config says (SmolVLA uses
    # 1e4 on SmolVLM2, whose own config says 1e5); null: the backbone's own rotary embedding.
    fixed_rope_theta: float | None = None


@dataclass
class ExpertConfig:
    """The action expert: a narrower transformer paired layer by layer with the backbone."""

    width_ratio: float = 0.75  # expert width = ratio * backbone hidden size (π0 uses 0.5, SmolVLA 0.75)
    width: int | None = None  # explicit width; overrides width_ratio
    layers: int | None = None  # default: the backbone's (kept) layer count; must match it
    intermediate_size: int | None = None  # default: 8/3 * width rounded up to a multiple of 256 (SmolVLA)
    adarms: bool = False  # π0.5 adaptive RMSNorm time conditioning instead of the action-time MLP
    # Layers whose index is a multiple of this attend jointly with the backbone (self-attention over
    # prefix + actions); the others cross-attend: queries from the expert, keys/values the prefix's
    # (post-RoPE keys, values) through the expert's own k/v projections, query positions from 0.
    # 1: every layer joint (π0); 2: SmolVLA; 0: every layer cross-attends.
    self_attn_every: int = 1
    llama_norm: bool = False  # RMSNorm weights multiply directly (x·w, Llama/SmolVLA), not x·(1+w) (Gemma)


@dataclass
class VLAConfig:
    """The whole model. `action_dim` / `state_dim` are resolved from the dataset stats when given."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)
    cameras: list[str] = field(default_factory=lambda: ["top", "wrist"])
    image_size: list[int] | None = field(default_factory=lambda: [96, 96])  # expected input [H, W]; None: any
    max_state_dim: int = 32
    max_action_dim: int = 32
    state_dim: int | None = None  # the dataset's state width (None: max_state_dim)
    action_dim: int | None = None  # the dataset's action width (None: max_action_dim)
    chunk_size: int = 50
    num_steps: int = 10
    max_text_tokens: int = 32
    state_mode: str = "continuous"  # continuous (projected token) | discrete (256 bins in the text)
    state_bins: int = 256
    # Where the continuous state token runs: prefix (the backbone's stream, at its width, block after the
    # images and text) | expert (π0: the action expert's stream at the expert's width, its own block after
    # the prefix; it does not depend on the flow time, so its keys/values are cached per observation).
    state_token: str = "prefix"
    # Under a cast to bf16/fp16 (`model.to(dtype)`), keep the vision tower, projector, every RMSNorm and
    # the state/action/time projections in float32, casting at their boundaries (as LeRobot's π0 / π0.5
    # run in bf16). The imports set it; paligemma backbones only (their norms compute in float32).
    keep_fp32: bool = False
    head: str = "flow"  # flow | fast
    normalization: str = "mean_std"  # mean_std | quantile
    time_beta_alpha: float = 1.5
    time_beta_beta: float = 1.0
    time_min: float = 0.001
    time_min_period: float = 4e-3
    time_max_period: float = 4.0
    # Training-time real-time chunking: each sample conditions on its first d ~ U{0..rtc_max_delay}
    # ground-truth actions (clean, time 0, no loss), so at inference the chunk continues the actions
    # already committed (the runner's `rtc`) by conditioning instead of guidance. 0: off.
    rtc_max_delay: int = 0
    # Flow draws per observation in training: the prefix is encoded once and its keys/values serve
    # `flow_samples` (noise, time) draws of the action chunk (Octo's repeated diffusion steps). The
    # backbone is most of a step's compute, so more draws cost little and lower the loss's variance.
    flow_samples: int = 1
    causal_actions: bool = False  # action tokens attend causally among themselves (SmolVLA), not all-to-all
    # Prompt text: bos_task ([BOS] + task, underscores as spaces; with a discrete state, its bins) |
    # task_newline (task + "\n" with the tokenizer's own special tokens, as LeRobot builds π0's and
    # SmolVLA's prompts) | pi05 ("Task: …, State: …;\nAction: " with np.digitize bins, as LeRobot's π0.5).
    prompt_format: str = "bos_task"
    # A configured camera absent from a batch / robot: error | mask (its tokens masked out, a warning
    # once; as LeRobot feeds missing cameras). At least one camera must be there.
    missing_cameras: str = "error"
    fast_vocab_size: int = 1024
    fast_scale: float = 10.0
    fast_max_tokens: int = 256

    # ------------------------------------------------------------------ helpers

    def validate(self) -> None:
        """Raise ModelConfigError naming the bad field."""
        b = self.backbone
        checks: list[tuple[bool, str, str, Any]] = [
            (b.family in FAMILIES, "backbone.family", f"one of {FAMILIES}", b.family),
            (self.state_mode in STATE_MODES, "state_mode", f"one of {STATE_MODES}", self.state_mode),
            (self.head in HEADS, "head", f"one of {HEADS}", self.head),
            (
                self.normalization in NORMALIZATIONS,
                "normalization",
                f"one of {NORMALIZATIONS}",
                self.normalization,
            ),
            (
                b.image_resize in IMAGE_RESIZES,
                "backbone.image_resize",
                f"one of {IMAGE_RESIZES}",
                b.image_resize,
            ),
            (
                b.fixed_rope_theta is None or b.fixed_rope_theta > 0,
                "backbone.fixed_rope_theta",
                "> 0 or null",
                b.fixed_rope_theta,
            ),
            (
                self.prompt_format in PROMPT_FORMATS,
                "prompt_format",
                f"one of {PROMPT_FORMATS}",
                self.prompt_format,
            ),
            (
                self.prompt_format == "bos_task"
                or (self.prompt_format == "pi05") == (self.state_mode == "discrete"),
                "prompt_format",
                "pi05 or bos_task with state_mode=discrete, task_newline or bos_task with continuous",
                self.prompt_format,
            ),
            (
                self.missing_cameras in MISSING_CAMERAS,
                "missing_cameras",
                f"one of {MISSING_CAMERAS}",
                self.missing_cameras,
            ),
            (self.state_token in STATE_TOKENS, "state_token", f"one of {STATE_TOKENS}", self.state_token),
            (
                self.state_token == "prefix"
                or (
                    self.state_mode == "continuous"
                    and self.head == "flow"
                    and not self.expert.adarms
                    and self.expert.self_attn_every == 1
                ),
                "state_token",
                "prefix unless state_mode=continuous, head=flow, expert.adarms=false, expert.self_attn_every=1",
                self.state_token,
            ),
            (
                not self.keep_fp32 or b.family == "paligemma",
                "keep_fp32",
                "false unless backbone.family=paligemma",
                self.keep_fp32,
            ),
            (self.expert.self_attn_every >= 0, "expert.self_attn_every", ">= 0", self.expert.self_attn_every),
            (
                not (self.expert.llama_norm and self.expert.adarms),
                "expert.llama_norm",
                "false with expert.adarms (adaptive norms carry their own scale)",
                self.expert.llama_norm,
            ),
            (1 <= len(self.cameras) <= 3, "cameras", "1 to 3 camera names", self.cameras),
            (len(set(self.cameras)) == len(self.cameras), "cameras", "distinct names", self.cameras),
            (self.chunk_size >= 1, "chunk_size", ">= 1", self.chunk_size),
            (self.num_steps >= 1, "num_steps", ">= 1", self.num_steps),
            (
                0 <= self.rtc_max_delay < self.chunk_size,
                "rtc_max_delay",
                f"in 0..chunk_size-1 ({self.chunk_size - 1})",
                self.rtc_max_delay,
            ),
            (
                self.rtc_max_delay == 0 or (self.head == "flow" and not self.expert.adarms),
                "rtc_max_delay",
                "0 unless head=flow without expert.adarms (it needs per-action time)",
                self.rtc_max_delay,
            ),
            (self.flow_samples >= 1, "flow_samples", ">= 1", self.flow_samples),
            (self.max_text_tokens >= 2, "max_text_tokens", ">= 2", self.max_text_tokens),
            (self.max_state_dim >= 1, "max_state_dim", ">= 1", self.max_state_dim),
            (self.max_action_dim >= 1, "max_action_dim", ">= 1", self.max_action_dim),
            (self.state_bins >= 2, "state_bins", ">= 2", self.state_bins),
            (0.0 < self.time_min < 1.0, "time_min", "in (0, 1)", self.time_min),
            (
                self.time_beta_alpha > 0 and self.time_beta_beta > 0,
                "time_beta_alpha/time_beta_beta",
                "> 0",
                (self.time_beta_alpha, self.time_beta_beta),
            ),
            (
                0.0 < self.expert.width_ratio <= 1.0,
                "expert.width_ratio",
                "in (0, 1]",
                self.expert.width_ratio,
            ),
            (
                b.image_size % b.patch_size == 0,
                "backbone.image_size",
                "a multiple of patch_size",
                b.image_size,
            ),
        ]
        if self.image_size is not None:
            checks.append(
                (len(self.image_size) == 2, "image_size", "[height, width] or null", self.image_size)
            )
        if self.state_dim is not None:
            checks.append(
                (
                    1 <= self.state_dim <= self.max_state_dim,
                    "state_dim",
                    f"in [1, max_state_dim={self.max_state_dim}]",
                    self.state_dim,
                )
            )
        if self.action_dim is not None:
            checks.append(
                (
                    1 <= self.action_dim <= self.max_action_dim,
                    "action_dim",
                    f"in [1, max_action_dim={self.max_action_dim}]",
                    self.action_dim,
                )
            )
        for ok, name, want, got in checks:
            if not ok:
                raise ModelConfigError(f"model.{name} must be {want}, got {got!r}")

    @property
    def resolved_action_dim(self) -> int:
        return self.action_dim if self.action_dim is not None else self.max_action_dim

    @property
    def resolved_state_dim(self) -> int:
        return self.state_dim if self.state_dim is not None else self.max_state_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLAConfig:
        """Strict: an unknown key is an error naming it (a config from another version, or a typo)."""
        data = dict(data)
        backbone = _strict(BackboneConfig, data.pop("backbone", {}) or {}, "backbone.")
        expert = _strict(ExpertConfig, data.pop("expert", {}) or {}, "expert.")
        config = _strict(cls, data, "")
        config.backbone, config.expert = backbone, expert
        config.validate()
        return config


def _strict(kind: Any, data: dict[str, Any], prefix: str) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ModelConfigError(f"unknown model config field(s) {[prefix + u for u in unknown]}")
    return kind(**data)


def coerce_config(config: Any) -> VLAConfig:
    """Accept a VLAConfig, a dict, or an OmegaConf DictConfig (hydra) and return a validated VLAConfig."""
    if isinstance(config, VLAConfig):
        config.validate()
        return config
    if not isinstance(config, dict):
        try:
            from omegaconf import OmegaConf

            config = OmegaConf.to_container(config, resolve=True)
        except Exception as e:  # not an OmegaConf object either
            raise ModelConfigError(
                f"model config must be a VLAConfig or a mapping, got {type(config)}"
            ) from e
    assert isinstance(config, dict)
    config = {k: v for k, v in config.items() if k != "_target_"}
    return VLAConfig.from_dict(config)


def expert_intermediate_size(width: int) -> int:
    """SmolVLA's rule for the expert MLP: 8/3 * width, rounded up to a multiple of 256."""
    hidden = int(2 * (4 * width) / 3)
    return 256 * ((hidden + 255) // 256)


def _defaults_then_self(path: Path, load: Any, merge: Any) -> Any:
    """A model YAML composed as hydra composes it: the configs its `defaults` list names (in the same
    directory; `_self_` marks where its own keys go, last when absent) merged in order."""
    node = load(path)
    defaults = node.pop("defaults", None) or []
    parts = []
    for entry in [*defaults, *([] if "_self_" in defaults else ["_self_"])]:
        parts.append(
            node if entry == "_self_" else _defaults_then_self(path.parent / f"{entry}.yaml", load, merge)
        )
    return merge(*parts)


def _merge_dicts(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge_dicts(out[key], value)
            else:
                out[key] = value
    return out


def load_config(name_or_path: str, overrides: list[str] | None = None) -> VLAConfig:
    """A model config by name (`tiny`, `smolvla`, `pi0`, `fast` from configs/model/) or YAML path, with
    optional dotlist overrides (`["backbone.num_layers=8"]`). Checked against the dataclass schema."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(__file__).resolve().parents[2] / "configs" / "model" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ModelConfigError(f"model config {name_or_path!r}: no such file {path}")
    try:
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException
    except ImportError:  # a bare GPU box: plain YAML, still strict about keys (no dotlist overrides)
        import yaml

        if overrides:
            raise ModelConfigError("model config overrides need omegaconf") from None
        return VLAConfig.from_dict(
            _defaults_then_self(path, lambda p: yaml.safe_load(p.read_text()), _merge_dicts)
        )
    try:
        own = _defaults_then_self(path, OmegaConf.load, OmegaConf.merge)
        merged = OmegaConf.merge(OmegaConf.structured(VLAConfig), own)
        if overrides:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        reason = str(e).splitlines()[0]
        raise ModelConfigError(f"model.{key}: {reason} ({path})" if key else f"{path}: {reason}") from e
    return coerce_config(merged)
