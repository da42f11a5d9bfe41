"""Tiny LeRobot PI0Policy / PI05Policy built offline, saved as LeRobot saves a policy, for the import tests.

LeRobot builds π0's PaliGemma and Gemma expert only at the real sizes (`gemma_2b` / `gemma_300m`, vocab
257152, a 1152-wide SigLIP): inside `build`, its module's `get_gemma_config` and the two model
constructors are replaced by shrinking versions (8 heads and one kv head as in the real variants, which
their attention reshape assumes; SigLIP keeps its 16 heads). The tokenizer stand-in is a word-level
tokenizer dir (BOS from its post-processor, "\\n" a token) that the saved preprocessor names instead of
`google/paligemma-3b-pt-224`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from tests.importer.lerobot_smolvla import load_processors, rerandomise, stats  # noqa: F401  (re-exported)

STATE_DIM = 5
ACTION_DIM = 4
CHUNK = 6
FRAME = (24, 40)  # odd aspect ratio: the resize and its padding matter
CAMERAS = ("top", "wrist")
IMAGE = 32
TASKS = ["pick up the red cube", "pick up the red cube and put it in the blue bowl"]  # the 2nd is truncated
WORDS = ["pick", "up", "the", "red", "cube", "and", "put", "it", "in", "bowl", "push", "blue"]
VOCAB = 320  # words, π0.5 prompt words and the 256 state bins
SIZES = {  # variant -> (width, depth, mlp_dim, heads, kv_heads, head_dim): the real ones shrunk
    "gemma_2b": (64, 2, 128, 8, 1, 8),
    "gemma_300m": (32, 2, 64, 8, 1, 8),
}
VISION = {"hidden_size": 32, "num_hidden_layers": 1, "intermediate_size": 64, "patch_size": 8}


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


def _features(config: Any) -> None:
    from lerobot.configs import FeatureType, PolicyFeature

    config.input_features = {"observation.state": PolicyFeature(FeatureType.STATE, (STATE_DIM,))}
    for cam in CAMERAS:
        config.input_features[f"observation.images.{cam}"] = PolicyFeature(FeatureType.VISUAL, (3, *FRAME))
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (ACTION_DIM,))}


COMMON: dict[str, Any] = {
    "device": "cpu",
    "chunk_size": CHUNK,
    "n_action_steps": CHUNK,
    "num_inference_steps": 3,
    "max_state_dim": 8,
    "max_action_dim": 8,
    "tokenizer_max_length": 12,
    "image_resolution": (IMAGE, IMAGE),
    "push_to_hub": False,
}


def save_pi0(directory: Path, tokenizer_dir: Path, seed: int = 0, **overrides: Any) -> Any:
    """Build, re-randomise and save a PI0Policy with its processors, as LeRobot saves one."""
    from lerobot.policies.pi0 import modeling_pi0, processor_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    config = PI0Config(**(COMMON | overrides))
    _features(config)
    with shrunk((modeling_pi0, processor_pi0), tokenizer_dir):
        torch.manual_seed(seed)
        policy = modeling_pi0.PI0Policy(config)
        pre, post = processor_pi0.make_pi0_pre_post_processors(config, stats(seed + 2))
    rerandomise(policy, seed + 1)
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return policy.eval()


def quantile_stats(seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """q01/q99 (π0.5's QUANTILES) beside mean/std: q01 = mean - std, q99 = mean + std."""
    out = stats(seed)
    for feature in out.values():
        feature["q01"] = feature["mean"] - feature["std"]
        feature["q99"] = feature["mean"] + feature["std"]
    return out


def save_pi05(directory: Path, tokenizer_dir: Path, seed: int = 0, **overrides: Any) -> Any:
    """Build, re-randomise and save a PI05Policy with its processors, as LeRobot saves one."""
    from lerobot.policies.pi05 import modeling_pi05, processor_pi05
    from lerobot.policies.pi05.configuration_pi05 import PI05Config

    config = PI05Config(**(COMMON | {"tokenizer_max_length": 24} | overrides))
    _features(config)
    with shrunk((modeling_pi05, processor_pi05), tokenizer_dir):
        torch.manual_seed(seed)
        policy = modeling_pi05.PI05Policy(config)
        pre, post = processor_pi05.make_pi05_pre_post_processors(config, quantile_stats(seed + 2))
    rerandomise(policy, seed + 1)
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)
    return policy.eval()


def observation(batch_size: int, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {
        f"observation.images.{cam}": torch.rand(batch_size, 3, *FRAME, generator=g) for cam in CAMERAS
    }
    batch["observation.state"] = torch.randn(batch_size, STATE_DIM, generator=g) * 2.0
    batch["task"] = [TASKS[i % len(TASKS)] for i in range(batch_size)]
    return batch
