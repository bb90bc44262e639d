"""The synchronous client benchmark: ``python -m bench.sync`` (see README.md)."""
