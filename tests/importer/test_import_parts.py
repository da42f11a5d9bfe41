"""The import's parts against LeRobot's own code: image resizes, prompt tokens, normalisation stats; and
the refusals of what our model does not implement (one line, exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.importer import lerobot_smolvla as fixture
from vla.importer import CheckpointImportError, import_policy
from vla.importer.keys import KeyRule, map_weights
from vla.importer.lerobot import read_processors
from vla.model.backbone import resize_with_pad
from vla.model.tokenizer import TextTokenizer
from vla.model.vla import VLAModel

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(24, 40), (30, 20), (17, 33), (50, 7), (33, 32), (64, 48), (100, 101)]


@pytest.mark.parametrize(("h", "w"), SHAPES)
def test_resizes_equal_lerobots(h: int, w: int) -> None:
    from lerobot.policies.common.vla_utils import resize_with_pad as lerobot_smolvla_resize
    from lerobot.policies.common.vla_utils import resize_with_pad_torch as lerobot_pi0_resize

    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    smolvla = resize_with_pad(x, 32, "smolvla")
    pi0 = resize_with_pad(x, 32, "pi0")
    assert smolvla.shape == pi0.shape == (2, 3, 32, 32)
    assert torch.equal(smolvla, lerobot_smolvla_resize(x, 32, 32, pad_value=0))
    assert torch.equal(pi0, lerobot_pi0_resize(x, 32, 32))
    if h != w:  # the families differ from each other and from today's default where padding exists
        assert not torch.equal(smolvla, pi0)
        assert not torch.equal(resize_with_pad(x, 32, "default"), smolvla)


def test_prompt_tokens_equal_lerobots_processor_steps(smolvla_source: tuple[Path, Any]) -> None:
    source, _ = smolvla_source
    pre, _ = fixture.load_processors(source)
    tasks = [*fixture.TASKS, "push the blue cube\n", "put it in the bowl"]  # one with its newline already
    batch = fixture.observation(len(tasks), seed=0) | {"task": tasks}
    theirs = pre(batch)
    from transformers import AutoTokenizer

    ours = TextTokenizer.from_hf(AutoTokenizer.from_pretrained(str(source.parent / "vlm")), "vlm")
    ids, valid = ours.encode_prompts(tasks, None, 12, "task_newline")
    for i in range(len(tasks)):
        their_ids = theirs["observation.language.tokens"][i][
            theirs["observation.language.attention_mask"][i].bool()
        ]
        assert ids[i][valid[i]].tolist() == their_ids.tolist(), tasks[i]
    newline = ours.tokenizer.token_to_id("\n")
    assert (
        newline in ids[0].tolist() and newline not in ids[1].tolist()
    )  # the long task lost it to truncation
    assert ids[0][valid[0]].tolist() != ours.encode_prompts(tasks[:1], None, 12)[0][0][valid[0]].tolist()


def test_stats_round_trip_and_normalise_as_lerobot(smolvla_source: tuple[Path, Any], tmp_path: Path) -> None:
    source, _ = smolvla_source
    stats, norm_map, rename = read_processors(source)
    expected = fixture.stats(seed=2)  # save_smolvla(seed=0) wrote stats(seed + 2)
    for feature, entries in expected.items():
        for name, value in entries.items():
            np.testing.assert_array_equal(stats[feature][name], value.double().numpy())
    assert norm_map["STATE"] == norm_map["ACTION"] == "MEAN_STD" and rename == {}
    import_policy(source, tmp_path / "out")
    model = VLAModel.from_pretrained(tmp_path / "out")
    assert model.stats is not None
    for feature, entries in expected.items():
        for name, value in entries.items():
            np.testing.assert_array_equal(model.stats[feature][name], value.double().numpy())
    pre, _ = fixture.load_processors(source)
    batch = fixture.observation(3, seed=1)
    theirs = pre(batch)["observation.state"]
    ours = model.normalizer.normalize_state(batch["observation.state"])
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)  # theirs divides by std + 1e-8


def _edited_source(source: Path, tmp_path: Path, **changes: Any) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(source, copy)
    config = json.loads((copy / "config.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = config[key] | value
        else:
            config[key] = value
    (copy / "config.json").write_text(json.dumps(config))
    return copy


REFUSALS = [
    ({"adapt_to_pi_aloha": True}, "adapt_to_pi_aloha=true (ALOHA"),
    ({"use_delta_joint_actions_aloha": True}, "relative actions"),
    ({"add_image_special_tokens": True}, "image special tokens"),
    ({"num_expert_layers": 2}, "num_expert_layers=2 (fewer expert layers"),
    ({"n_obs_steps": 2}, "n_obs_steps=2"),
    ({"resize_imgs_with_padding": [64, 64]}, r"resize_imgs_with_padding=[64, 64]"),
    ({"type": "act"}, "policy type 'act' is not supported"),
]


@pytest.mark.parametrize(("changes", "message"), REFUSALS)
def test_unsupported_options_are_refused_by_name(
    smolvla_source: tuple[Path, Any], tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    edited = _edited_source(smolvla_source[0], tmp_path, **changes)
    with pytest.raises(CheckpointImportError) as info:
        import_policy(edited, tmp_path / "out")
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()


def test_unsupported_normalisation_is_refused(smolvla_source: tuple[Path, Any], tmp_path: Path) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(smolvla_source[0], edited)
    pre = edited / "policy_preprocessor.json"
    pre.write_text(pre.read_text().replace('"STATE": "MEAN_STD"', '"STATE": "MIN_MAX"'))
    with pytest.raises(CheckpointImportError, match=r"normalization_mapping.STATE=MIN_MAX is not supported"):
        import_policy(edited, tmp_path / "out")


def test_the_app_prints_one_line_and_exits_2(smolvla_source: tuple[Path, Any], tmp_path: Path) -> None:
    edited = _edited_source(smolvla_source[0], tmp_path, adapt_to_pi_aloha=True)
    proc = subprocess.run(
        [sys.executable, "-m", "vla.apps.import_policy", f"source={edited}", f"output={tmp_path / 'out'}"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vla-import: error: ") and "adapt_to_pi_aloha" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edited"]  # no output, no log file


def test_the_app_writes_a_loadable_checkpoint(smolvla_source: tuple[Path, Any], tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vla.apps.import_policy",
            f"source={smolvla_source[0]}",
            "output=imported",
            f"base_vlm={smolvla_source[0].parent / 'vlm'}",  # a field, not the pretrain app's `vlm` group
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("imported smolvla") and "cameras ['top', 'wrist']" in proc.stdout
    assert f"tokenizer from {smolvla_source[0].parent / 'vlm'}" in proc.stdout
    model = VLAModel.from_pretrained(tmp_path / "imported")
    assert (model.config.chunk_size, model.config.num_steps, model.config.max_text_tokens) == (6, 3, 12)
    b = model.config.backbone  # the written config says what the VLM is (its own rope_theta, 1e5, kept)
    assert (b.hidden_size, b.vision_hidden_size, b.rope_theta, b.fixed_rope_theta) == (64, 32, 1e5, 1e4)


def test_the_key_table_refuses_unknown_and_missing_weights(
    smolvla_source: tuple[Path, Any], tmp_path: Path
) -> None:
    rules = [KeyRule(r"a\.(\d+)", r"b.\1")]
    assert set(map_weights({"a.1": torch.zeros(1)}, rules)) == {"b.1"}
    with pytest.raises(CheckpointImportError, match="does not know"):
        map_weights({"a.1": torch.zeros(1), "c": torch.zeros(1)}, rules)
    edited = tmp_path / "edited"
    shutil.copytree(smolvla_source[0], edited)
    weights = load_file(str(edited / "model.safetensors"))
    del weights["model.action_out_proj.bias"]
    save_file(weights, str(edited / "model.safetensors"))
    with pytest.raises(CheckpointImportError, match=r"not in the source \['flow.expert.action_out.bias'\]"):
        import_policy(edited, tmp_path / "out")


def test_a_tokenizer_json_that_disagrees_with_transformers_is_refused(
    smolvla_source: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenizers import processors

    real = TextTokenizer.from_hf

    def without_bos(hf: Any, source: str) -> TextTokenizer:  # as if transformers added BOS in Python
        tokenizer = real(hf, source)
        tokenizer.tokenizer.post_processor = processors.ByteLevel()  # type: ignore[assignment]
        return tokenizer

    monkeypatch.setattr(TextTokenizer, "from_hf", staticmethod(without_bos))
    with pytest.raises(CheckpointImportError, match="tokenizes a prompt as"):
        import_policy(smolvla_source[0], tmp_path / "out")


def test_a_hub_id_without_a_network_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointImportError, match=r"source=nobody/no_such_policy: not a local dir"):
        import_policy("nobody/no_such_policy", tmp_path / "out")
    with pytest.raises(CheckpointImportError, match=r"source=\./missing: no such directory"):
        import_policy("./missing", tmp_path / "out")


def test_camera_names_follow_the_rename_map_and_other_key_styles(
    smolvla_source: tuple[Path, Any], tmp_path: Path
) -> None:
    edited = tmp_path / "edited"
    shutil.copytree(smolvla_source[0], edited)
    config = json.loads((edited / "config.json").read_text())
    features = config["input_features"]
    features["observation.image"] = features.pop("observation.images.top")  # a hub checkpoint's style
    (edited / "config.json").write_text(json.dumps(config))
    pre = edited / "policy_preprocessor.json"
    renamed = '"rename_map": {"observation.images.cam_wrist": "observation.images.wrist"}'
    pre.write_text(pre.read_text().replace('"rename_map": {}', renamed))
    import_policy(edited, tmp_path / "out")
    assert VLAModel.from_pretrained(tmp_path / "out").config.cameras == ["cam_wrist", "image"]


def test_pi05_prompts_equal_lerobots_processor_step() -> None:
    from lerobot.lerobot_types import TransitionKey
    from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
    from lerobot.processor.converters import create_transition

    from vla.model.tokenizer import digitize_state, pi05_prompt

    edges = torch.linspace(-1, 1, 257)[:-1]
    state = torch.cat(  # beyond both ends, exactly on bin edges, just below them, random inside
        [
            torch.tensor([[-1.5, -1.0, 1.0, 1.7, 0.0, -0.0]]),
            edges[None, 100:106],
            (edges - 1e-6)[None, 40:46],
            torch.rand(3, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1,
        ]
    )
    tasks = [" pick_up the cube\n", "push", "a\nb", "x", "stack", "place_it "]
    step = Pi05PrepareStateTokenizerProcessorStep(max_state_dim=8)
    out = step(
        create_transition(observation={"observation.state": state}, complementary_data={"task": tasks})
    )
    theirs = out[TransitionKey.COMPLEMENTARY_DATA]["task"]
    ours = [pi05_prompt(t, w) for t, w in zip(tasks, digitize_state(state, 256), strict=True)]
    assert ours == theirs
    assert theirs[0].startswith("Task: pick up the cube, State: -1 0 255 255 128 128;\nAction: ")
