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
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla.model.attention import TokenLayout
from vla.model.backbone import Backbone, build_hf_model
from vla.model.batch import ModelInputs
from vla.model.config import BackboneConfig, ModelConfigError
from vla.model.lm import answer_loss, greedy_decode
from vla.model.prefix import embed_prefix
from vla.model.tokenizer import TextTokenizer
from vla.vlm.loc import LOC_PATTERN
from vla.vlm.tokenizer import text_tokenizer

VLM_CONFIG = "vlm_config.json"  # our extras next to transformers' config.json


@dataclass
class VLMConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    max_prompt_tokens: int = (
        20  # question tokens, left-padded (the VLA pads its instruction to model.max_text_tokens)
    )
    max_answer_tokens: int = 12  # answer tokens + EOS
    loc_bins: int = 64  # location tokens <loc0000> .. <loc{bins-1}>

    def validate(self) -> None:
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
        self.backbone = Backbone(hf_model, cfg.family, cfg.image_pooling)
        self._hf = (hf_model,)  # a tuple: the same parameters, not registered twice
        self.config = config
        self.hf_tokenizer = tokenizer
        self.text = text_tokenizer(tokenizer, "vlm")

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
        return question_answer_loss(
            self.backbone, self.text, batch, cfg.max_prompt_tokens, cfg.max_answer_tokens
        )

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
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Writing model shards" bar inside our own progress bar
        try:
            self.hf_model.save_pretrained(tmp, safe_serialization=True)
            self.hf_tokenizer.save_pretrained(tmp)
            meta = {"format": "vla-vlm", "version": 1, "config": _plain(asdict(self.config))}
            (tmp / VLM_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
            if target.exists():
                old = target.with_name(f".{target.name}.old-{tempfile.gettempprefix()}")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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
        return cls(config, tokenizer, build_hf_model(backbone)).to(device)


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
) -> dict[str, torch.Tensor]:
    """The prefix-LM loss of a VLM batch ({"images", "prompt", "answer"}): what pretraining minimises and
    what co-training in vla-train adds to the action loss."""
    prefix, layout = question_prefix(
        backbone, text, batch["images"], list(batch["prompt"]), max_prompt_tokens, batch.get("image_index")
    )
    ids, valid = answer_ids(text, list(batch["answer"]), max_answer_tokens, prefix.device)
    loss, accuracy = answer_loss(backbone, prefix, layout, ids, valid)
    return {"loss": loss, "token_accuracy": accuracy}


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
