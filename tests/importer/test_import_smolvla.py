"""Equivalence with LeRobot's own SmolVLA: a tiny SmolVLAPolicy (re-randomised at a large gain) saved as
LeRobot saves it, imported by `vla-import`'s library call, fed the same images, state, prompt and noise.
Their side runs through their processor pipeline read back from the saved files (resize, prompt, tokenizer,
normalisation included). And each model option the import sets is needed: turning it off breaks the match."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.importer import lerobot_smolvla as fixture
from vla.importer import import_policy
from vla.model.vla import VLAModel

B = 2
RTOL = 1e-4  # max |Δ| <= RTOL * max(1, |a|)


@pytest.fixture(scope="module")
def pair(smolvla_source: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    source, policy = smolvla_source
    output = tmp_path_factory.mktemp("imported") / "smolvla"
    pre, post = fixture.load_processors(source)
    import_policy(source, output)
    ours = VLAModel.from_pretrained(output).eval()
    return {"policy": policy, "pre": pre, "post": post, "ours": ours, "source": source}


def _theirs_chunk(pair: dict[str, Any], batch: dict[str, Any], noise: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        pair["policy"].reset()
        actions = pair["policy"].predict_action_chunk(pair["pre"](dict(batch)), noise=noise.clone())
        return pair["post"](actions)


def _error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |Δ| in units of the tolerance's scale max(1, |a|)."""
    return float((ours - theirs).abs().max() / max(1.0, float(theirs.abs().max())))


def test_imported_chunk_equals_lerobots_cached_and_uncached(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=3)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(4))
    theirs = _theirs_chunk(pair, batch, noise)
    assert theirs.shape == (B, fixture.CHUNK, fixture.ACTION_DIM)
    assert float(theirs.std()) > 0.3  # a large-gain model: actions far from constant
    for cached in (True, False):
        ours = pair["ours"].sample_actions(dict(batch), noise=noise.clone(), use_cache=cached)
        err = _error(ours, theirs)
        print(f"chunk max|Δ|/max(1,|a|) cached={cached}: {err:.2e}")
        assert err <= RTOL, (cached, err)


def test_cameras_of_different_sizes_match_too(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=11)
    batch["observation.images.wrist"] = torch.rand(B, 3, 30, 20, generator=torch.Generator().manual_seed(12))
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(13))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL


def test_a_missing_camera_is_masked_as_lerobot_drops_it(pair: dict[str, Any]) -> None:
    batch = fixture.observation(B, seed=9)
    del batch["observation.images.wrist"]
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(10))
    theirs = _theirs_chunk(pair, batch, noise)
    ours = pair["ours"].sample_actions(dict(batch), noise=noise.clone())
    assert _error(ours, theirs) <= RTOL
    black = dict(batch, **{"observation.images.wrist": torch.zeros(B, 3, *fixture.FRAME)})
    assert _error(pair["ours"].sample_actions(black, noise=noise.clone()), theirs) > 100 * RTOL


def test_imported_training_loss_equals_lerobots(pair: dict[str, Any]) -> None:
    g = torch.Generator().manual_seed(5)
    batch = fixture.observation(B, seed=6)
    batch["action"] = torch.randn(B, fixture.CHUNK, fixture.ACTION_DIM, generator=g) * 2.0
    batch["action_is_pad"] = torch.zeros(B, fixture.CHUNK, dtype=torch.bool)
    batch["action_is_pad"][1, 4:] = True
    noise = torch.randn(B, fixture.CHUNK, 8, generator=g)
    time = torch.tensor([0.3, 0.85])
    with torch.no_grad():
        theirs, _ = pair["policy"].forward(pair["pre"](dict(batch)), noise=noise.clone(), time=time.clone())
        inputs = pair["ours"].prepare_inputs(dict(batch), training=True)
        ours = pair["ours"].loss_from_inputs(inputs, noise=noise.clone(), t=time.clone())["loss"]
    err = abs(float(ours) - float(theirs)) / max(1.0, abs(float(theirs)))
    print(f"loss {float(theirs):.6f} vs {float(ours):.6f}: relative {err:.2e}")
    assert err <= RTOL


def _variant(ours: VLAModel, field: str, value: Any) -> VLAModel:
    """The imported model with one config field changed, same weights."""
    config = copy.deepcopy(ours.config)
    node: Any = config
    *path, name = field.split(".")
    for part in path:
        node = getattr(node, part)
    setattr(node, name, value)
    model = VLAModel(
        config,
        stats=ours.stats,
        text_tokenizer=ours.text_tokenizer,
        backbone_hf_config=ours.backbone.hf_config,
    )
    model.load_state_dict(ours.state_dict())
    return model.eval()


@pytest.mark.parametrize(
    ("field", "off"),
    [
        ("expert.self_attn_every", 1),  # every expert layer joint instead of every other one cross
        ("causal_actions", False),
        ("backbone.embed_scale", False),
        ("backbone.fixed_rope_theta", None),  # the VLM config's own θ (1e5)
        ("expert.llama_norm", False),
        ("backbone.image_resize", "default"),
        ("prompt_format", "bos_task"),
    ],
)
def test_each_import_option_is_needed(pair: dict[str, Any], field: str, off: Any) -> None:
    batch = fixture.observation(B, seed=7)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(8))
    theirs = _theirs_chunk(pair, batch, noise)
    assert _error(pair["ours"].sample_actions(dict(batch), noise=noise.clone()), theirs) <= RTOL
    broken = _variant(pair["ours"], field, off).sample_actions(dict(batch), noise=noise.clone())
    err = _error(broken, theirs)
    print(f"{field}={off!r}: max|Δ|/max(1,|a|) {err:.2e}")
    assert err > 100 * RTOL, (field, err)


def test_the_import_reads_only_json_and_safetensors(pair: dict[str, Any]) -> None:
    source: Path = pair["source"]
    kinds = {p.suffix for p in source.iterdir()}
    assert kinds <= {".json", ".safetensors"}, kinds
