"""The rig the end-to-end tests, the benchmarks and the demo run on: real
processes on 127.0.0.1, no mocks. Standard library and PyYAML only.

    testbed.net       HOST, free ports, one-shot and keep-alive HTTP clients, polling
    testbed.backend   Backend: an HTTP/1.1 server whose answers a handler decides
    testbed.envoy     Envoy: a real Envoy from a shipped bootstrap, adapted; ECDS pushes
    testbed.counters  the filter's per-operation counters and the accounting invariant
    testbed.process   stopping processes; CPU time and memory from /proc
    testbed.load      bounded oha and wrk runs, summarised
    testbed.table     Markdown and plain-text tables, medians

Importable as `testbed` with the repository root on sys.path: `python -m
bench.run` (or `-m demo.run`, `-m pytest`) from the root puts it there, and
pytest.ini does for pytest. Nothing is installed.
"""
