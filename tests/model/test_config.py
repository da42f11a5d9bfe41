"""Model configs: the YAML files, validation, and the full-size models on the meta device."""

from __future__ import annotations

import pytest
import torch

from vla.model import VLAModel
from vla.model.config import ModelConfigError, VLAConfig, load_config


@pytest.mark.parametrize("name", ["tiny", "smolvla", "pi0", "fast"])
def test_every_yaml_config_loads_against_the_schema(name: str) -> None:
    cfg = load_config(name)
    assert isinstance(cfg, VLAConfig)
    assert VLAConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ModelConfigError, match=r"backbone\.hiden"):
        load_config("tiny", ["backbone.hiden=3"])
    with pytest.raises(ModelConfigError, match=r"model\.head"):
        load_config("tiny", ["head=diffusion"])
    with pytest.raises(ModelConfigError, match=r"model\.cameras"):
        load_config("tiny", ["cameras=[a,b,c,d]"])
    with pytest.raises(ModelConfigError, match="unknown model config"):
        VLAConfig.from_dict({"chunk": 3})


@pytest.mark.parametrize(
    ("name", "low", "high", "tokens", "expert_width"),
    [("smolvla", 350e6, 500e6, 64, 720), ("pi0", 3.0e9, 3.6e9, 256, 1024)],
)
def test_full_size_configs_build_on_the_meta_device(
    name: str, low: float, high: float, tokens: int, expert_width: int
) -> None:
    with torch.device("meta"):
        model = VLAModel(load_config(name))
    assert next(model.parameters()).device.type == "meta"  # nothing allocated
    assert low < model.num_parameters() < high
    assert model.backbone.tokens_per_image == tokens
    assert model.flow is not None and model.flow.expert.width == expert_width
    assert len(model.flow.expert.layers) == len(model.backbone.layers)
    if name == "smolvla":
        assert len(model.backbone.layers) == 16  # 32 cut to 16
        assert model.backbone.num_kv_heads == 5 and model.backbone.head_dim == 64
    else:
        assert model.backbone.num_kv_heads == 1 and model.backbone.head_dim == 256
