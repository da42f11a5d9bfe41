"""bench/gpu_model.py in its CPU smoke mode, so the GPU script is exercised without a GPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*Profiler clears events")
def test_gpu_bench_smoke_mode_runs_on_cpu(tmp_path: Path) -> None:
    from bench import gpu_model as module

    out = tmp_path / "model_gpu.json"
    assert (
        module.main(["--device", "cpu", "--tiny", "--runs", "2", "--cameras", "1,2", "--out", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    one = report["results"]["tiny"]["1cam"]
    assert one["eager"]["median_ms"] > 0 and one["eager_nocache"]["median_ms"] > 0
    assert one["eager_nocache"]["max_abs_diff_vs_first"] < 1e-4  # cached == uncached
    assert "cudagraph" not in one  # CUDA-only variants are skipped on CPU
    assert "tick_to_action_eager" not in one  # measured with all the config's cameras only
    both = report["results"]["tiny"]["2cam"]  # numpy observation -> chunk on the host, via VLAPolicy
    assert both["tick_to_action_eager"]["median_ms"] > 0 and "tick_to_action_graphed" not in both


@pytest.mark.slow
def test_gpu_import_bench_smoke_mode_runs_on_cpu(tmp_path: Path) -> None:
    """bench/gpu_import.py at tiny sizes: LeRobot's policies built, saved, imported, timed side by side; in
    fp32 our chunk is theirs (the import is exact), so the script's max |Δ| is a working check."""
    from bench import gpu_import as module

    out = tmp_path / "gpu_import.json"
    argv = ["--device", "cpu", "--smoke", "--families", "smolvla,pi0", "--runs", "2", "--out", str(out)]
    assert module.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["smoke"] and report["dtype"] == "float32"
    assert sorted(report["results"]) == ["pi0", "smolvla"]
    for family, entry in report["results"].items():
        assert entry["chunk_shape"] == [1, 50, 6] and entry["cameras"] == 3 and entry["steps"] == 10
        for variant in ("lerobot", "ours_eager"):
            timing = entry[variant]
            assert timing["runs"] == 2
            assert all(math.isfinite(timing[k]) and timing[k] > 0 for k in ("median_ms", "p90_ms", "min_ms"))
        assert math.isfinite(entry["ours_eager"]["speedup_vs_lerobot"])
        assert "ours_graphed" not in entry  # CUDA only
        assert entry["lerobot_chunk_std"] > 1.0  # re-randomised: actions far from constant
        delta = entry["max_delta_vs_lerobot"]["ours_eager"]
        assert math.isfinite(delta["max_abs"])
        assert delta["max_abs"] <= 1e-4 * max(1.0, delta["max_abs_action"]), (family, delta)
