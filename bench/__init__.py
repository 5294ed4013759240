"""Benchmarks of fastcov (run ``python -m bench`` from a checkout)."""
