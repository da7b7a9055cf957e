"""The throughput suite: pytest-benchmark benchmarks generated from the model registry (``pytest bench/suite``)."""
