"""openpi's PyTorch π0 / π0.5 checkpoints. openpi cannot be installed here, so each test writes an openpi
checkpoint dir from a tiny LeRobot policy (re-randomised at a large gain) as openpi lays one out:

- model.safetensors: LeRobot's names without `model.` (openpi's PI0Pytorch tree, which LeRobot ported:
  src/openpi/models_pytorch/pi0_pytorch.py, gemma_pytorch.py; the names
  examples/convert_jax_model_to_pytorch.py writes), saved as safetensors' `save_model` saves tied tensors:
  the token embedding only under the first name in sorted order, `paligemma_with_expert.paligemma.lm_head.weight`
- config.json: the converter's fields (action_dim, action_horizon, paligemma_variant, action_expert_variant,
  precision); a train_pytorch.py checkpoint has none
- assets/<asset_id>/norm_stats.json: {"norm_stats": {"state": {mean, std, q01, q99}, "actions": …}}
  (src/openpi/shared/normalize.py)

The import must give LeRobot's own chunk for the same weights, and the same model as the LeRobot import.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.importer import lerobot_pi0 as fixture
from tests.importer.test_import_parts import REPO
from tests.importer.test_import_smolvla import RTOL, _error, _theirs_chunk
from vla.importer import import_policy
from vla.importer.errors import CheckpointImportError
from vla.importer.lerobot import read_processors
from vla.importer.openpi import OpenpiOptions, is_openpi_dir, read_norm_stats
from vla.model.normalize import Normalizer
from vla.model.vla import VLAModel

B = 2
EMBED = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
LM_HEAD = "paligemma_with_expert.paligemma.lm_head.weight"
CAMERAS = ["top", "wrist"]  # the fixture's cameras as openpi's base_0_rgb, left_wrist_0_rgb


def write_openpi_dir(
    lerobot_dir: Path,
    out: Path,
    *,
    asset_id: str = "trossen",
    config: bool = True,
    tied: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """An openpi checkpoint dir holding the LeRobot policy's weights (cast to `dtype`: the converter's
    default precision is bfloat16) and stats."""
    weights = {
        k.removeprefix("model."): v.to(dtype)
        for k, v in load_file(str(lerobot_dir / "model.safetensors")).items()
    }
    if tied:  # save_model keeps a tied tensor once, under its first name in sorted order
        weights[LM_HEAD] = weights.pop(EMBED)
    out.mkdir(parents=True)
    save_file(weights, str(out / "model.safetensors"))
    lerobot_config = json.loads((lerobot_dir / "config.json").read_text())
    if config:
        (out / "config.json").write_text(
            json.dumps(
                {
                    "action_dim": lerobot_config["max_action_dim"],
                    "action_horizon": lerobot_config["chunk_size"],
                    "paligemma_variant": "gemma_2b",
                    "action_expert_variant": "gemma_300m",
                    "precision": "float32",
                }
            )
        )
    stats, _, _ = read_processors(lerobot_dir)
    norm_stats = {
        theirs: {k: stats[ours][k].tolist() for k in ("mean", "std", "q01", "q99") if k in stats[ours]}
        for theirs, ours in (("state", "observation.state"), ("actions", "action"))
    }
    (out / "assets" / asset_id).mkdir(parents=True)
    (out / "assets" / asset_id / "norm_stats.json").write_text(json.dumps({"norm_stats": norm_stats}))
    return out


def _options(source: Path, **changes: Any) -> OpenpiOptions:
    lerobot_config = json.loads((source / "config.json").read_text())
    fields = {
        "cameras": CAMERAS,
        "max_token_len": lerobot_config["tokenizer_max_length"],
        "num_steps": lerobot_config["num_inference_steps"],
    }
    return OpenpiOptions(**(fields | changes))


@pytest.fixture(scope="module", params=["pi0", "pi05"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    source, policy = request.getfixturevalue(f"{request.param}_source")
    root = tmp_path_factory.mktemp(f"openpi_{request.param}")
    openpi_dir = write_openpi_dir(source, root / "openpi")
    tokenizer = str(source.parent / "tokenizer")
    summary = import_policy(openpi_dir, root / "ours", tokenizer, _options(source))
    import_policy(source, root / "via_lerobot")
    pre, post = fixture.load_processors(source)
    return {
        "policy": policy,
        "pre": pre,
        "post": post,
        "ours": VLAModel.from_pretrained(root / "ours").eval(),
        "via_lerobot": VLAModel.from_pretrained(root / "via_lerobot").eval(),
        "summary": summary,
        "source": source,
        "openpi": openpi_dir,
        "family": request.param,
    }


def test_imported_chunk_equals_lerobots_and_the_lerobot_import(pair: dict[str, Any]) -> None:
    assert pair["summary"].family == f"openpi {pair['family']}"
    batch = fixture.observation(B, seed=3)
    noise = torch.randn(B, fixture.CHUNK, 8, generator=torch.Generator().manual_seed(4))
    theirs = _theirs_chunk(pair, batch, noise)
    assert float(theirs.std()) > 0.3  # a large-gain model: actions far from constant
    via_lerobot = pair["via_lerobot"].sample_actions(dict(batch), noise=noise.clone())
    for cached in (True, False):
        ours = pair["ours"].sample_actions(dict(batch), noise=noise.clone(), use_cache=cached)
        err, err_import = _error(ours, theirs), _error(ours, via_lerobot)
        print(
            f"openpi {pair['family']} cached={cached}: vs LeRobot {err:.2e}, vs its import {err_import:.2e}"
        )
        assert err <= RTOL and err_import <= RTOL, (cached, err, err_import)


def test_the_weights_are_the_lerobot_imports(pair: dict[str, Any]) -> None:
    ours, via = pair["ours"].state_dict(), pair["via_lerobot"].state_dict()
    assert set(ours) == set(via)
    differ = [k for k in ours if not k.startswith("normalizer.") and not torch.equal(ours[k], via[k])]
    assert differ == []
    assert pair["ours"].config.cameras == ["top", "wrist"]
    assert pair["ours"].config.normalization == ("quantile" if pair["family"] == "pi05" else "mean_std")


def test_an_untied_bf16_checkpoint_gives_the_same_weights_rounded(
    pi0_source: tuple[Path, Any], tmp_path: Path
) -> None:
    source = pi0_source[0]
    tokenizer = str(source.parent / "tokenizer")
    tied = write_openpi_dir(source, tmp_path / "tied")
    untied = write_openpi_dir(source, tmp_path / "untied", tied=False, dtype=torch.bfloat16)
    saved = load_file(str(untied / "model.safetensors"))  # both, as LeRobot saved them: the head is ignored
    assert EMBED in saved and LM_HEAD in saved and EMBED not in load_file(str(tied / "model.safetensors"))
    import_policy(tied, tmp_path / "a", tokenizer, _options(source))
    import_policy(untied, tmp_path / "b", tokenizer, _options(source))
    a = VLAModel.from_pretrained(tmp_path / "a").state_dict()
    b = VLAModel.from_pretrained(tmp_path / "b").state_dict()
    assert torch.equal(
        a["backbone.embed_tokens.weight"].bfloat16().float(), b["backbone.embed_tokens.weight"]
    )
    assert all(torch.equal(a[k].bfloat16().float(), b[k]) for k in a if not k.startswith("normalizer."))
    assert not torch.equal(a["backbone.embed_tokens.weight"], b["backbone.embed_tokens.weight"])


@pytest.mark.parametrize("quantile", [False, True])
def test_norm_stats_fold_openpis_epsilon_exactly(tmp_path: Path, quantile: bool) -> None:
    g = np.random.default_rng(0)
    entry = {
        "mean": g.normal(size=5),
        "std": g.uniform(0.1, 2, 5),
        "q01": g.uniform(-3, -1, 5),
        "q99": g.uniform(1, 3, 5),
    }
    (tmp_path / "assets" / "franka").mkdir(parents=True)
    (tmp_path / "assets" / "franka" / "norm_stats.json").write_text(
        json.dumps(
            {"norm_stats": {k: {n: v.tolist() for n, v in entry.items()} for k in ("state", "actions")}}
        )
    )
    stats = read_norm_stats(tmp_path, None, quantile)
    normalizer = Normalizer(stats, "quantile" if quantile else "mean_std", 8, 8)
    x = torch.tensor(g.normal(size=(3, 5)) * 2)
    # openpi's transforms.Normalize / Unnormalize
    if quantile:
        q01, q99 = torch.tensor(entry["q01"]), torch.tensor(entry["q99"])
        want = (x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0
        back = (x + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
    else:
        mean, std = torch.tensor(entry["mean"]), torch.tensor(entry["std"])
        want, back = (x - mean) / (std + 1e-6), x * (std + 1e-6) + mean
    assert torch.allclose(normalizer.normalize_state(x).double(), want, atol=1e-5, rtol=0)
    assert torch.allclose(normalizer.unnormalize_action(x).double(), back, atol=1e-5, rtol=0)
    assert not torch.allclose(normalizer.normalize_state(x).double(), x, atol=1e-2)


def test_an_openpi_dir_is_told_from_a_lerobot_dir(pi0_source: tuple[Path, Any], tmp_path: Path) -> None:
    source = pi0_source[0]
    assert not is_openpi_dir(source)  # LeRobot's config.json names its `type`
    assert is_openpi_dir(write_openpi_dir(source, tmp_path / "converted"))
    trained = write_openpi_dir(
        source, tmp_path / "trained", config=False, asset_id="physical-intelligence/libero"
    )
    assert is_openpi_dir(trained)  # train_pytorch.py: no config.json, its stats under a repo-id asset
    shutil.rmtree(trained / "assets")
    assert not is_openpi_dir(trained)


def test_options_reach_the_config(pi05_source: tuple[Path, Any], tmp_path: Path) -> None:
    source = pi05_source[0]
    trained = write_openpi_dir(
        source, tmp_path / "trained", config=False, asset_id="physical-intelligence/libero"
    )
    (trained / "assets" / "droid").mkdir()
    shutil.copy(
        trained / "assets" / "physical-intelligence/libero/norm_stats.json", trained / "assets" / "droid"
    )
    options = _options(
        source,
        asset_id="droid",
        action_horizon=4,
        max_token_len=30,
        num_steps=2,
        use_quantile_norm=False,
        cameras=["", "wrist", "right"],
    )
    config = import_policy(trained, tmp_path / "out", str(source.parent / "tokenizer"), options).config
    assert (config.chunk_size, config.max_text_tokens, config.num_steps) == (4, 30, 2)
    assert config.normalization == "mean_std" and config.cameras == ["wrist", "right"]
    assert (config.state_dim, config.action_dim) == (fixture.STATE_DIM, fixture.ACTION_DIM)
    defaults = OpenpiOptions(asset_id="droid", action_horizon=4)
    config = import_policy(trained, tmp_path / "out2", str(source.parent / "tokenizer"), defaults).config
    assert config.max_text_tokens == 200 and config.num_steps == 10 and config.normalization == "quantile"
    assert config.cameras == ["base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"]


@pytest.mark.parametrize(
    ("layout", "changes", "message"),
    [
        ({"config": False}, {}, "pass openpi.action_horizon="),
        ({}, {"discrete_state_input": False}, "openpi.discrete_state_input=false"),
        ({}, {"cameras": ["a", "b", "c", "d"]}, "openpi.cameras=['a', 'b', 'c', 'd']: one to three distinct"),
        ({}, {"asset_id": "ur5e"}, "openpi.asset_id=ur5e: no "),
        ({"stats_without": "q01"}, {}, "norm_stats.state has no ['q01']"),
        ({"second_asset": "droid"}, {"asset_id": None}, "pass openpi.asset_id=<one>"),
        ({"drop_weight": "time_mlp_in.weight"}, {}, "neither time_mlp_in (π0.5) nor action_time_mlp_in (π0)"),
        (
            {"add_weight": "fast_head.weight"},
            {},
            "the openpi key table does not know, e.g. ['fast_head.weight']",
        ),
        ({"state_dims": 9}, {}, "observation.state has 9 dims, more than the model's action_dim 8"),
    ],
)
def test_what_is_missing_or_unsupported_is_named(
    pi05_source: tuple[Path, Any],
    tmp_path: Path,
    layout: dict[str, Any],
    changes: dict[str, Any],
    message: str,
) -> None:
    source = pi05_source[0]
    openpi_dir = write_openpi_dir(source, tmp_path / "openpi", config=layout.get("config", True))
    stats_file = openpi_dir / "assets" / "trossen" / "norm_stats.json"
    if "stats_without" in layout:
        data = json.loads(stats_file.read_text())
        del data["norm_stats"]["state"][layout["stats_without"]]
        stats_file.write_text(json.dumps(data))
    if "state_dims" in layout:
        data = json.loads(stats_file.read_text())
        data["norm_stats"]["state"] = {k: [0.5] * layout["state_dims"] for k in ("mean", "std", "q01", "q99")}
        stats_file.write_text(json.dumps(data))
    weights = load_file(str(openpi_dir / "model.safetensors"))
    if "drop_weight" in layout:
        del weights[layout["drop_weight"]]
    if "add_weight" in layout:
        weights[layout["add_weight"]] = torch.zeros(2)
    save_file(weights, str(openpi_dir / "model.safetensors"))
    if "second_asset" in layout:
        (openpi_dir / "assets" / layout["second_asset"]).mkdir()
        shutil.copy(stats_file, openpi_dir / "assets" / layout["second_asset"])
    with pytest.raises(CheckpointImportError, match=re.escape(message)):
        import_policy(
            openpi_dir, tmp_path / "out", str(source.parent / "tokenizer"), _options(source, **changes)
        )
    assert not (tmp_path / "out").exists()


def test_openpi_options_with_a_lerobot_source_are_refused(
    pi0_source: tuple[Path, Any], tmp_path: Path
) -> None:
    with pytest.raises(CheckpointImportError, match=r"openpi\.\* options apply to openpi checkpoints only"):
        import_policy(pi0_source[0], tmp_path / "out", None, OpenpiOptions(num_steps=3))


def _app(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vla.apps.import_policy", *args],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "openpi.discrete_state_input=true",
            "openpi.discrete_state_input=true (π0 with the state in its prompt)",
        ),
        (
            "openpi.cameras=[top,'',top]",
            "openpi.cameras=['top', '', 'top']: one to three distinct names",
        ),
    ],
)
def test_the_app_reads_openpi_options_and_refuses_in_one_line(
    pi0_source: tuple[Path, Any], tmp_path: Path, option: str, message: str
) -> None:
    openpi_dir = write_openpi_dir(pi0_source[0], tmp_path / "openpi", tied=False)
    proc = _app(tmp_path, f"source={openpi_dir}", "output=out", "openpi.num_steps=3", option)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vla-import: error: {message}"), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["openpi"]  # no output, no log file
