"""`VisionLanguageModel`: the transformers VLM a VLA wraps, trained here to answer questions about images.

    vlm = VisionLanguageModel(VLMConfig(), tokenizer)            # tiny SmolVLM-shaped, random weights
    out = vlm(batch)                                              # {"loss", "token_accuracy"} (next token)
    answers = vlm.generate(images, prompts)                       # greedy, with the key/value cache
    vlm.save_pretrained(d); VisionLanguageModel.from_pretrained(d)

The weights live in the transformers model itself (`SmolVLMForConditionalGeneration`,
`PaliGemmaForConditionalGeneration`, …) and the forward runs through the same `Backbone` adapter and
joint attention as the VLA: images + question form the prefix (bidirectional), the answer follows causally
(prefix-LM) and is scored by the LM head. The question is encoded exactly as the VLA encodes its
instruction (`[BOS] text`, left-padded), so what the VLM learns about "touch the red cube" is what the VLA
reads. `save_pretrained` writes a plain transformers directory (config.json, model.safetensors, tokenizer
files) that `vla-train model.backbone.pretrained=<dir>` loads like SmolVLM2 or PaliGemma weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vla.io import atomic_dir
from vla.model.attention import AttentionProbe, TokenLayout
from vla.model.backbone import Backbone, build_hf_model
from vla.model.batch import ModelInputs
from vla.model.config import BackboneConfig, ModelConfigError
from vla.model.lm import answer_loss, greedy_decode
from vla.model.prefix import embed_prefix
from vla.model.tokenizer import TextTokenizer
from vla.vlm.loc import LOC_PATTERN
from vla.vlm.tokenizer import text_tokenizer

VLM_CONFIG = "vlm_config.json"  # our extras next to transformers' config.json
PATCH_HEAD = "patch_head.safetensors"  # the training-only patch head (vlm.patch_loss_weight)


@dataclass
class VLMConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    max_prompt_tokens: int = (
        20  # question tokens, left-padded (the VLA pads its instruction to model.max_text_tokens)
    )
    max_answer_tokens: int = 16  # answer tokens + EOS
    loc_bins: int = 64  # location tokens <loc0000> .. <loc{bins-1}>
    loc_sigma: float = 0.0  # > 0: location targets are a Gaussian over neighbouring bins (sigma in bins)
    # Dense patch objective (sources with label maps, e.g. the SO-101 scenes): each patch of the vision
    # tower predicts how much of each object lies in it, through a linear head, weighted so.
    patch_loss_weight: float = 0.0
    patch_labels: int = 0  # objects the head predicts (set from the source's label_names)
    # From scratch only: "sincos" starts the vision tower's position embeddings as a 2-D sine-cosine code
    # and the location tokens' embeddings and LM-head rows as a 1-D one over their bins, so positions are
    # smooth and readable from the first step (still trained); "random": transformers' initialisation.
    position_init: str = "random"
    # Attention objective (sources that say which object a question names, e.g. the SO-101 scenes): the
    # last question token's first head in every layer after the first is pulled onto the named object's
    # image tokens (-log of its attention mass there), weighted so. It teaches the search by content
    # ("red" -> the red cube's tokens) that next-token loss alone reaches slowly at this size.
    attention_loss_weight: float = 0.0

    def validate(self) -> None:
        if self.position_init not in ("random", "sincos"):
            raise ModelConfigError(f"vlm.position_init={self.position_init!r}: choose random or sincos")
        if self.max_prompt_tokens < 2 or self.max_answer_tokens < 2:
            raise ModelConfigError("model.max_prompt_tokens and model.max_answer_tokens must be ≥ 2")
        if not 2 <= self.loc_bins <= 9999:
            raise ModelConfigError(f"model.loc_bins={self.loc_bins}: must be in 2..9999")


class VisionLanguageModel(nn.Module):
    def __init__(self, config: VLMConfig, tokenizer: Any, hf_model: Any | None = None) -> None:
        """tokenizer: a transformers fast tokenizer (vla.vlm.tokenizer); hf_model: an already built or loaded
        transformers VLM (default: built from `config.backbone`, pretrained weights when it names them)."""
        super().__init__()
        config.validate()
        cfg = config.backbone
        if hf_model is None:
            if not cfg.pretrained:
                cfg.vocab_size = max(cfg.vocab_size, _round_up(len(tokenizer), 64))
            hf_model = build_hf_model(cfg)
        vocab = int(hf_model.config.get_text_config().vocab_size)
        if len(tokenizer) > vocab:  # a pretrained VLM whose tokenizer gained the location tokens
            hf_model.resize_token_embeddings(_round_up(len(tokenizer), 64))
        fresh = not cfg.pretrained and config.position_init == "sincos"
        self.backbone = Backbone(
            hf_model,
            cfg.family,
            cfg.image_pooling,
            image_resize=cfg.image_resize,
            embed_scale=cfg.embed_scale,
            fixed_rope_theta=cfg.fixed_rope_theta,
        )
        self._hf = (hf_model,)  # a tuple: the same parameters, not registered twice
        self.config = config
        self.hf_tokenizer = tokenizer
        self.text = text_tokenizer(tokenizer, "vlm")
        if fresh:
            _sincos_init(self.backbone, location_ids(self.text))
        # Training only: not part of the transformers model, saved beside it (patch_head.safetensors).
        self.patch_head = (
            nn.Linear(_vision_width(hf_model), config.patch_labels) if config.patch_labels > 0 else None
        )

    @property
    def hf_model(self) -> Any:
        return self._hf[0]

    @property
    def device(self) -> torch.device:
        return self.backbone.embed_tokens.weight.device

    # ------------------------------------------------------------------ training and inference

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Next-token loss on the answers: {"loss", "token_accuracy"}."""
        cfg = self.config
        out = question_answer_loss(
            self.backbone,
            self.text,
            batch,
            cfg.max_prompt_tokens,
            cfg.max_answer_tokens,
            cfg.loc_sigma,
            cfg.attention_loss_weight,
        )
        if self.patch_head is not None and cfg.patch_loss_weight > 0 and "labels" in batch:
            patch = self.patch_loss(batch["images"], batch["labels"])
            out = {**out, "loss": out["loss"] + cfg.patch_loss_weight * patch, "patch_loss": patch.detach()}
        return out

    def patch_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """images [U, N, 3, S, S], labels [U, N, S, S] uint8 -> BCE of each vision patch's share of each
        object's pixels (a soft target: a cube half in a patch is 0.5 there)."""
        import torch.nn.functional as F

        assert self.patch_head is not None
        features = self.backbone.vision_features(images.to(self.device).flatten(0, 1))  # [U*N, P, Dv]
        grid = math.isqrt(features.shape[1])
        target = patch_targets(labels.to(self.device).flatten(0, 1), grid, self.config.patch_labels)
        return F.binary_cross_entropy_with_logits(self.patch_head(features).float(), target)

    @torch.no_grad()
    def generate(
        self,
        images: torch.Tensor,
        prompts: list[str],
        image_index: torch.Tensor | None = None,
        max_tokens: int | None = None,
    ) -> list[str]:
        """Greedy answers, decoded to text (location tokens of a slot joined without spaces, as the data
        writes them). images [U, N, 3, H, W], image_index [B] as in `question_prefix`."""
        prefix, layout = question_prefix(
            self.backbone, self.text, images, prompts, self.config.max_prompt_tokens, image_index
        )
        ids = greedy_decode(
            self.backbone, prefix, layout, max_tokens or self.config.max_answer_tokens, self.text.eos_id
        )
        return [self.decode(row) for row in ids.cpu().tolist()]

    def decode(self, ids: list[int]) -> str:
        """Token ids up to the first EOS -> answer text: words as the tokenizer decodes them, location tokens
        of one slot joined without spaces."""
        parts: list[str] = []
        run: list[int] = []
        loc_last = False

        def flush() -> None:
            text = self.hf_tokenizer.decode(run, skip_special_tokens=True).strip()
            if text:
                parts.append(text)
            run.clear()

        for i in ids:
            if i == self.text.eos_id:
                break
            token = self.text.tokenizer.id_to_token(i) or ""
            if LOC_PATTERN.fullmatch(token):
                flush()
                if loc_last and run == [] and parts:
                    parts[-1] += token
                else:
                    parts.append(token)
                loc_last = True
            else:
                run.append(i)
                loc_last = False
        flush()
        return " ".join(parts)

    # ------------------------------------------------------------------ files

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write a transformers directory (config.json, model.safetensors, tokenizer) atomically."""
        target = Path(directory).absolute()
        target.parent.mkdir(parents=True, exist_ok=True)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar inside our own progress bar
        with atomic_dir(target) as tmp:  # an existing model there is replaced whole
            self.hf_model.save_pretrained(tmp, safe_serialization=True)
            self.hf_tokenizer.save_pretrained(tmp)
            if self.patch_head is not None:
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in self.patch_head.state_dict().items()},
                    str(tmp / PATCH_HEAD),
                )
            config = _plain(asdict(self.config))
            config["backbone"]["pretrained"] = (
                None  # the weights are this directory's (from_pretrained sets it)
            )
            meta = {"format": "vla-vlm", "version": 1, "config": config}
            (tmp / VLM_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        return target

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu"
    ) -> VisionLanguageModel:
        """A directory written by save_pretrained (safetensors and JSON only)."""
        from transformers import AutoTokenizer

        path = Path(directory)
        meta_file = path / VLM_CONFIG
        if not meta_file.is_file():
            raise ModelConfigError(f"{path}: not a VLM written by vla-pretrain (no {VLM_CONFIG})")
        meta = json.loads(meta_file.read_text())
        data = dict(meta["config"])
        backbone = BackboneConfig(**data.pop("backbone"))
        backbone.pretrained = str(path)
        backbone.num_layers = None  # the saved model already has only the kept layers
        config = VLMConfig(backbone=backbone, **data)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = cls(config, tokenizer, build_hf_model(backbone))
        if model.patch_head is not None and (path / PATCH_HEAD).is_file():
            model.patch_head.load_state_dict(load_file(str(path / PATCH_HEAD)))
        return model.to(device)


def patch_targets(labels: torch.Tensor, grid: int, k: int) -> torch.Tensor:
    """labels [M, S, S] (0 none, 1..k objects) -> [M, grid*grid, k]: the share of each cell's pixels that
    belong to each object; cell t is (t // grid, t % grid), the vision tower's row-major patch order."""
    import torch.nn.functional as F

    onehot = F.one_hot(labels.long(), k + 1)[..., 1:]  # [M, S, S, K]
    cells = F.adaptive_avg_pool2d(onehot.permute(0, 3, 1, 2).float(), grid)  # [M, K, g, g]
    return cells.flatten(2).transpose(1, 2)  # [M, T, K]


def _sincos(positions: torch.Tensor, count: int, dims: int) -> torch.Tensor:
    """positions [N] in 0..count-1 -> [N, dims] sine-cosine code (dims even): angles on a half circle at
    frequencies from 1 to count/2 (geometric), so that near positions have near codes and far ones differ."""
    theta = (positions.double() + 0.5) / count * math.pi  # [N] in (0, pi)
    freqs = torch.logspace(0, math.log10(max(1.0, count / 2)), dims // 2, dtype=torch.float64)
    angles = theta[:, None] * freqs[None]  # [N, dims/2]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


@torch.no_grad()
def _sincos_init(backbone: Backbone, loc_ids: torch.Tensor) -> None:
    """Position embeddings of the vision tower <- a 2-D code (y in the first half of the dims, x in the
    second) scaled to the patch embeddings' spread; location tokens' embeddings and LM-head rows <- a 1-D
    code of their bin, scaled to the other rows' spread."""
    embeddings = getattr(backbone.vision, "embeddings", None)
    table = getattr(getattr(embeddings, "position_embedding", None), "weight", None)
    if table is not None:
        patches, width = table.shape
        grid = math.isqrt(patches)
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        half = width // 2 - (width // 2) % 2
        code = torch.zeros((patches, width))
        code[:, :half] = _sincos(ys.flatten(), grid, half)
        code[:, half : 2 * half] = _sincos(xs.flatten(), grid, half)
        table.copy_(code * (_patch_spread(embeddings.patch_embedding) / float(code.std())))  # type: ignore[union-attr]
    if len(loc_ids):
        width = backbone.embed_tokens.weight.shape[1]
        code = _sincos(torch.arange(len(loc_ids)), len(loc_ids), width - width % 2)
        rows = backbone.embed_tokens.weight
        rows[loc_ids, : code.shape[1]] = code * (float(rows.std()) / float(code.std()))
        if backbone.lm_head is not None:
            head = backbone.lm_head.weight
            head[loc_ids, : code.shape[1]] = code * (float(head.std()) / float(code.std()))


def _patch_spread(patch_embedding: nn.Module) -> float:
    """The spread of a patch embedding's outputs over images in [-1, 1]: from the weights for the plain
    convolution (std(w) * sqrt(fan_in / 3)), measured on fixed noise for a convolutional stem."""
    weight = getattr(patch_embedding, "weight", None)
    if isinstance(weight, torch.Tensor):
        return float(weight.std()) * math.sqrt(weight[0].numel() / 3)
    size = 64
    noise = torch.rand((4, 3, size, size), generator=torch.Generator().manual_seed(0)) * 2 - 1
    param = next(patch_embedding.parameters())
    return float(patch_embedding(noise.to(param.device, param.dtype)).std())


def _vision_width(hf_model: Any) -> int:
    return int(hf_model.config.vision_config.hidden_size)


def question_prefix(
    backbone: Backbone,
    text: TextTokenizer,
    images: torch.Tensor,
    prompts: list[str],
    max_prompt_tokens: int,
    image_index: torch.Tensor | None = None,
) -> tuple[torch.Tensor, TokenLayout]:
    """images [U, N, 3, H, W] in [0, 1] + B questions -> prefix hidden [B, P, D] and its layout, the
    question encoded as the VLA encodes an instruction. image_index [B] picks each question's images
    (default: U == B, one each); shared images are encoded once."""
    device = backbone.embed_tokens.weight.device
    ids, valid = text.encode_prompts(prompts, None, max_prompt_tokens)
    b = len(prompts)
    u, n = images.shape[:2]
    tokens = backbone.embed_images(images.to(device).flatten(0, 1))  # [U*N, T, D]
    tokens = tokens.reshape(u, n * tokens.shape[1], -1)  # [U, N*T, D]
    if image_index is not None:
        tokens = tokens[image_index.to(device)]  # [B, N*T, D]
    elif u != b:
        raise ValueError(f"{u} image sets for {b} questions: give image_index")
    inputs = ModelInputs(
        images.new_zeros((b, 0, 3, 1, 1)),
        ids.to(device),
        valid.to(device),
        torch.zeros((b, 1), device=device),
        torch.zeros((b, 1), dtype=torch.bool, device=device),
    )
    return embed_prefix(backbone, None, inputs, image_tokens=tokens)


def answer_ids(
    text: TextTokenizer, answers: list[str], limit: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> ids [B, L] (answer tokens + EOS, right-padded with EOS, cut to `limit`) and valid [B, L]."""
    eos = text.eos_id
    rows = [[*text.tokenizer.encode(a, add_special_tokens=False).ids[: limit - 1], eos] for a in answers]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), eos, dtype=torch.long)
    valid = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        valid[i, : len(r)] = True
    return ids.to(device), valid.to(device)


def question_answer_loss(
    backbone: Backbone,
    text: TextTokenizer,
    batch: dict[str, Any],
    max_prompt_tokens: int,
    max_answer_tokens: int,
    loc_sigma: float = 0.0,
    attention_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The prefix-LM loss of a VLM batch ({"images", "prompt", "answer"}): what pretraining minimises and
    what co-training in vla-train adds to the action loss. loc_sigma > 0: location targets are smoothed
    over neighbouring bins (vla.model.lm.answer_loss)."""
    prefix, layout = question_prefix(
        backbone, text, batch["images"], list(batch["prompt"]), max_prompt_tokens, batch.get("image_index")
    )
    ids, valid = answer_ids(text, list(batch["answer"]), max_answer_tokens, prefix.device)
    ordinal = location_ids(text) if loc_sigma > 0 else None
    focus = attention_weight > 0 and "focus_label" in batch and bool((batch["focus_label"] > 0).any())
    probe = None
    if focus:
        last = torch.full((len(batch["prompt"]),), prefix.shape[1] - 1, device=prefix.device)
        probe = AttentionProbe(last, [])
    loss, accuracy = answer_loss(backbone, prefix, layout, ids, valid, ordinal, loc_sigma, probe)
    out = {"loss": loss, "token_accuracy": accuracy}
    if probe is not None:
        attention = focus_loss(backbone, probe.maps, batch)
        out = {**out, "loss": loss + attention_weight * attention, "attention_loss": attention.detach()}
    return out


def focus_loss(backbone: Backbone, maps: list[torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    """-log(attention mass on the named object's image tokens) of head 0 in layers 1.., over the questions
    that name an object present in the images they point to."""
    import torch.nn.functional as F

    labels = batch["labels"][batch["image_index"]]  # [B, N, S, S]
    b, n = labels.shape[:2]
    grid = math.isqrt(backbone.tokens_per_image)
    device = maps[0].device
    wanted = (
        labels.to(device) == batch["focus_label"].to(device)[:, None, None, None]
    ).float()  # [B, N, S, S]
    cells = F.adaptive_max_pool2d(wanted.flatten(0, 1)[:, None], grid).view(b, n, -1)  # [B, N, T]
    cells = cells * batch["focus_images"].to(device)[:, :, None]  # only the images the question is about
    target = cells.flatten(1)  # [B, N*T]: image tokens come first in the prefix
    has = (batch["focus_label"].to(device) > 0) & (target.sum(1) > 0)
    if not bool(has.any()):
        return maps[0].sum() * 0.0
    terms = []
    for layer_map in maps[1:]:
        mass = (layer_map[:, 0, : target.shape[1]] * target).sum(-1)  # [B]
        terms.append(-torch.log(mass[has] + 1e-6))
    return torch.cat(terms).mean()


def location_ids(text: TextTokenizer) -> torch.Tensor:
    """Ids of the tokenizer's location tokens, in bin order."""
    vocab = text.tokenizer.get_vocab()
    found = sorted((int(m.group(1)), i) for t, i in vocab.items() if (m := LOC_PATTERN.fullmatch(t)))
    return torch.tensor([i for _, i in found], dtype=torch.long)


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
