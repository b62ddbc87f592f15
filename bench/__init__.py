"""Benchmarks: ``python -m bench`` runs them all; results are recorded in docs/PERFORMANCE.md."""
