from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.importer import lerobot_smolvla as fixture


@pytest.fixture(scope="session")
def smolvla_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(dir of a saved tiny LeRobot SmolVLA policy, the policy itself); its VLM dir sits beside it."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("smolvla")
    vlm, source = root / "vlm", root / "lerobot_policy"
    vlm.mkdir()
    fixture.write_vlm_dir(vlm)
    policy = fixture.save_smolvla(source, vlm)
    return source, policy


@pytest.fixture(scope="session")
def pi0_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(dir of a saved tiny LeRobot PI0Policy, the policy itself); its tokenizer dir sits beside it."""
    from tests.importer import lerobot_pi0

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pi0")
    tokenizer, source = root / "tokenizer", root / "lerobot_policy"
    tokenizer.mkdir()
    lerobot_pi0.write_tokenizer_dir(tokenizer)
    policy = lerobot_pi0.save_pi0(source, tokenizer)
    return source, policy


@pytest.fixture(scope="session")
def pi05_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """(dir of a saved tiny LeRobot PI05Policy, the policy itself); its tokenizer dir sits beside it."""
    from tests.importer import lerobot_pi0

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pi05")
    tokenizer, source = root / "tokenizer", root / "lerobot_policy"
    tokenizer.mkdir()
    lerobot_pi0.write_tokenizer_dir(tokenizer)
    policy = lerobot_pi0.save_pi05(source, tokenizer)
    return source, policy
