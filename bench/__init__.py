"""Benchmarks of native-iam-oauth: run ``./dev bench`` (or ``python bench/run.py --help``).

Results go to ``bench/RESULTS.md`` and ``bench/latency.png``.
"""
