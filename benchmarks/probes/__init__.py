"""Probes behind the design decisions (benchmarks/README.md lists them). Most are scripts
run by path; the ones ``bench.py`` and the tests import are modules of this package."""
