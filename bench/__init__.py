"""parallel-run's benchmarks (`make bench`, `make soak`, bench/ab.py,
bench/memory.py): run from the repository root as modules, e.g.
`.venv/bin/python -m bench.run --quick`. See bench/README.md."""
