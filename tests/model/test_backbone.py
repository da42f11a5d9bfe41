"""The backbone adapter: both families from config, image tokens, pretrained loading with truncation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla.model import VLAModel
from vla.model.backbone import Backbone, hf_config_from_fields, resize_with_pad
from vla.model.config import ModelConfigError

from .helpers import TASKS, small_config, toy_batch, toy_stats


@pytest.mark.parametrize("family", ["smolvlm", "paligemma"])
def test_both_families_build_from_config_and_embed_images(family: str) -> None:
    cfg = small_config(f"backbone.family={family}").backbone
    backbone = Backbone.create(cfg)
    # smolvlm: (32/8)^2 = 16 patches, pixel shuffle 2 -> 4 tokens; paligemma: 16 patches, no shuffle
    expected = 4 if family == "smolvlm" else 16
    assert backbone.tokens_per_image == expected
    tokens = backbone.embed_images(torch.rand(3, 3, 48, 60))
    assert tokens.shape == (3, expected, cfg.hidden_size)
    assert backbone.embed_text(torch.tensor([[1, 2, 3]])).shape == (1, 3, cfg.hidden_size)
    assert len(backbone.layers) == cfg.layers
    tied = family == "paligemma"
    assert (backbone.lm_head is None) == tied
    assert backbone.logits(torch.zeros(1, cfg.hidden_size)).shape == (1, cfg.vocab_size)


def test_image_pooling_reduces_tokens() -> None:
    cfg = small_config("backbone.family=paligemma", "backbone.image_pooling=2").backbone
    backbone = Backbone.create(cfg)
    assert backbone.tokens_per_image == 4
    assert backbone.embed_images(torch.rand(1, 3, 32, 32)).shape == (1, 4, cfg.hidden_size)
    with pytest.raises(ModelConfigError, match="image_pooling"):
        Backbone.create(small_config("backbone.family=paligemma", "backbone.image_pooling=3").backbone)


def test_resize_with_pad_keeps_the_aspect_ratio() -> None:
    img = torch.ones(1, 3, 30, 60)
    out = resize_with_pad(img, 32)
    assert out.shape == (1, 3, 32, 32)
    assert out[0, :, :16].min() > 0.99 and out[0, :, 17:].abs().max() == 0  # bottom half is padding


def _save_hf_backbone(family: str, directory: Path, layers: int = 3) -> None:
    """A backbone as a user would have it on disk: `save_pretrained` of the HF model plus its tokenizer."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    cfg = small_config(f"backbone.family={family}", f"backbone.layers={layers}").backbone
    hf_config = hf_config_from_fields(cfg)
    cls = (
        transformers.SmolVLMForConditionalGeneration
        if family == "smolvlm"
        else transformers.PaliGemmaForConditionalGeneration
    )
    torch.manual_seed(0)
    cls(hf_config).save_pretrained(directory)
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3} | {
        w: i + 4 for i, w in enumerate(["pick", "up", "the", "red", "cube", "push", "button"])
    }
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    fast.save_pretrained(directory)


@pytest.mark.parametrize("family", ["smolvlm", "paligemma"])
def test_pretrained_backbone_loads_from_a_local_dir_truncated(family: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    _save_hf_backbone(family, tmp_path / "vlm")
    cfg = small_config(
        f"backbone.family={family}",
        f"backbone.pretrained={tmp_path / 'vlm'}",
        "backbone.num_layers=2",
        "backbone.hidden_size=999",  # ignored: the pretrained config wins
    )
    model = VLAModel(cfg, stats=toy_stats()).eval()
    assert len(model.backbone.layers) == 2 and model.config.backbone.layers == 2
    assert model.config.backbone.hidden_size == 64
    assert model.text_tokenizer.source == str(tmp_path / "vlm")
    # the kept layers carry the saved weights
    saved = load_file(str(tmp_path / "vlm" / "model.safetensors"))
    key = next(k for k in saved if k.endswith("layers.1.self_attn.q_proj.weight") and "vision" not in k)
    torch.testing.assert_close(model.backbone.layers[1].self_attn.q_proj.weight, saved[key])
    assert not any(k.endswith("layers.2.self_attn.q_proj.weight") for k in model.state_dict())
    batch = toy_batch(model.config, with_action=False)
    noise = torch.randn(2, model.config.chunk_size, model.config.max_action_dim)
    actions = model.sample_actions(batch, noise=noise)
    # the checkpoint stands alone: the original backbone dir is not needed to load it
    model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "vlm" / "model.safetensors").unlink()
    loaded = VLAModel.from_pretrained(tmp_path / "ckpt").eval()
    torch.testing.assert_close(loaded.sample_actions(batch, noise=noise), actions, rtol=0, atol=0)


def test_pretrained_family_mismatch_and_missing_dir_are_clear_errors(tmp_path: Path) -> None:
    _save_hf_backbone("smolvlm", tmp_path / "vlm", layers=1)
    with pytest.raises(ModelConfigError, match="family"):
        VLAModel(small_config("backbone.family=paligemma", f"backbone.pretrained={tmp_path / 'vlm'}"))
    with pytest.raises(ModelConfigError, match="pretrained"):
        VLAModel(small_config(f"backbone.pretrained={tmp_path / 'missing'}"))
    with pytest.raises(ModelConfigError, match="num_layers"):
        VLAModel(small_config(f"backbone.pretrained={tmp_path / 'vlm'}", "backbone.num_layers=5"))


def test_expert_layers_must_pair_with_backbone_layers() -> None:
    with pytest.raises(ModelConfigError, match=r"expert\.layers"):
        VLAModel(small_config("expert.layers=3"), tasks=TASKS)
