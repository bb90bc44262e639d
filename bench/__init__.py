"""Kernel benchmarks of fastws against its pure-Python twin and peer libraries.

``python -m bench`` (from the repository root) runs them with pytest-benchmark and
prints a comparison table; see ``bench/README.md``.
"""
