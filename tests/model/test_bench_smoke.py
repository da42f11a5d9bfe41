"""bench/gpu_model.py in its CPU smoke mode, so the GPU script is exercised without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import bench_scripts


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*Profiler clears events")
def test_gpu_bench_smoke_mode_runs_on_cpu(tmp_path: Path) -> None:
    module = bench_scripts.load("gpu_model")
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
