"""Equivalence with LeRobot's own π0.5: a tiny PI05Policy (re-randomised at a large gain) saved as LeRobot
saves it, imported by `vla-import`'s library call, fed the same images, state, prompt and noise. Their side
runs through their processor pipeline read back from the saved files (quantile normalisation, the state
discretised into the prompt, tokenizer stand-in, resize). Each model option and the adaRMS gate's bias
shift are needed: undoing one breaks the match."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch

from tests.importer import lerobot_pi0 as fixture
from tests.importer.test_import_parts import _edited_source
from tests.importer.test_import_smolvla import RTOL, _error, _theirs_chunk, _variant
from vla.importer import import_policy
from vla.importer.errors import CheckpointImportError
from vla.model.vla import VLAModel

B = 2


@pytest.fixture(scope="module")
def pair(pi05_source: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    source, policy = pi05_source
    output = tmp_path_factory.mktemp("imported") / "pi05"
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
        print(f"π0.5 chunk max|Δ|/max(1,|a|) cached={cached}: {err:.2e}")
        assert err <= RTOL, (cached, err)


def test_states_in_every_bin_range_match(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=11)
    batch["observation.state"] = batch["observation.state"] * 0.2  # inside [q01, q99]: bins spread out
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(12))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL


def test_imported_training_loss_equals_lerobots(pair: dict[str, Any]) -> None:
    g = torch.Generator().manual_seed(5)
    batch = fixture.observation(B, seed=6)
    batch["action"] = torch.randn(B, fixture.CHUNK, fixture.ACTION_DIM, generator=g) * 2.0
    batch["action_is_pad"] = torch.zeros(B, fixture.CHUNK, dtype=torch.bool)  # LeRobot's π0.5 ignores it
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
    print(f"π0.5 loss {float(theirs):.6f} vs {float(ours):.6f}: relative {err:.2e}")
    assert err <= RTOL


def _gate_unshifted(ours: VLAModel) -> VLAModel:
    """The imported model with LeRobot's adaRMS gate biases taken as they are (x + y·(1 + gate))."""
    weights = dict(ours.state_dict())
    for name, value in list(weights.items()):
        if name.startswith("flow.expert.") and name.endswith("modulation.bias"):
            third = value.shape[0] // 3
            weights[name] = torch.cat([value[: 2 * third], value[2 * third :] + 1.0])
    model = _variant(ours, "num_steps", ours.config.num_steps)  # a copy
    model.load_state_dict(weights)
    return model


@pytest.mark.parametrize(
    ("field", "off"),
    [
        ("adarms_gate", None),
        ("prompt_format", "bos_task"),  # our default prompt and state bins
        ("causal_actions", True),
        ("backbone.image_resize", "default"),
    ],
)
def test_each_import_option_is_needed(pair: dict[str, Any], field: str, off: Any) -> None:
    batch = fixture.observation(B, seed=7)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(8))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL
    variant = _gate_unshifted(pair["ours"]) if field == "adarms_gate" else _variant(pair["ours"], field, off)
    err = _error(variant.sample_actions(dict(batch), noise=noise.clone()), theirs)
    print(f"{field}={off!r}: max|Δ|/max(1,|a|) {err:.2e}")
    assert err > 100 * RTOL, (field, err)


def test_a_missing_camera_is_masked_as_lerobot_feeds_it(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=9)
    del batch["observation.images.wrist"]
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(10))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"use_relative_actions": True}, "use_relative_actions=true"),
        ({"n_obs_steps": 2}, "n_obs_steps=2"),
    ],
)
def test_unsupported_options_are_refused_by_name(
    pi05_source: tuple[Path, Any], tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    edited = _edited_source(pi05_source[0], tmp_path, **changes)
    with pytest.raises(CheckpointImportError) as info:
        import_policy(edited, tmp_path / "out")
    assert message in str(info.value)
    assert not (tmp_path / "out").exists()


def test_the_import_notes_what_stays_different(pi05_source: tuple[Path, Any], tmp_path: Path) -> None:
    summary = import_policy(pi05_source[0], tmp_path / "out")
    assert summary.config.keep_fp32 and summary.config.prompt_format == "pi05"
    assert any("padded actions" in line for line in summary.lines())


def test_state_and_action_normalised_differently_is_refused(
    pi05_source: tuple[Path, Any], tmp_path: Path
) -> None:
    edited = _edited_source(pi05_source[0], tmp_path)
    pre = edited / "policy_preprocessor.json"
    pre.write_text(pre.read_text().replace('"STATE": "QUANTILES"', '"STATE": "MEAN_STD"'))
    with pytest.raises(CheckpointImportError, match="STATE=MEAN_STD and ACTION=QUANTILES differ"):
        import_policy(edited, tmp_path / "out")
