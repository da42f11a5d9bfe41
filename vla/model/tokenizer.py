"""Offline text tokenizer: the pretrained backbone's tokenizer when there is one, else a small word-level
tokenizer built from the dataset's task strings. Either way it is saved with the model as `tokenizer.json`
(the `tokenizers` library's JSON; never pickled) plus the special-token ids in `text_tokenizer.json`.

Prompts are `[BOS] task` (continuous state) or `[BOS] Task: task, State: 12 200 ...;` (π0.5's discrete
state: each normalised dimension clipped to [-1, 1] and cut into `bins` equal bins). Sequences are
left-padded to a fixed length so the last prefix token is always a real one and shapes stay static.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from vla.model.config import ModelConfigError

TOKENIZER_FILE = "tokenizer.json"
META_FILE = "text_tokenizer.json"
_SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
_FIXED_WORDS = ["task", "state", ":", ",", ";", "action"]


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus the ids the model needs (pad, bos, eos)."""

    def __init__(
        self, tokenizer: Tokenizer, pad_id: int, bos_id: int | None, eos_id: int, source: str
    ) -> None:
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.source = source  # "tasks" or the pretrained path

    # ------------------------------------------------------------------ building

    @classmethod
    def from_tasks(cls, tasks: Sequence[str], number_words: int = 256) -> TextTokenizer:
        """Word-level vocabulary: specials, numbers 0..number_words-1 (discrete state), prompt words, tasks."""
        normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        pre = pre_tokenizers.Whitespace()
        words: set[str] = set()
        for task in tasks:
            words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(str(task))))
        vocab_list = _SPECIALS + [str(i) for i in range(number_words)] + _FIXED_WORDS
        vocab_list += sorted(words - set(vocab_list))
        vocab = {w: i for i, w in enumerate(vocab_list)}
        tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
        tokenizer.normalizer = normalizer  # type: ignore[assignment]
        tokenizer.pre_tokenizer = pre  # type: ignore[assignment]
        return cls(tokenizer, pad_id=0, bos_id=2, eos_id=3, source="tasks")

    @classmethod
    def from_pretrained(cls, source: str) -> TextTokenizer:
        """The pretrained backbone's tokenizer (its fast `tokenizer.json`), read from a local dir or cache."""
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as e:
            raise ModelConfigError(
                f"model.backbone.pretrained={source!r}: no usable tokenizer there ({e})"
            ) from e
        return cls.from_hf(hf, source)

    @classmethod
    def from_hf(cls, hf: object, source: str) -> TextTokenizer:
        """Over a transformers fast tokenizer: its `tokenizer.json` and its special ids."""
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise ModelConfigError(
                f"model.backbone.pretrained={source!r}: the tokenizer has no tokenizer.json"
            )
        eos = getattr(hf, "eos_token_id", None)
        pad = getattr(hf, "pad_token_id", None)
        pad = pad if pad is not None else eos
        if eos is None or pad is None:
            raise ModelConfigError(
                f"model.backbone.pretrained={source!r}: the tokenizer defines no eos token"
            )
        return cls(
            Tokenizer.from_str(backend.to_str()),
            pad_id=pad,
            bos_id=getattr(hf, "bos_token_id", None),
            eos_id=eos,
            source=source,
        )

    # ------------------------------------------------------------------ encoding

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode_prompts(
        self,
        tasks: Sequence[str],
        state_words: Sequence[str] | None,
        length: int,
        prompt_format: str = "bos_task",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ids [B, length] long and valid [B, length] bool, left-padded.

        bos_task: [BOS] + the task (underscores as spaces, whitespace collapsed) + the discrete state when
        given; the task is truncated first, the state never (an error asks for more tokens).
        task_newline: the task + "\n" as given, with the tokenizer's own special tokens (its post-processor),
        truncated to `length` keeping them (as LeRobot tokenizes π0's and SmolVLA's prompts).
        pi05: `pi05_prompt` of the task and the state bins (`digitize_state`), likewise tokenized."""
        if prompt_format == "task_newline":
            if state_words is not None:
                raise ModelConfigError("model.prompt_format=task_newline has no place for a discrete state")
            rows = [self._with_specials(newline_prompt(str(task)), length) for task in tasks]
        elif prompt_format == "pi05":
            if state_words is None:
                raise ModelConfigError(
                    "model.prompt_format=pi05 needs the discrete state (state_mode=discrete)"
                )
            rows = [
                self._with_specials(pi05_prompt(str(t), w), length)
                for t, w in zip(tasks, state_words, strict=True)
            ]
        elif prompt_format == "bos_task":
            rows = self._bos_prompts(tasks, state_words, length)
        else:
            raise ModelConfigError(f"model.prompt_format={prompt_format!r}: one of bos_task, task_newline")
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(rows), length), dtype=torch.bool)
        for i, row in enumerate(rows):
            if row:
                ids[i, length - len(row) :] = torch.tensor(row, dtype=torch.long)
                valid[i, length - len(row) :] = True
        return ids, valid

    def _with_specials(self, text: str, length: int) -> list[int]:
        """The text's ids with the tokenizer's special tokens, truncated to `length` keeping them."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        encoding.truncate(max(0, length - self.tokenizer.num_special_tokens_to_add(False)))
        return list(self.tokenizer.post_process(encoding).ids)[:length]

    def _bos_prompts(
        self, tasks: Sequence[str], state_words: Sequence[str] | None, length: int
    ) -> list[list[int]]:
        head = [self.bos_id] if self.bos_id is not None else []
        rows = []
        for i, task in enumerate(tasks):
            text = " ".join(str(task).replace("_", " ").split())
            if state_words is None:
                task_ids, tail = self.tokenizer.encode(text, add_special_tokens=False).ids, []
            else:
                task_ids = self.tokenizer.encode(f"Task: {text},", add_special_tokens=False).ids
                tail = self.tokenizer.encode(f" State: {state_words[i]};", add_special_tokens=False).ids
            budget = length - len(head) - len(tail)
            if budget < 0:
                raise ModelConfigError(
                    f"model.max_text_tokens={length} cannot hold the discrete state ({len(tail)} tokens); raise it"
                )
            rows.append(head + task_ids[:budget] + tail)
        return rows

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path) -> None:
        path = Path(directory)
        (path / TOKENIZER_FILE).write_text(self.tokenizer.to_str())
        meta = {"pad_id": self.pad_id, "bos_id": self.bos_id, "eos_id": self.eos_id, "source": self.source}
        (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> TextTokenizer:
        path = Path(directory)
        meta = json.loads((path / META_FILE).read_text())
        tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        return cls(tokenizer, int(meta["pad_id"]), meta["bos_id"], int(meta["eos_id"]), str(meta["source"]))


def newline_prompt(task: str) -> str:
    """LeRobot's π0 / SmolVLA prompt: the task with a trailing newline (added once)."""
    return task if task.endswith("\n") else task + "\n"


def pi05_prompt(task: str, state_words: str) -> str:
    """LeRobot's (openpi's) π0.5 prompt around the task and the state's bins."""
    cleaned = task.strip().replace("_", " ").replace("\n", " ")
    return f"Task: {cleaned}, State: {state_words};\nAction: "


def digitize_state(state: torch.Tensor, bins: int) -> list[str]:
    """Normalised state [B, S] -> per row 'b0 b1 ...' as π0.5 bins it (np.digitize over `bins` equal bins
    of [-1, 1]): -1 below -1, bins - 1 from the top bin's edge up, never clipped otherwise."""
    x = state.detach().float().cpu().numpy()
    idx = np.digitize(x, bins=np.linspace(-1.0, 1.0, bins + 1)[:-1]) - 1  # [B, S]
    return [" ".join(str(v) for v in row) for row in idx.tolist()]


def discretize_state(state: torch.Tensor, bins: int) -> list[str]:
    """Normalised state [B, S] -> per row 'b0 b1 ...' with b in [0, bins): π0.5's text state."""
    x = state.detach().float().clamp(-1.0, 1.0)
    idx = ((x + 1.0) / 2.0 * bins).floor().long().clamp(0, bins - 1)  # [B, S]
    return [" ".join(str(v) for v in row) for row in idx.cpu().tolist()]
