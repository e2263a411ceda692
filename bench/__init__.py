"""Benchmarks (`make bench`): every target is a ratio of two things measured side by side in the same run,
with warm-up, many iterations, and medians (p50) plus p99. Results go to bench/results.json."""

import os

# The functions' info lines (one per refresh) would bury the table. Set before anything imports
# common.logs: it configures itself once per process, at the first logger.
os.environ.setdefault("LOG_LEVEL", "WARNING")
