"""Benchmarks: figures are ratios against a peer measured in the same run (absolute CPU times are noise)."""
