"""A real Envoy configured the way Istio configures an ingress gateway for envoy/istio/.

There is no istiod or istio-agent here: this module does their part, from the
shipped documents themselves, so that a change to a document changes what the
e2e tests run. What it builds, and where in Istio that shape comes from:

- Clusters named outbound|PORT|SUBSET|HOST for every destination of the
  VirtualService (pilot's cluster naming), with Istio's wide-open circuit
  breaker thresholds; STATIC on 127.0.0.1 instead of EDS.
- One gateway listener and connection manager as istiod builds them (path
  normalisation on, remote address used), with the HCM merge patch of
  header-guard.yaml applied the way EnvoyFilter MERGE does (messages merged,
  lists appended): its early header mutation.
- The route configuration of the VirtualService: one virtual host
  `HOST:PORT`, each http route in order, a header match as
  `headers: [{name, string_match}]` under `prefix: "/"`, the route named
  after the http route, the destination as its cluster, Istio's default
  retry policy, `headers.request.remove` as request_headers_to_remove.
- The WasmPlugin as an HTTP filter fetched through ECDS, named as istiod
  names it, and the ECDS resource as istiod renders the plugin
  (pilot/pkg/model/extensions.go) after the agent has replaced the remote
  module by its local copy (pkg/wasm/convert.go): filter config name
  `<namespace>.<name>~istio-translated-wasmplugin`, root_id = pluginName,
  pluginConfig as a JSON string, no vm_id, failure_policy from failStrategy.
  ECDS comes from a watched file here instead of ADS; Envoy applies either
  the same way.
- Istio's bootstrap stats settings (pkg/bootstrap/config.go): no default
  tags, a few of Istio's own tags, and the stats matcher that keeps only the
  prefixes Istio needs plus the gateway's proxyStatsMatcher (from
  patches/gateway-stats.yaml); stats-bootstrap.yaml's custom_bootstrap.json
  given to Envoy with --config-yaml, as the agent does.
"""

import copy
import json
from pathlib import Path

import yaml

import harness
from harness import REPO, http, write_atomic

ISTIO_DIR = REPO / "envoy" / "istio"
# Resource documents, in the order the README applies them.
DOCUMENT_FILES = ("header-guard.yaml", "stats-bootstrap.yaml", "gateway.yaml", "virtualservice.yaml", "wasmplugin.yaml")
GATEWAY_PATCH = ISTIO_DIR / "patches" / "gateway-stats.yaml"

HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
EXTENSION_CONFIG_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

# Istio 1.30 and later turn a WasmPlugin into a TrafficExtension with this
# suffix on its name (pilot/pkg/config/kube/extensions/translate.go) and name
# the ECDS resource extensions.istio.io/trafficextension/<namespace>.<name>.
TRANSLATED_SUFFIX = "~istio-translated-wasmplugin"
ECDS_PREFIX = "extensions.istio.io/trafficextension/"
# Istio 1.22 to 1.29: extensions.istio.io/wasmplugin/<namespace>.<name>.
OLD_ECDS_PREFIX = "extensions.istio.io/wasmplugin/"

# The gateway's container port for the Gateway's port 80 (the istio-ingressgateway Service maps 80 -> 8080).
GATEWAY_PORT = 80
GATEWAY_TARGET_PORT = 8080

# pkg/bootstrap/config.go: prefixes every Istio proxy keeps, and the rest of its inclusion list.
ISTIO_REQUIRED_PREFIXES = ("cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm")
ISTIO_REQUIRED_SUFFIXES = ("rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied")
ISTIO_REQUIRED_REGEXPS = (r"vhost\..*\.route\..*",)
# Some of Istio's own stats tags, unanchored ones that could cut into other names.
ISTIO_TAGS = (
    {"regex": r"(cache\.(.+?)\.)", "tag_name": "cache"},
    {"regex": r"(component\.(.+?)\.)", "tag_name": "component"},
    {"regex": r"(tag\.(.+?);\.)", "tag_name": "tag"},
    {"regex": r"(wasm_filter\.(.+?)\.)", "tag_name": "wasm_filter"},
)
UINT32_MAX = 4294967295


# --------------------------------------------------------------------------- documents


def load_documents():
    """The shipped resources as {kind: document}; each file holds exactly one."""
    docs = {}
    for name in DOCUMENT_FILES:
        [doc] = [d for d in yaml.safe_load_all((ISTIO_DIR / name).read_text()) if d is not None]
        docs[doc["kind"]] = doc
    return docs


def gateway_proxy_config():
    """The `proxy.istio.io/config` annotation of patches/gateway-stats.yaml, parsed."""
    patch = yaml.safe_load(GATEWAY_PATCH.read_text())
    return yaml.safe_load(patch["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])


def cluster_name(destination):
    """Istio's cluster for a VirtualService destination: outbound|PORT|SUBSET|HOST."""
    return f"outbound|{destination['port']['number']}|{destination.get('subset', '')}|{destination['host']}"


def ecds_name(plugin):
    meta = plugin["metadata"]
    return f"{ECDS_PREFIX}{meta['namespace']}.{meta['name']}{TRANSLATED_SUFFIX}"


def old_ecds_name(plugin):
    meta = plugin["metadata"]
    return f"{OLD_ECDS_PREFIX}{meta['namespace']}.{meta['name']}"


def plugin_json(plugin_config):
    """pluginConfig as istiod hands it over: a Struct marshalled to JSON (keys sorted, no spaces)."""
    return json.dumps(plugin_config, sort_keys=True, separators=(",", ":"))


def wasm_extension_config(plugin, module_path):
    """The ECDS resource for a WasmPlugin, as Envoy receives it from the agent."""
    spec = plugin["spec"]
    meta = plugin["metadata"]
    policy = {"FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSE": "FAIL_CLOSED", "FAIL_RELOAD": "FAIL_RELOAD"}
    config = {
        "name": f"{meta['namespace']}.{meta['name']}{TRANSLATED_SUFFIX}",
        "root_id": spec.get("pluginName", ""),
        "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module_path)}}},
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": plugin_json(spec.get("pluginConfig", {}))},
    }
    if spec.get("failStrategy") in policy:
        config["failure_policy"] = policy[spec["failStrategy"]]
    return {"@type": EXTENSION_CONFIG_TYPE, "name": ecds_name(plugin), "typed_config": {"@type": WASM_TYPE, "config": config}}


def allow_all_extension_config(plugin):
    """What the agent sends Envoy instead when it cannot fetch a FAIL_OPEN plugin's module:
    an RBAC filter without rules (allow all), stat prefix wasm-default-allow."""
    return {"@type": EXTENSION_CONFIG_TYPE, "name": ecds_name(plugin),
            "typed_config": {"@type": RBAC_TYPE, "rules_stat_prefix": "wasm-default-allow"}}


def envoy_routes(virtual_service):
    """The VirtualService's http routes as istiod renders them for a gateway."""
    routes = []
    for http_route in virtual_service["spec"]["http"]:
        [target] = http_route["route"]  # one destination per route here
        action = {
            "cluster": cluster_name(target["destination"]),
            "timeout": "0s",
            "retry_policy": {
                "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                "num_retries": 2,
                "retry_host_predicate": [{
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
                }],
                "host_selection_retry_max_attempts": 5,
            },
        }
        matches = http_route.get("match") or [{}]
        for match in matches:
            route = {"name": http_route["name"], "match": {"prefix": "/"}, "route": action}
            headers = [{"name": name, "string_match": dict(value)} for name, value in match.get("headers", {}).items()]
            if headers:
                route["match"]["headers"] = headers
            remove = http_route.get("headers", {}).get("request", {}).get("remove")
            if remove:
                route["request_headers_to_remove"] = list(remove)
            routes.append(route)
    return routes


def merge_patch(target, value):
    """EnvoyFilter MERGE: objects merged field by field, lists appended, scalars replaced."""
    for key, item in value.items():
        if isinstance(item, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], item)
        elif isinstance(item, list) and isinstance(target.get(key), list):
            target[key].extend(copy.deepcopy(item))
        else:
            target[key] = copy.deepcopy(item)


def stats_matcher(proxy_config):
    matcher = (proxy_config or {}).get("proxyStatsMatcher", {})
    patterns = [{"prefix": "reporter="}]
    patterns += [{"prefix": p} for p in list(matcher.get("inclusionPrefixes", [])) + list(ISTIO_REQUIRED_PREFIXES)]
    patterns += [{"suffix": s} for s in list(matcher.get("inclusionSuffixes", [])) + list(ISTIO_REQUIRED_SUFFIXES)]
    patterns += [{"safe_regex": {"regex": r}} for r in list(matcher.get("inclusionRegexps", [])) + list(ISTIO_REQUIRED_REGEXPS)]
    return {"inclusion_list": {"patterns": patterns}}


def static_cluster(name, port):
    cluster = harness.static_cluster(name, port)
    cluster["connect_timeout"] = "10s"
    cluster["circuit_breakers"] = {"thresholds": [{
        "max_connections": UINT32_MAX, "max_pending_requests": UINT32_MAX,
        "max_requests": UINT32_MAX, "max_retries": UINT32_MAX, "track_remaining": True,
    }]}
    return cluster


# --------------------------------------------------------------------------- the proxy


class IstioGateway(harness.Envoy):
    """A real Envoy shaped like the ingress gateway of envoy/istio/ (see the module doc).

    `services`: {service host: port of the Backend playing it}.
    `plugin`: the WasmPlugin document to start with (default: the shipped one).
    `stats_inclusions=False` leaves out the gateway's proxyStatsMatcher (Istio's defaults only).
    Requests go to `request()`, which sends the VirtualService's host.
    """

    def __init__(self, tmp, services, module_path, plugin=None, stats_inclusions=True, concurrency=2,
                 log_level="warning", ready_timeout=30):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.n = next(harness._instances)
        self.ecds = True
        self.with_filter = True
        self.config = None
        self.wasm_path = Path(module_path).resolve()
        self.admin_port = harness.free_port()
        self.port = harness.free_port()
        self.ecds_dir = self.tmp / f"istio-ecds-{self.n}"
        self.ecds_file = self.ecds_dir / "extension-config.json"
        self.bootstrap_file = self.tmp / f"istio-gateway-{self.n}.json"
        self.log_file = self.tmp / f"istio-gateway-{self.n}.log"
        self.concurrency = concurrency
        self.log_level = log_level
        self.ready_timeout = ready_timeout
        self.proc = None
        self._log = None
        self._resource = None
        self._pushes = 0

        self.documents = load_documents()
        self.plugin = copy.deepcopy(plugin or self.documents["WasmPlugin"])
        self.virtual_service = self.documents["VirtualService"]
        self.host = self.virtual_service["spec"]["hosts"][0]
        self.filter_name = ecds_name(self.plugin)
        self.ecds_stat = f"extension_config_discovery.http_filter.{self.filter_name}."
        override = json.loads(self.documents["ConfigMap"]["data"]["custom_bootstrap.json"])
        self.override = json.dumps(override)
        self.bootstrap = self._build(services, gateway_proxy_config() if stats_inclusions else None)
        self.bootstrap_file.write_text(json.dumps(self.bootstrap, indent=2))
        self.ecds_dir.mkdir(parents=True, exist_ok=True)
        self.push_resource(wasm_extension_config(self.plugin, self.wasm_path))

    def _build(self, services, proxy_config):
        hcm = {
            "@type": HCM_TYPE,
            "stat_prefix": f"outbound_0.0.0.0_{GATEWAY_TARGET_PORT}",
            "use_remote_address": True,
            "normalize_path": True,
            "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
            "server_name": "istio-envoy",
            "route_config": {
                "name": f"http.{GATEWAY_TARGET_PORT}",
                "validate_clusters": False,
                "virtual_hosts": [{
                    "name": f"{self.host}:{GATEWAY_PORT}",
                    "domains": [self.host, f"{self.host}:*"],
                    "routes": envoy_routes(self.virtual_service),
                }],
            },
            "http_filters": [
                {
                    "name": self.filter_name,
                    "config_discovery": {
                        "config_source": {
                            "path_config_source": {"path": str(self.ecds_file),
                                                   "watched_directory": {"path": str(self.ecds_dir)}},
                            "resource_api_version": "V3",
                            "initial_fetch_timeout": "0s",
                        },
                        "type_urls": [WASM_TYPE, RBAC_TYPE],
                    },
                },
                {"name": "envoy.filters.http.router",
                 "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
            ],
        }
        for patch in self.documents["EnvoyFilter"]["spec"]["configPatches"]:
            if patch["applyTo"] == "NETWORK_FILTER" and patch["patch"]["operation"] == "MERGE":
                value = copy.deepcopy(patch["patch"]["value"])
                assert value["typed_config"].pop("@type") == HCM_TYPE
                merge_patch(hcm, value["typed_config"])

        clusters = {}
        for http_route in self.virtual_service["spec"]["http"]:
            for target in http_route["route"]:
                destination = target["destination"]
                clusters[cluster_name(destination)] = static_cluster(cluster_name(destination), services[destination["host"]])
        return {
            "node": {"id": "router~127.0.0.1~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local",
                     "cluster": "istio-ingressgateway.istio-system"},
            "admin": {"address": harness._socket_address(self.admin_port)},
            "stats_config": {
                "use_all_default_tags": False,
                "stats_tags": [dict(tag) for tag in ISTIO_TAGS],
                "stats_matcher": stats_matcher(proxy_config),
            },
            "static_resources": {
                "listeners": [{
                    "name": f"0.0.0.0_{GATEWAY_TARGET_PORT}",
                    "address": harness._socket_address(self.port),
                    "filter_chains": [{"filters": [{"name": harness.HCM, "typed_config": hcm}]}],
                }],
                "clusters": list(clusters.values()),
            },
        }

    def command(self):
        # The agent's way to apply a custom bootstrap: merged by Envoy over the generated one.
        return super().command() + ["--config-yaml", self.override]

    # -- requests

    def request(self, method, path, headers=None, body=None, timeout=10):
        """One request to the gateway with the VirtualService's host."""
        return http(method, self.url(path), headers={"host": self.host, **(headers or {})}, body=body, timeout=timeout)

    # -- ECDS as istiod would push it

    def push_resource(self, resource):
        """Replace the ECDS resource (a TypedExtensionConfig) atomically; Envoy picks it up from the watched directory."""
        self._pushes += 1
        self._resource = resource
        write_atomic(self.ecds_file, json.dumps({"version_info": str(self._pushes), "resources": [resource]}, indent=2))

    def push_plugin(self, plugin):
        """Push a WasmPlugin document (an edit of its pluginConfig, say) as istiod would. Returns the ECDS
        counters from before, for wait_config_applied / wait_config_rejected."""
        before = self.ecds_counts()
        self.push_resource(wasm_extension_config(plugin, self.wasm_path))
        return before

    def apply_plugin(self, plugin):
        """push_plugin, then wait until Envoy runs it (fails if Envoy refused it)."""
        self.wait_config_applied(self.push_plugin(plugin))

    def ecds_counts(self):
        stats = self.stats(filter="^" + harness._regex_escape(self.ecds_stat))
        return {k: stats.get(self.ecds_stat + k, 0) for k in harness.ECDS_COUNTERS}

    def gauge(self, name):
        """A filter gauge or counter by its name without the `wasmcustom.` prefix (None when absent)."""
        full = "wasmcustom." + name
        return self.stats(filter="^" + harness._regex_escape(full) + "$").get(full)

