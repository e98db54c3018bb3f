"""Benchmarks: each runs omsbench and its baselines on the same data in one run and prints ratios."""
