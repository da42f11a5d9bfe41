"""LeRobot's VLA policies built offline: the local stand-ins for what LeRobot would download (a SmolVLM
config + tokenizer dir; a PaliGemma tokenizer dir) and a context that makes its π0 / π0.5 build at tiny sizes.

Shared by bench/lerobot_saved.py (bench.gpu_import) and the import tests (tests/importer/), which import
them from here. The SmolVLM and PaliGemma tokenizer stand-ins are word level, with "\\n" a token and a BOS
added by the post-processor (as the real ones do), so the prompt format and the tokenizer's own special
tokens both show in the token ids.

π0: LeRobot builds its PaliGemma and Gemma expert only at the real sizes (`gemma_2b` / `gemma_300m`, vocab
257152, a 1152-wide SigLIP); inside `shrunk`, its module's `get_gemma_config` and the two model
constructors are replaced by shrinking versions (8 heads and one kv head as in the real variants, which
their attention reshape assumes; SigLIP keeps its 16 heads), and its tokenizer step names our local dir
instead of `google/paligemma-3b-pt-224`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

WORDS = ["pick", "up", "the", "red", "cube", "and", "put", "it", "in", "bowl", "push", "blue"]
IMAGE = 32  # the shrunk π0's image resolution
VOCAB = 320  # words, π0.5 prompt words and the 256 state bins
SIZES = {  # variant -> (width, depth, mlp_dim, heads, kv_heads, head_dim): the real ones shrunk
    "gemma_2b": (64, 2, 128, 8, 1, 8),
    "gemma_300m": (32, 2, 64, 8, 1, 8),
}
VISION = {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64, "patch_size": 8}


def write_vlm_dir(directory: Path, **sizes: Any) -> None:
    """SmolVLM config + tokenizer, as a hub repo would hold them (nothing downloaded). `sizes`: BackboneConfig
    fields that replace the tiny defaults."""
    from vla.model.backbone import hf_config_from_fields
    from vla.model.config import BackboneConfig

    backbone = BackboneConfig(
        hidden_size=64,
        layers=4,
        heads=4,
        kv_heads=2,
        intermediate_size=128,
        vocab_size=64,
        rope_theta=1e5,
        vision_hidden_size=32,
        vision_layers=1,
        vision_heads=2,
        vision_intermediate_size=64,
        patch_size=8,
        image_size=32,
        pixel_shuffle=2,
    )
    backbone = dataclasses.replace(backbone, **sizes)
    hf_config_from_fields(backbone).save_pretrained(directory)
    write_smolvlm_processor(directory)


def write_smolvlm_processor(directory: Path) -> None:
    """The SmolVLM tokenizer + processor stand-in (word level over WORDS, the special tokens SmolVLA reads,
    an Idefics3Processor: SmolVLMProcessor would need num2words), beside a config in `directory`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import Idefics3ImageProcessor, Idefics3Processor, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<end_of_utterance>", "<image>", "<fake_token_around_image>"]
    vocab = {token: i for i, token in enumerate([*specials, "<global-img>", "\n", *WORDS])}
    words = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Sequence(  # type: ignore[assignment]
        [pre_tokenizers.Split(" ", behavior="removed"), pre_tokenizers.Split("\n", behavior="isolated")]
    )
    words.post_processor = processors.TemplateProcessing(  # type: ignore[assignment]
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<end_of_utterance>",
        extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    Idefics3Processor(image_processor=Idefics3ImageProcessor(), tokenizer=tokenizer).save_pretrained(
        directory
    )


def write_tokenizer_dir(directory: Path) -> None:
    """A PaliGemma tokenizer stand-in (word level; `<bos>` added by the post-processor as Gemma's is)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    words_and_digits = [*WORDS, "Task:", "State:", "Action:", ",", ";", *[str(i) for i in range(-1, 257)]]
    vocab = {token: i for i, token in enumerate([*specials, "\n", *words_and_digits])}
    assert len(vocab) <= VOCAB
    words = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Sequence(  # type: ignore[assignment]
        [
            pre_tokenizers.Split(" ", behavior="removed"),
            *(pre_tokenizers.Split(c, behavior="isolated") for c in ("\n", ",", ";")),
        ]
    )
    words.post_processor = processors.TemplateProcessing(  # type: ignore[assignment]
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    ).save_pretrained(directory)


@contextlib.contextmanager
def shrunk(module: Any, tokenizer_dir: Path) -> Iterator[None]:
    """LeRobot's π0 / π0.5 module (modeling + processor) building tiny models and naming our tokenizer."""
    modeling, processor = module
    real_config, real_vlm, real_expert = (
        modeling.get_gemma_config,
        modeling.PaliGemmaForConditionalGenerationWithPiGemma,
        modeling.PiGemmaForCausalLM,
    )

    def gemma_config(variant: str) -> Any:
        width, depth, mlp, heads, kv, head_dim = SIZES[variant]
        return modeling.GemmaConfig(width, depth, mlp, heads, kv, head_dim)

    def vlm(config: Any) -> Any:
        config.text_config.vocab_size = VOCAB
        config.vocab_size = VOCAB
        config.image_token_index = VOCAB - 1
        for name, value in VISION.items():
            setattr(config.vision_config, name, value)
        config.vision_config.projection_dim = config.text_config.hidden_size
        config.projection_dim = config.text_config.hidden_size
        return real_vlm(config=config)

    def expert(config: Any) -> Any:
        config.vocab_size = VOCAB
        return real_expert(config=config)

    real_tokenizer_step = processor.TokenizerProcessorStep

    def tokenizer_step(**kwargs: Any) -> Any:
        return real_tokenizer_step(**(kwargs | {"tokenizer_name": str(tokenizer_dir)}))

    with (
        mock.patch.object(modeling, "get_gemma_config", gemma_config),
        mock.patch.object(modeling, "PaliGemmaForConditionalGenerationWithPiGemma", vlm),
        mock.patch.object(modeling, "PiGemmaForCausalLM", expert),
        mock.patch.object(processor, "TokenizerProcessorStep", tokenizer_step),
    ):
        del real_config
        yield
