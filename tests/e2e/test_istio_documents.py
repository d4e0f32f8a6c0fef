"""The Istio documents in envoy/istio/: each one has the structure of Istio's CRD for its kind,
the plugin configuration passes the filter's own validator, and the documents agree with each
other (the routes match exactly the clusters the filter writes, the guard strips the headers
the filter trusts, the stats tags are the shipped ones). No Envoy needed; the validator test
needs target/release/parallel-run-ctl (make build).
"""

import copy
import json
import re
import subprocess

import pytest
import yaml

import istio_crds
import istio_proxy
from harness import BOOTSTRAP, CTL_PATH, example_plugin_config

SHADOW_MARKER = "x-parallel-run-shadow"
# The operation header name the README uses; the guard strips it even though the gateway sets none.
OPERATION_HEADER = "x-operation-id"
CLIENT_MODES = ("CLIENT", "CLIENT_AND_SERVER", "UNDEFINED")


@pytest.fixture(scope="module")
def docs():
    return istio_proxy.load_documents()


def plugin_clusters(config):
    """Every cluster the plugin configuration names: top level and per-operation overrides."""
    clusters = {config["legacy"]["cluster"], config["candidate"]["cluster"]}
    for op in config.get("operations", []):
        for side in ("legacy", "candidate"):
            if "cluster" in op.get(side, {}):
                clusters.add(op[side]["cluster"])
    return clusters


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", istio_proxy.DOCUMENT_FILES)
def test_document_has_the_structure_of_its_istio_crd(name):
    documents = [d for d in yaml.safe_load_all((istio_proxy.ISTIO_DIR / name).read_text()) if d is not None]
    assert len(documents) == 1, f"{name}: one resource per file"
    assert istio_crds.check(documents[0]) == []


def test_every_yaml_file_in_the_folder_is_a_checked_document():
    shipped = sorted(p.name for p in istio_proxy.ISTIO_DIR.glob("*.y*ml"))
    assert shipped == sorted(istio_proxy.DOCUMENT_FILES)


@pytest.mark.parametrize("mutate, problem", [
    (lambda d: d["spec"].__setitem__("failStrategy", "FAIL_OPENED"), "spec.failStrategy: 'FAIL_OPENED' is not one of"),
    (lambda d: d["spec"].__setitem__("failstrategy", "FAIL_OPEN"), "spec.failstrategy: unknown field"),
    (lambda d: d["spec"].pop("url"), "spec.url: required field missing"),
    (lambda d: d["spec"].__setitem__("sha256", "sha256:" + "0" * 64), "spec.sha256: 'sha256:"),
    (lambda d: d["spec"].__setitem__("targetRefs", [{"kind": "Gateway", "name": "x"}]), "spec: at most one of selector, targetRef, targetRefs"),
    (lambda d: d.__setitem__("apiVersion", "extensions.istio.io/v1beta1"), "apiVersion/kind:"),
    (lambda d: d["metadata"].pop("name"), "metadata.name: required field missing"),
])
def test_the_structure_check_refuses_what_the_api_server_would(docs, mutate, problem):
    plugin = copy.deepcopy(docs["WasmPlugin"])
    mutate(plugin)
    problems = istio_crds.check(plugin)
    assert any(p.startswith(problem) for p in problems), problems


def test_the_structure_check_reaches_nested_fields(docs):
    vs = copy.deepcopy(docs["VirtualService"])
    vs["spec"]["http"][0]["route"][0]["destinaton"] = vs["spec"]["http"][0]["route"][0].pop("destination")
    vs["spec"]["http"][1]["match"][0]["headers"]["x-parallel-run-cluster"]["prefix"] = "outbound"
    assert istio_crds.check(vs) == [
        "spec.http[0].route[0].destinaton: unknown field (known here: destination, headers, weight)",
        "spec.http[0].route[0].destination: required field missing",
        "spec.http[1].match[0].headers.x-parallel-run-cluster: at most one of exact, prefix, regex may be set, found exact, prefix",
    ]
    guard = copy.deepcopy(docs["EnvoyFilter"])
    guard["spec"]["configPatches"][0]["applyTo"] = "HTTP_CONNECTION_MANAGER"
    assert istio_crds.check(guard)[0].startswith("spec.configPatches[0].applyTo: 'HTTP_CONNECTION_MANAGER' is not one of")


def test_gateway_patch_sets_only_annotations_istio_reads():
    patch = yaml.safe_load(istio_proxy.GATEWAY_PATCH.read_text())
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert patch == {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    assert set(annotations) <= istio_crds.POD_ANNOTATIONS
    proxy_config = yaml.safe_load(annotations["proxy.istio.io/config"])
    assert istio_crds.check_value(proxy_config, istio_crds.PROXY_CONFIG, "proxy.istio.io/config") == []


# --------------------------------------------------------------------------- the plugin configuration


def test_plugin_config_passes_the_filters_validator(docs, tmp_path):
    assert CTL_PATH.exists(), f"{CTL_PATH} missing: cargo build --release -p parallel-run-ctl"
    config_file = tmp_path / "plugin-config.json"
    # What istiod hands the filter: the pluginConfig as JSON.
    config_file.write_text(istio_proxy.plugin_json(docs["WasmPlugin"]["spec"]["pluginConfig"]))
    result = subprocess.run([str(CTL_PATH), "validate", str(config_file)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    for op in docs["WasmPlugin"]["spec"]["pluginConfig"]["operations"]:
        assert op["id"] in result.stdout

    # The same check refuses a broken one, naming the field.
    broken = copy.deepcopy(docs["WasmPlugin"]["spec"]["pluginConfig"])
    broken["operations"][1]["path"] = "/returns/{id"
    config_file.write_text(istio_proxy.plugin_json(broken))
    result = subprocess.run([str(CTL_PATH), "validate", str(config_file)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "operations[1].path" in result.stdout + result.stderr


def test_plugin_config_is_the_example_with_istio_clusters_and_no_operation_header(docs):
    spec = docs["WasmPlugin"]["spec"]
    assert spec["pluginName"] == "parallel_run"
    assert spec["failStrategy"] == "FAIL_OPEN"
    assert spec.get("type", "HTTP") == "HTTP"
    assert spec.get("phase", "UNSPECIFIED_PHASE") == "UNSPECIFIED_PHASE", "the filter must run last, before the router"
    config = copy.deepcopy(spec["pluginConfig"])
    assert "operation_header" not in config
    for side in ("legacy", "candidate"):
        assert re.fullmatch(r"outbound\|\d+\|[^|]*\|[a-z0-9.-]+", config[side]["cluster"]), config[side]
        config[side]["cluster"] = side
    expected = example_plugin_config()
    expected.pop("operation_header", None)
    assert config == expected


def test_module_url_is_pinned_by_digest(docs):
    spec = docs["WasmPlugin"]["spec"]
    url_digest = re.search(r"@sha256:([a-f0-9]{64})$", spec["url"])
    assert url_digest or re.fullmatch(r"[a-f0-9]{64}", spec.get("sha256", "")), spec["url"]
    if url_digest and spec.get("sha256"):
        assert spec["sha256"] == url_digest.group(1), "url digest and sha256 must agree"
    assert spec["url"].startswith("oci://")
    assert spec.get("imagePullPolicy") == "IfNotPresent"


# --------------------------------------------------------------------------- the documents agree


def test_routes_match_exactly_the_clusters_the_filter_writes(docs):
    config = docs["WasmPlugin"]["spec"]["pluginConfig"]
    route_header = config.get("route_header", "x-parallel-run-cluster")
    http_routes = docs["VirtualService"]["spec"]["http"]

    *header_routes, fallback = http_routes
    routed = {}
    for route in header_routes:
        [match] = route["match"]
        assert set(match) == {"headers"}, f"{route['name']}: the header is the only condition"
        assert list(match["headers"]) == [route_header]
        [value_kind] = match["headers"][route_header]
        assert value_kind == "exact", f"{route['name']}: an exact match, so the header names nothing else"
        [target] = route["route"]
        cluster = match["headers"][route_header]["exact"]
        assert istio_proxy.cluster_name(target["destination"]) == cluster, \
            f"{route['name']}: the header value must be the destination's own cluster"
        assert route["headers"]["request"]["remove"] == [route_header], f"{route['name']}: do not forward the route header"
        routed[cluster] = route["name"]

    assert set(routed) == plugin_clusters(config), "one exact route per cluster the filter can write"
    assert "match" not in fallback, "the last route catches everything the filter did not route"
    [target] = fallback["route"]
    assert istio_proxy.cluster_name(target["destination"]) == config["legacy"]["cluster"], "the fallback is legacy"


def test_routes_bind_to_the_shipped_gateway_on_the_plugins_workloads(docs):
    gateway, vs = docs["Gateway"], docs["VirtualService"]
    assert vs["spec"]["gateways"] == [gateway["metadata"]["name"]]
    assert vs["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    assert set(vs["spec"]["hosts"]) <= {h for s in gateway["spec"]["servers"] for h in s["hosts"]}
    labels = gateway["spec"]["selector"]
    assert docs["WasmPlugin"]["spec"]["selector"]["matchLabels"] == labels
    assert docs["EnvoyFilter"]["spec"]["workloadSelector"]["labels"] == labels
    for match in docs["WasmPlugin"]["spec"].get("match", []):
        assert match.get("mode", "UNDEFINED") in CLIENT_MODES, "a gateway's traffic is CLIENT mode"


def test_guard_strips_every_header_the_filter_trusts_before_routing(docs):
    config = docs["WasmPlugin"]["spec"]["pluginConfig"]
    [patch] = docs["EnvoyFilter"]["spec"]["configPatches"]
    assert patch["applyTo"] == "NETWORK_FILTER"
    assert patch["match"]["context"] == "GATEWAY"
    assert patch["match"]["listener"]["filterChain"]["filter"]["name"] == "envoy.filters.network.http_connection_manager"
    assert patch["patch"]["operation"] == "MERGE"
    hcm = patch["patch"]["value"]["typed_config"]
    assert hcm["@type"] == istio_proxy.HCM_TYPE
    assert set(hcm) == {"@type", "early_header_mutation_extensions"}
    [extension] = hcm["early_header_mutation_extensions"]
    assert extension["typed_config"]["@type"] == \
        "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation"
    removed = [m["remove"] for m in extension["typed_config"]["mutations"]]
    wanted = {config.get("route_header", "x-parallel-run-cluster"), SHADOW_MARKER, OPERATION_HEADER}
    if config.get("operation_header"):
        wanted.add(config["operation_header"])
    assert set(removed) >= wanted
    assert all(set(m) == {"remove"} for m in extension["typed_config"]["mutations"]), "the guard only removes"


def test_bootstrap_override_carries_the_shipped_stats_tags(docs):
    override = json.loads(docs["ConfigMap"]["data"]["custom_bootstrap.json"])
    assert set(override) == {"stats_config", "layered_runtime", "memory_allocator_manager"}
    assert set(override["stats_config"]) == {"stats_tags"}
    # Freed memory returned to the OS, as envoy/envoy.yaml does (bench/MEMORY.md).
    shipped_release = yaml.safe_load(BOOTSTRAP.read_text())["memory_allocator_manager"]
    assert override["memory_allocator_manager"] == shipped_release
    shipped = yaml.safe_load(BOOTSTRAP.read_text())["stats_config"]["stats_tags"]
    tags = override["stats_config"]["stats_tags"]
    assert tags[:len(shipped)] == shipped, "the same operation_id and diff_path tags as envoy/envoy.yaml"
    # The memory bound of shadow calls, as envoy/envoy.yaml sets it; in a layer
    # of its own (Istio's bootstrap has the admin layer already: a second one is refused).
    [layer] = override["layered_runtime"]["layers"]
    shipped_runtime = yaml.safe_load(BOOTSTRAP.read_text())["layered_runtime"]["layers"]
    assert layer["static_layer"] == next(x["static_layer"] for x in shipped_runtime if "static_layer" in x)
    assert layer["name"] not in {"global config", "admin"}
    patch = yaml.safe_load(istio_proxy.GATEWAY_PATCH.read_text())
    annotations = patch["spec"]["template"]["metadata"]["annotations"]
    assert annotations["sidecar.istio.io/bootstrapOverride"] == docs["ConfigMap"]["metadata"]["name"]
    assert docs["ConfigMap"]["metadata"]["namespace"] == docs["WasmPlugin"]["metadata"]["namespace"]


@pytest.mark.parametrize("name", [istio_proxy.ecds_name, istio_proxy.old_ecds_name])
def test_stats_inclusions_keep_the_refused_config_signal(docs, name):
    """Istio keeps stats starting with `wasm` by itself; extension_config_discovery it must be told to keep,
    under the ECDS name of either Istio generation."""
    matcher = istio_proxy.gateway_proxy_config()["proxyStatsMatcher"]
    stat = f"extension_config_discovery.http_filter.{name(docs['WasmPlugin'])}.config_fail"
    assert any(stat.startswith(p) for p in matcher.get("inclusionPrefixes", [])) or \
        any(re.fullmatch(r, stat) for r in matcher.get("inclusionRegexps", []))
    assert not any(p.startswith("wasm") for p in matcher.get("inclusionPrefixes", [])), \
        "wasm* is kept by Istio already: no redundant inclusion"
