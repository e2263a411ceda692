"""Benchmarks (`make bench`): every target is a ratio of two things measured side by side in the same run,
with warm-up, many iterations, and medians (p50) plus p99. Results go to bench/results.json."""
