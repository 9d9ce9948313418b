"""The benchmarks behind docs/results/, each run from the repository root as ``python -m benchmarks.<name>``."""
