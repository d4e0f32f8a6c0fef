"""The parallel-run demo (`make demo`): run from the repository root as
`.venv/bin/python -m demo.run`. See demo/README.md."""
