"""The offline text tokenizer and π0.5's discrete state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla.model.config import ModelConfigError
from vla.model.tokenizer import TextTokenizer, discretize_state


def test_task_tokenizer_left_pads_and_round_trips(tmp_path: Path) -> None:
    tok = TextTokenizer.from_tasks(["Pick up the red cube.", "push_the button"])
    ids, valid = tok.encode_prompts(["pick up the cube", "push the blue button"], None, length=8)
    assert ids.shape == valid.shape == (2, 8)
    assert valid[0].tolist() == [False] * 3 + [True] * 5  # [BOS] pick up the cube
    assert ids[0, 3].item() == tok.bos_id and ids[0, 0].item() == tok.pad_id
    decoded = tok.tokenizer.decode(ids[1][valid[1]].tolist(), skip_special_tokens=False)
    assert "[UNK]" in decoded  # "blue" was never seen: unknown, not an error
    tok.save(tmp_path)
    again = TextTokenizer.load(tmp_path)
    assert torch.equal(
        again.encode_prompts(["push the button"], None, 8)[0],
        tok.encode_prompts(["push the button"], None, 8)[0],
    )


def test_long_tasks_are_truncated_but_the_state_is_kept() -> None:
    tok = TextTokenizer.from_tasks(["a b c d e f g h"])
    ids, valid = tok.encode_prompts(["a b c d e f g h"], ["1 2 3"], length=12)
    text = tok.tokenizer.decode(ids[0][valid[0]].tolist())
    assert text.endswith("state : 1 2 3 ;")
    with pytest.raises(ModelConfigError, match="max_text_tokens"):
        tok.encode_prompts(["a"], ["1 2 3 4 5 6 7 8 9 10"], length=8)


def test_discretize_state_uses_equal_bins_over_minus_one_to_one() -> None:
    words = discretize_state(torch.tensor([[-5.0, -1.0, 0.0, 0.999, 1.0, 7.0]]), 256)
    assert words == ["0 0 128 255 255 255"]
