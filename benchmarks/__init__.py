"""Benchmarks of bulkgroups: `make bench` (`python -m benchmarks`) writes RESULTS.md."""
