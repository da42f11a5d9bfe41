"""bench/bench_peers.py on its CPU-cheap pair: our tiny VLA against LeRobot's SmolVLA on the same tiny config,
through the real driver -> worker subprocess path, 1 thread, 1 warm-up, 2 timed runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import bench_peers, peers_ours


def test_tiny_pair_against_lerobot_smolvla(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lerobot")
    out = tmp_path / "peers.json"
    argv = ["--pairs", "tiny", "--threads", "1", "--warmup", "1", "--runs", "2", "--out", str(out)]
    assert bench_peers.main(argv) == 0

    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["dtype"] == "float32" and report["torch_threads"] == 1
    assert report["lerobot"] and report["torch"] and report["transformers"]
    assert list(report["pairs"]) == ["tiny"]
    entry = report["pairs"]["tiny"]
    assert "errors" not in entry
    assert entry["torch_threads"] == 1
    config = entry["config"]
    assert config["chunk_size"] == 50 and config["num_steps"] == 10 and config["cameras"] == 2
    assert config["text_tokens"] >= config["text_valid_tokens"] > 0

    variants = entry["variants"]
    assert set(variants) == {"ours", "ours_math", "theirs"}  # no CUDA graph row on the CPU
    for name, v in variants.items():
        assert v["chunk_shape"] == [1, 50, 6], name
        assert v["runs"] == 2, name
        assert 0 < v["min_ms"] <= v["median_ms"] <= v["p90_ms"], name
        assert v["params_m"] > 0, name
    ours, theirs = variants["ours"], variants["theirs"]
    assert ours["attention"].startswith("sdpa") and variants["ours_math"]["attention"].startswith("math")
    assert theirs["attention"].startswith("eager")
    assert theirs["model"] == "LeRobot SmolVLAPolicy"

    # equal configuration: same backbone depth and expert width, parameter counts within ±30 %
    assert ours["backbone_layers"] == theirs["vlm_layers"] == 4
    assert ours["expert_width"] == theirs["expert_width"] == 96
    assert 0.7 <= theirs["params_m"] / ours["params_m"] <= 1.3
    assert entry["params_ratio_theirs_over_ours"] == pytest.approx(
        theirs["params_m"] / ours["params_m"], 1e-2
    )

    # the speed-up is their median over ours, and the goal flag follows it
    assert entry["speedup"] == pytest.approx(theirs["median_ms"] / ours["median_ms"], abs=0.01)
    assert ours["meets_goal"] == (theirs["median_ms"] / ours["median_ms"] >= 2.0)

    table = capsys.readouterr().out
    assert "| tiny | ours | sdpa |" in table and "| tiny | LeRobot | eager |" in table


def test_bad_pair_and_missing_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert bench_peers.main(["--pairs", "tiny,nope", "--out", str(tmp_path / "x.json")]) == 1
    monkeypatch.setattr(bench_peers, "REQUIRED", ("torch", "no_such_package_xyz"))
    assert (
        bench_peers.main(["--pairs", "tiny", "--out", str(tmp_path / "x.json")]) == bench_peers.EXIT_MISSING
    )
    assert not (tmp_path / "x.json").exists()


def test_memory_check_fails_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    shared = peers_ours  # where check_memory looks the free memory up
    monkeypatch.setattr(shared, "meminfo_available", lambda: 4 * shared.GIB)
    with pytest.raises(shared.BenchError) as err:
        bench_peers.check_memory("LeRobot pi0", 18 * shared.GIB, torch.device("cpu"))
    assert err.value.code == shared.EXIT_MEMORY
    assert "needs ~18.0 GiB" in str(err.value) and "\n" not in str(err.value)
    assert bench_peers.check_memory("tiny", shared.GIB, torch.device("cpu"))["free_gib"] == 4.0


def test_a_failing_variant_is_dropped_not_fatal() -> None:
    import torch

    calls_made: list[str] = []

    def good() -> torch.Tensor:
        calls_made.append("good")
        return torch.zeros(1, 50, 6)

    def bad() -> torch.Tensor:
        raise RuntimeError("capture failed")

    errors: dict[str, str] = {}
    times, outputs = bench_peers.interleaved({"good": good, "bad": bad}, torch.device("cpu"), 3, 1, errors)
    assert list(times) == ["good"] and len(times["good"]) == 3 and len(calls_made) == 4
    assert errors == {"bad": "RuntimeError: capture failed"}
    assert tuple(outputs["good"].shape) == (1, 50, 6)
