"""The soak benchmark's parts (``benchmarks/bench_soak.py`` runs them)."""
