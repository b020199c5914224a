"""Benchmark harness for qfuse pipelines (see README.md)."""
