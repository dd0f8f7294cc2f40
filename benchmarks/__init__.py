"""Ours against the reference implementations, timed side by side.

``python -m benchmarks`` (or ``make bench``, which installs the references
first) runs every comparison in benchmarks.cases and writes the results file
that the benchmarks page renders (book/_ext/bench_results.py).
"""
