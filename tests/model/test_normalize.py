"""Normalisation from LeRobot-style stats: both modes round-trip; degenerate stats are handled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.model.config import ModelConfigError
from vla.model.normalize import Normalizer, stats_from_flat, stats_to_flat

from .helpers import toy_stats


@pytest.mark.parametrize("mode", ["mean_std", "quantile"])
def test_round_trip(mode: str) -> None:
    stats = toy_stats()
    norm = Normalizer(stats, mode, max_state_dim=8, max_action_dim=8)
    action = torch.randn(4, 3, 5) * 5
    torch.testing.assert_close(norm.unnormalize_action(norm.normalize_action(action)), action)
    assert norm.state_dim == 6 and norm.action_dim == 5


def test_modes_map_the_right_statistics() -> None:
    stats = toy_stats()
    a = stats["action"]
    q = Normalizer(stats, "quantile", 8, 8)
    lo, hi = torch.tensor(a["q01"]).float(), torch.tensor(a["q99"]).float()
    torch.testing.assert_close(q.normalize_action(lo), -torch.ones(5))
    torch.testing.assert_close(q.normalize_action(hi), torch.ones(5))
    m = Normalizer(stats, "mean_std", 8, 8)
    mean, std = torch.tensor(a["mean"]).float(), torch.tensor(a["std"]).float()
    torch.testing.assert_close(m.normalize_action(mean + std), torch.ones(5))


def test_constant_dims_and_missing_stats() -> None:
    stats = toy_stats()
    stats["action"]["std"][2] = 0.0  # a joint that never moved
    norm = Normalizer(stats, "mean_std", 8, 8)
    out = norm.normalize_action(torch.tensor(stats["action"]["mean"]).float() + 1.0)
    assert torch.isfinite(out).all() and out[2] == pytest.approx(1.0)
    identity = Normalizer(None, "quantile", 8, 8)
    x = torch.randn(3, 8)
    torch.testing.assert_close(identity.normalize_state(x), x)
    with pytest.raises(ModelConfigError, match="q01"):
        Normalizer({"action": {"mean": np.zeros(3), "std": np.ones(3)}}, "quantile", 8, 8)
    with pytest.raises(ModelConfigError, match="max_action_dim"):
        Normalizer(toy_stats(action_dim=9), "mean_std", 8, 8)


def test_stats_survive_the_flat_safetensors_form() -> None:
    stats = toy_stats()
    back = stats_from_flat(stats_to_flat(stats))
    for feature, entries in stats.items():
        for name, value in entries.items():
            np.testing.assert_array_equal(back[feature][name], value)
