"""Benchmarks: `python -m bench.NAME` runs one and writes bench/results/NAME.json."""
