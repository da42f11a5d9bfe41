"""Benchmarks: each module runs as `python -m bench.<name>` from the repository root and writes JSON under
bench/results/; bench/README.md keeps the measured tables. The tests import these modules like any other."""
