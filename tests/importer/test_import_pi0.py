"""Equivalence with LeRobot's own π0: a tiny PI0Policy (re-randomised at a large gain) saved as LeRobot saves
it, imported by `vla-import`'s library call, fed the same images, state, prompt and noise. Their side runs
through their processor pipeline read back from the saved files (resize, prompt, tokenizer stand-in,
normalisation included). Each model option the import sets is needed: turning it off breaks the match."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

from tests.importer import lerobot_pi0 as fixture
from tests.importer.test_import_parts import REPO, _edited_source
from tests.importer.test_import_smolvla import RTOL, _error, _theirs_chunk, _variant
from vla.importer import import_policy
from vla.importer.errors import CheckpointImportError
from vla.model.vla import VLAModel

B = 2


@pytest.fixture(scope="module")
def pair(pi0_source: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    source, policy = pi0_source
    output = tmp_path_factory.mktemp("imported") / "pi0"
    pre, post = fixture.load_processors(source)
    import_policy(source, output)
    ours = VLAModel.from_pretrained(output).eval()
    return {"policy": policy, "pre": pre, "post": post, "ours": ours, "source": source}


def test_imported_chunk_equals_lerobots_cached_and_uncached(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=3)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(4))
    theirs = _theirs_chunk(pair, batch, noise)
    assert theirs.shape == (B, fixture.CHUNK, fixture.ACTION_DIM)
    assert float(theirs.std()) > 0.3  # a large-gain model: actions far from constant
    for cached in (True, False):
        ours = pair["ours"].sample_actions(dict(batch), noise=noise.clone(), use_cache=cached)
        err = _error(ours, theirs)
        print(f"π0 chunk max|Δ|/max(1,|a|) cached={cached}: {err:.2e}")
        assert err <= RTOL, (cached, err)


def test_a_missing_camera_is_masked_as_lerobot_feeds_it(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=9)
    del batch["observation.images.top"]  # LeRobot puts it last, as a -1 image with masked tokens
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(10))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL


def test_imported_training_loss_equals_lerobots(pair: dict[str, Any]) -> None:
    g = torch.Generator().manual_seed(5)
    batch = fixture.observation(B, seed=6)
    batch["action"] = torch.randn(B, fixture.CHUNK, fixture.ACTION_DIM, generator=g) * 2.0
    batch["action_is_pad"] = torch.zeros(B, fixture.CHUNK, dtype=torch.bool)  # LeRobot's π0 ignores it
    noise = torch.randn(B, fixture.CHUNK, 8, generator=g)
    time = torch.tensor([0.3, 0.85])
    model = pair["policy"].model
    with (
        torch.no_grad(),
        mock.patch.object(model, "sample_noise", lambda shape, device: noise.clone()),
        mock.patch.object(model, "sample_time", lambda b, device: time.clone()),
    ):
        theirs, _ = pair["policy"].forward(pair["pre"](dict(batch)))
        inputs = pair["ours"].prepare_inputs(dict(batch), training=True)
        ours = pair["ours"].loss_from_inputs(inputs, noise=noise.clone(), t=time.clone())["loss"]
    err = abs(float(ours) - float(theirs)) / max(1.0, abs(float(theirs)))
    print(f"π0 loss {float(theirs):.6f} vs {float(ours):.6f}: relative {err:.2e}")
    assert err <= RTOL


def _state_in_prefix(ours: VLAModel) -> VLAModel:
    """The imported model with its state token in the backbone's stream instead: the same projection,
    zero-padded to the backbone's width (the closest model with state_token=prefix)."""
    weights = dict(ours.state_dict())
    hidden = ours.backbone.hidden_size
    for name in ("state_proj.proj.weight", "state_proj.proj.bias"):
        padded = torch.zeros((hidden, *weights[name].shape[1:]))
        padded[: weights[name].shape[0]] = weights[name]
        weights[name] = padded
    with mock.patch.object(ours, "state_dict", lambda: weights):
        return _variant(ours, "state_token", "prefix")


@pytest.mark.parametrize(
    ("field", "off"),
    [
        ("state_token", "prefix"),
        ("causal_actions", True),
        ("backbone.image_resize", "default"),
        ("prompt_format", "bos_task"),
    ],
)
def test_each_import_option_is_needed(pair: dict[str, Any], field: str, off: Any) -> None:
    batch = fixture.observation(B, seed=7)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(8))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL
    variant = _state_in_prefix(pair["ours"]) if field == "state_token" else _variant(pair["ours"], field, off)
    err = _error(variant.sample_actions(dict(batch), noise=noise.clone()), theirs)
    print(f"{field}={off!r}: max|Δ|/max(1,|a|) {err:.2e}")
    assert err > 100 * RTOL, (field, err)


REFUSALS = [
    ({"use_relative_actions": True}, "use_relative_actions=true"),
    ({"n_obs_steps": 2}, "n_obs_steps=2"),
    ({"image_resolution": [32, 48]}, "image_resolution=[32, 48] (not square)"),
    ({"image_resolution": [64, 64]}, "image_resolution=[64, 64] is not the vision tower's input size 32"),
    ({"time_sampling_scale": 0.9}, "time_sampling_scale + time_sampling_offset"),
]


@pytest.mark.parametrize(("changes", "message"), REFUSALS)
def test_unsupported_options_are_refused_by_name(
    pi0_source: tuple[Path, Any], tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    edited = _edited_source(pi0_source[0], tmp_path, **changes)
    with pytest.raises(CheckpointImportError) as info:
        import_policy(edited, tmp_path / "out")
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()


def test_the_app_refuses_with_one_line_and_exit_2(pi0_source: tuple[Path, Any], tmp_path: Path) -> None:
    edited = _edited_source(pi0_source[0], tmp_path, use_relative_actions=True)
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
    assert (
        len(lines) == 1 and lines[0].startswith("vla-import: error: ") and "use_relative_actions" in lines[0]
    )


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_a_bf16_cast_keeps_float32_what_lerobot_keeps(
    family: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """LeRobot's dtype=bfloat16 (PaliGemmaWithExpertModel.to_bfloat16_for_selected_params) against ours
    after `.to(torch.bfloat16)`: each weight has the dtype its source weight has there."""
    import copy
    import re

    from vla.importer.convert import FAMILIES

    source, policy = request.getfixturevalue(f"{family}_source")
    import_policy(source, tmp_path / "out")
    ours = VLAModel.from_pretrained(tmp_path / "out").to(torch.bfloat16)
    theirs = copy.deepcopy(policy)
    theirs.model.paligemma_with_expert.to_bfloat16_for_selected_params("bfloat16")
    ours_dtypes = {k: v.dtype for k, v in ours.state_dict().items()}
    rules = [(re.compile(r.pattern), r.target) for r in FAMILIES[family].KEY_TABLE]
    compared = {torch.float32: 0, torch.bfloat16: 0}
    for key, value in theirs.state_dict().items():
        targets = [m.expand(target) for pattern, target in rules if (m := pattern.fullmatch(key))]
        if targets:
            assert ours_dtypes[targets[0]] == value.dtype, (key, targets[0], value.dtype)
            compared[value.dtype] += 1
    assert min(compared.values()) > 10, compared  # both kinds seen
    batch = fixture.observation(B, seed=3)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(4))
    assert torch.isfinite(ours.sample_actions(dict(batch), noise=noise)).all()


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_the_real_sizes_translate_and_every_weight_fits(family: str) -> None:
    """LeRobot's real π0 / π0.5 (gemma_2b + gemma_300m, SigLIP so400m at 224) built on the meta device:
    the PaliGemma config read from its weights' shapes is theirs, and every weight maps onto ours with
    its shape (nothing missing, nothing extra)."""
    import importlib
    import re

    import numpy as np

    from vla.importer.convert import FAMILIES
    from vla.importer.keys import map_weights
    from vla.importer.lerobot import LeRobotCheckpoint

    modeling = importlib.import_module(f"lerobot.policies.{family}.modeling_{family}")
    configuration = importlib.import_module(f"lerobot.policies.{family}.configuration_{family}")
    source_config = getattr(configuration, "PI05Config" if family == "pi05" else "PI0Config")(device="cpu")
    with torch.device("meta"):
        core = getattr(modeling, "PI05Pytorch" if family == "pi05" else "PI0Pytorch")(source_config)
    weights = {f"model.{k}": v for k, v in core.state_dict().items()}
    features = {
        "observation.state": {"type": "STATE", "shape": [7]},
        "observation.images.base": {"type": "VISUAL", "shape": [3, 224, 224]},
    }
    saved = {
        "type": family,
        "max_state_dim": 32,
        "max_action_dim": 32,
        "chunk_size": 50,
        "num_inference_steps": 10,
        "tokenizer_max_length": source_config.tokenizer_max_length,
        "image_resolution": [224, 224],
        "input_features": features,
        "output_features": {"action": {"type": "ACTION", "shape": [7]}},
    }
    stats = {
        k: {"mean": np.zeros(7), "std": np.ones(7), "q01": -np.ones(7), "q99": np.ones(7)}
        for k in ("observation.state", "action")
    }
    mode = "QUANTILES" if family == "pi05" else "MEAN_STD"
    policy = LeRobotCheckpoint(
        Path("real"), saved, weights, stats, {"VISUAL": "IDENTITY", "STATE": mode, "ACTION": mode}
    )
    module = FAMILIES[family]
    vlm = module.vlm_config(policy)
    theirs = core.paligemma_with_expert.paligemma.config
    for part, names in {
        "text_config": (
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "vocab_size",
            "rms_norm_eps",
            "hidden_activation",
        ),
        "vision_config": (
            "hidden_size",
            "num_hidden_layers",
            "intermediate_size",
            "num_attention_heads",
            "patch_size",
            "image_size",
            "layer_norm_eps",
        ),
    }.items():
        for name in names:
            assert vlm[part][name] == getattr(getattr(theirs, part), name), (part, name)
    config = module.translate_config(policy, vlm)
    assert (config.expert.width, config.expert.intermediate_size) == (1024, 4096)
    with torch.device("meta"):
        ours = VLAModel(config, stats=stats, backbone_hf_config=vlm).state_dict()
    mapped = map_weights(weights, module.KEY_TABLE, module.IGNORED, family=family)
    unread = [re.compile(p) for p in getattr(module, "NOT_IN_SOURCE", ())]
    expected = {
        k: v
        for k, v in ours.items()
        if not k.startswith("normalizer.") and not any(p.fullmatch(k) for p in unread)
    }
    assert sorted(mapped) == sorted(expected)
    assert all(tuple(mapped[k].shape) == tuple(v.shape) for k, v in expected.items())


def test_cameras_of_different_sizes_match_too(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=11)
    batch["observation.images.wrist"] = torch.rand(B, 3, 30, 20, generator=torch.Generator().manual_seed(12))
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(13))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL


def test_empty_cameras_are_left_out_as_lerobot_masks_them(tmp_path: Path) -> None:
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    fixture.write_tokenizer_dir(tokenizer)
    policy = fixture.save_pi0(tmp_path / "source", tokenizer, seed=20, empty_cameras=1)
    summary = import_policy(tmp_path / "source", tmp_path / "out")
    assert summary.config.cameras == list(fixture.CAMERAS)
    pre, post = fixture.load_processors(tmp_path / "source")
    pair = {"policy": policy, "pre": pre, "post": post}
    batch = fixture.observation(B, seed=21)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(22))
    ours = VLAModel.from_pretrained(tmp_path / "out").eval()
    assert (
        _error(ours.sample_actions(dict(batch), noise=noise.clone()), _theirs_chunk(pair, batch, noise))
        <= RTOL
    )
