"""Benchmarks of the model container: each a ratio against a baseline measured in the same run.

Run from the repository root, e.g. `python -m bench.accuracy --data ../shared/data/banking77`.
"""
