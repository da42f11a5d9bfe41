"""bench/side_by_side.py on a few `touch` demonstrations: data, each contestant's training and evaluation."""

from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import pytest

from bench import grounding
from bench import side_by_side as sbs


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sbs")
    path = sbs.record("touch", 3, root)  # vla-record, PNG frames
    return sbs.Frames.load(path, "local/touch")


def test_task_rule_and_expansion() -> None:
    from envs.metaworld import DIFFICULTY

    tasks = sbs.expand_tasks("touch,easy:5")
    assert tasks[0] == "touch" and len(tasks) == 6 and len(set(tasks)) == 6
    assert tasks[1] == DIFFICULTY["easy"][0] and all(t in DIFFICULTY["easy"] for t in tasks[1:])
    assert sbs.robot_name("touch") == "sim" and sbs.robot_name("reach-v3") == "metaworld"


def test_lr_shape() -> None:
    assert sbs.lr_shape(0.0) == pytest.approx(1 / (1000 * sbs.WARMUP_FRACTION))
    assert sbs.lr_shape(sbs.WARMUP_FRACTION) == pytest.approx(1.0)
    assert sbs.lr_shape(1.0) == pytest.approx(sbs.MIN_LR_RATIO)
    values = [sbs.lr_shape(p) for p in np.linspace(sbs.WARMUP_FRACTION, 1.0, 20)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # decays monotonically


def test_batches_match_the_dataset(frames) -> None:
    n = len(frames.state)
    assert frames.episodes == 3 and n == int(frames.end.max())
    last = int(frames.end[0]) - 1  # the last frame of episode 0
    idx = np.array([0, last, int(frames.start[-1])])
    b = frames.batch(idx, horizon=5)
    assert tuple(b["action"].shape) == (3, 5, 6) and tuple(b["observation.state"].shape) == (3, 6)
    np.testing.assert_allclose(b["action"][0].numpy(), frames.action[0:5])
    # past an episode's end: padded with its last action and flagged
    assert b["action_is_pad"][1].tolist() == [False, True, True, True, True]
    np.testing.assert_allclose(b["action"][1].numpy(), np.repeat(frames.action[last][None], 5, 0))
    img = b["observation.images.front"]
    assert tuple(img.shape) == (3, 3, 96, 96) and img.dtype.is_floating_point
    np.testing.assert_allclose(
        img[0].permute(1, 2, 0).numpy() * 255, frames.images["observation.images.front"][0]
    )
    # two observation steps (Diffusion): t-1 clamped at an episode start, actions from t-1
    h = frames.batch(np.array([0, 5]), horizon=4, obs_steps=2)
    assert tuple(h["observation.state"].shape) == (2, 2, 6)
    assert h["observation.state_is_pad"].tolist() == [[True, False], [False, False]]
    np.testing.assert_allclose(h["observation.state"][1].numpy(), frames.state[4:6])
    assert h["action_is_pad"][0].tolist() == [True, False, False, False]
    np.testing.assert_allclose(h["action"][1].numpy(), frames.action[4:8])


@pytest.mark.slow
@pytest.mark.parametrize("name", sbs.METHODS)
def test_each_method_trains_and_is_evaluated(frames, name: str) -> None:
    import torch

    torch.set_num_threads(1)
    args = argparse.Namespace(act_lr=1e-4)
    method = sbs.make_method(name, frames, args)
    assert method.num_parameters() > 1e6
    before = {n: p.detach().clone() for n, p in list(method.model.named_parameters())[:50]}
    train = sbs.train_for(method, 2.0, seed=0)
    assert train["steps"] >= 1 and train["seconds"] >= 2.0 and math.isfinite(train["final_loss"])
    changed = [n for n, p in list(method.model.named_parameters())[:50] if not torch.equal(p, before[n])]
    assert changed, "no parameter moved"
    result = sbs.evaluate(method, "touch", episodes=1)
    assert len(result["episodes_detail"]) == 1 and result["episodes_detail"][0]["seed"] == sbs.EVAL_SEED
    assert 1 <= result["episodes_detail"][0]["steps"] <= 100
    assert result["inference_ms"]["calls"] >= 1


@pytest.mark.slow
def test_evaluation_repeats_exactly_for_a_sampling_policy(frames, monkeypatch: pytest.MonkeyPatch) -> None:
    """Diffusion Policy draws its noise from torch's global generator: evaluate() seeds it, so two
    evaluations of one model see the same chunks (the first one's sampling leaves no trace)."""
    import torch

    torch.set_num_threads(1)
    method = sbs.make_method("diffusion", frames, argparse.Namespace(act_lr=1e-4))
    seen: list[np.ndarray] = []
    inner = sbs.TimedPolicy.select_chunk
    monkeypatch.setattr(
        sbs.TimedPolicy, "select_chunk", lambda self, obs: seen.append(inner(self, obs)) or seen[-1]
    )
    first = sbs.evaluate(method, "touch", episodes=1)
    calls = len(seen)
    torch.randn(7)  # move the global generator on
    second = sbs.evaluate(method, "touch", episodes=1)
    assert calls >= 2 and len(seen) == 2 * calls
    for a, b in zip(seen[:calls], seen[calls:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert first["episodes_detail"][0]["steps"] == second["episodes_detail"][0]["steps"]


def test_lerobot_policy_acts_in_robot_units(frames) -> None:
    """LeRobot's ACT through our Policy protocol: one action per call, unnormalised to joint degrees."""
    import torch

    torch.set_num_threads(1)
    act = sbs.make_method("act", frames, argparse.Namespace(act_lr=1e-4))
    policy = act.policy(None)
    policy.reset("touch the red cube")
    obs = {k: frames.images[k][0] for k in frames.cameras}
    obs["observation.state"] = frames.state[0]
    chunk = policy.select_chunk(obs)
    assert chunk.shape == (1, 6) and np.isfinite(chunk).all()
    # normalisation from the dataset's stats: a random network's output lands near the data's scale
    spread = frames.action.std(0).max() * 50 + np.abs(frames.action).max()
    assert np.abs(chunk).max() < spread


def test_table_verdicts() -> None:
    def result(task: str, method: str, wins: int) -> dict:
        details = [{"success": i < wins} for i in range(10)]
        return {
            "task": task,
            "method": method,
            "train": {"steps": 100},
            "eval": {"success_rate": wins / 10, "episodes_detail": details},
        }

    rows = [result("a", "ours", 5), result("a", "act", 3), result("a", "diffusion", 5)]
    rows += [result("b", "ours", 2), result("b", "act", 4), result("b", "diffusion", 0)]
    md, verdicts = sbs.table(rows, ["a", "b"], list(sbs.METHODS))
    assert verdicts["per_task"] == {"a": True, "b": False}
    assert verdicts["mean_success"]["ours"] == pytest.approx(0.35)
    assert "| a | 5/10 (100 steps) | 3/10 (100 steps) | 5/10 (100 steps) | ✔ |" in md
    # a second training seed pools its episodes with the first: b is now 2+7 vs 4+4
    md, verdicts = sbs.table(
        [*rows, result("b", "ours", 7), result("b", "act", 4)], ["a", "b"], ["ours", "act"]
    )
    assert verdicts["per_task"] == {"a": True, "b": True}
    assert "| b | 9/20 (100 steps) | 8/20 (100 steps) | ✔ |" in md
    assert sbs.job_name("a", "ours", 0) == "a__ours" and sbs.job_name("a", "ours", 2) == "a__ours__s2"


@pytest.mark.slow
def test_a_job_keeps_its_weights_and_reeval_uses_them(frames, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_job saves the trained weights; --reeval loads exactly those and keeps the training record."""
    import json
    from pathlib import Path

    import torch

    root = Path(frames.root).parents[1]
    args = argparse.Namespace(
        root=str(root), budget=1.0, seed=3, reeval=False, device="cpu", act_lr=1e-4, ours_model="tiny",
        eval_episodes=1, so101_eval_episodes=1,
    )  # fmt: skip
    evaluated = []
    monkeypatch.setattr(sbs, "evaluate", lambda method, task, episodes: evaluated.append(method) or {"n": 1})
    first = sbs.run_job("touch", "ours", args)
    weights = root / "weights" / "touch__ours__s3.pt"
    assert first["train_seed"] == 3 and first["train"]["steps"] >= 1 and weights.is_file()
    (root / "jobs").mkdir(exist_ok=True)
    (root / "jobs" / "touch__ours__s3.json").write_text(json.dumps(first))
    args.reeval = True
    again = sbs.run_job("touch", "ours", args)
    assert again["train"] == first["train"] and again["previous_evals"] == [first["eval"]]
    saved = torch.load(weights, weights_only=True)
    loaded = evaluated[1].model.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    torch.manual_seed(3)  # the job's initial weights: reeval must not have left them in place
    initial = sbs.make_method("ours", frames, args).model.state_dict()
    assert any(not torch.equal(initial[k], loaded[k]) for k in saved)


def test_grounding_share_counts_the_cube_touched_first() -> None:
    rows = [
        {"target": "red", "first": "red", "success": True},
        {"target": "red", "first": "blue", "success": True},  # touched blue, then red
        {"target": "green", "first": None, "success": False},
        {"target": "blue", "first": "green", "success": False},
    ]
    s = grounding.summarise(rows)
    assert (s["episodes"], s["success"], s["touched_any"], s["touched_named_first"]) == (4, 2, 3, 1)
    assert s["named_share_of_touches"] == pytest.approx(1 / 3)
    assert grounding.summarise([rows[2]])["named_share_of_touches"] is None


@pytest.mark.slow
def test_grounding_runs_a_kept_model(frames) -> None:
    """A briefly trained `ours`: episodes report a target and the first cube touched; the probe's
    distances are finite, and a different noise draw moves an untrained chunk."""
    import torch

    torch.set_num_threads(1)
    method = sbs.make_method("ours", frames, argparse.Namespace(act_lr=1e-4))
    sbs.train_for(method, 1.0, seed=0)
    rows = grounding.first_touches(method, episodes=1, seed0=sbs.EVAL_SEED)
    assert len(rows) == 1 and rows[0]["target"] in ("red", "green", "blue")
    assert rows[0]["first"] in (None, "red", "green", "blue")
    effect = grounding.instruction_effect(method, episodes=1, seed0=sbs.EVAL_SEED)
    assert effect["between_noise_deg"] > 0 and np.isfinite(effect["between_words_deg"])
