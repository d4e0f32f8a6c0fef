"""The shipped configs in envoy/ must agree with each other (no Envoy, no wasm needed).

envoy/plugin-config.json is the reference; the same plugin configuration is
embedded in envoy/envoy.yaml and envoy/ecds/parallel-run.json. The Istio
documents (envoy/istio/) are checked in test_istio_documents.py.
"""

import copy
import json

import yaml

from harness import (BOOTSTRAP, BOOTSTRAP_ECDS, ECDS_RESOURCE, FILTER_NAME, HCM, OPERATION_HEADER, REPO, SHADOW_MARKER,
                     connection_manager, example_plugin_config, guarded_headers)

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def http_filters(bootstrap):
    listener = bootstrap["static_resources"]["listeners"][0]
    hcm = next(f for f in listener["filter_chains"][0]["filters"] if f["name"] == HCM)
    return hcm["typed_config"]["http_filters"]


def wasm_filter(bootstrap):
    return next(f for f in http_filters(bootstrap) if f["name"] == FILTER_NAME)


def test_static_bootstrap_embeds_example_config():
    boot = yaml.safe_load(BOOTSTRAP.read_text())
    config = wasm_filter(boot)["typed_config"]["config"]
    assert json.loads(config["configuration"]["value"]) == example_plugin_config()
    assert config["root_id"] == "parallel_run"
    assert config["vm_config"]["vm_id"] == "parallel_run"
    assert config["failure_policy"] == "FAIL_OPEN"
    assert [f["name"] for f in http_filters(boot)] == [FILTER_NAME, "envoy.filters.http.router"]


def test_bootstraps_guard_headers_before_routing():
    """The header guard is in the connection manager (before routing), and
    removes the plugin's route header, the shadow marker and the operation
    header; no HTTP-filter copy of it is left to drift."""
    route_header = example_plugin_config()["route_header"]
    for path in (BOOTSTRAP, BOOTSTRAP_ECDS):
        hcm = connection_manager(yaml.safe_load(path.read_text()))
        assert guarded_headers(hcm) == [route_header, SHADOW_MARKER, OPERATION_HEADER], path
        assert "envoy.filters.http.header_mutation" not in [f["name"] for f in hcm["http_filters"]], path


def test_bootstraps_normalise_paths():
    for path in (BOOTSTRAP, BOOTSTRAP_ECDS):
        hcm = connection_manager(yaml.safe_load(path.read_text()))
        assert (hcm.get("normalize_path"), hcm.get("merge_slashes"), hcm.get("path_with_escaped_slashes_action")) \
            == (True, True, "REJECT_REQUEST"), path


def test_shipped_plugin_configs_leave_operation_header_off():
    """A client could name its operation (and with it, in cutover, its backend)
    wherever the operation header is trusted; the shipped configurations set
    none (the static and ECDS copies equal this one: tests below)."""
    assert "operation_header" not in example_plugin_config()


def test_ecds_resource_matches_static_filter():
    boot = yaml.safe_load(BOOTSTRAP.read_text())
    [resource] = json.loads(ECDS_RESOURCE.read_text())["resources"]
    assert resource["@type"] == "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    assert resource["name"] == FILTER_NAME
    assert resource["typed_config"]["@type"] == WASM_TYPE

    static = copy.deepcopy(wasm_filter(boot)["typed_config"]["config"])
    ecds = copy.deepcopy(resource["typed_config"]["config"])
    assert json.loads(ecds["configuration"].pop("value")) == json.loads(static["configuration"].pop("value"))
    assert ecds == static


def test_ecds_bootstrap_differs_only_in_the_filter():
    static = yaml.safe_load(BOOTSTRAP.read_text())
    ecds = yaml.safe_load(BOOTSTRAP_ECDS.read_text())
    discovery = wasm_filter(ecds)["config_discovery"]
    assert discovery["type_urls"] == [WASM_TYPE]
    source = discovery["config_source"]["path_config_source"]
    assert (REPO / source["path"]).resolve() == ECDS_RESOURCE.resolve()
    assert (REPO / source["watched_directory"]["path"]).resolve() == ECDS_RESOURCE.parent.resolve()

    for boot in (static, ecds):
        http_filters(boot).remove(wasm_filter(boot))
    assert ecds == static

