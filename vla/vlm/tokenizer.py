"""The VLM's tokenizer: a transformers fast tokenizer with the location tokens in its vocabulary.

From scratch it is word-level over the pretraining data's vocabulary (plus the numbers 0-255 that π0.5's
discrete state uses, as `TextTokenizer.from_tasks` builds it); from a pretrained VLM it is that model's
own tokenizer with the location tokens added. Either way `save_pretrained` writes `tokenizer.json` and
`tokenizer_config.json`, so `AutoTokenizer.from_pretrained(dir)` — the path `vla-train
model.backbone.pretrained=<dir>` takes — reads it back offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tokenizers import AddedToken

from vla.model.config import ModelConfigError
from vla.model.tokenizer import TextTokenizer
from vla.vlm.loc import loc_tokens

SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]", "eos_token": "[EOS]"}


def build_tokenizer(texts: Iterable[str], loc_bins: int) -> Any:
    """A word-level PreTrainedTokenizerFast over `texts`' words, with `loc_bins` location tokens."""
    from transformers import PreTrainedTokenizerFast

    words = TextTokenizer.from_tasks(list(texts)).tokenizer
    words.add_tokens([AddedToken(t, normalized=False, single_word=False) for t in loc_tokens(loc_bins)])
    return PreTrainedTokenizerFast(tokenizer_object=words, **SPECIALS)


def extend_tokenizer(source: str, loc_bins: int) -> Any:
    """A pretrained VLM's tokenizer (local dir or cached hub id) with the location tokens added."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise ModelConfigError(
            f"model.backbone.pretrained={source!r}: no usable tokenizer there ({e})"
        ) from e
    missing = [t for t in loc_tokens(loc_bins) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, normalized=False) for t in missing])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def text_tokenizer(hf: Any, source: str) -> TextTokenizer:
    """The VLA's prompt encoder over a transformers tokenizer (the same ids the VLA will use)."""
    return TextTokenizer.from_hf(hf, source)


def unknown_words(tokenizer: TextTokenizer, texts: Iterable[str]) -> list[str]:
    """Words of `texts` the tokenizer maps to its unknown token (a word-level vocabulary built elsewhere)."""
    unk = tokenizer.tokenizer.token_to_id("[UNK]")
    if unk is None:
        return []
    out: set[str] = set()
    for text in texts:
        enc = tokenizer.tokenizer.encode(text, add_special_tokens=False)
        out.update(text[a:b] for (a, b), i in zip(enc.offsets, enc.ids, strict=True) if i == unk)
    return sorted(out)
