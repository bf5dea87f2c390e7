"""gpubp's benchmark suite: ``python -m benchmarks.epoch`` (see its --help)."""
