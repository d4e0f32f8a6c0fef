"""The shipped configs in envoy/ must agree with each other (no Envoy, no wasm needed).

envoy/plugin-config.json is the reference; the same plugin configuration is
embedded in envoy/envoy.yaml and envoy/ecds/parallel-run.json. The Istio
documents (envoy/istio/) are checked in test_istio_documents.py.
"""

import copy
import json

import yaml

from harness import BOOTSTRAP, BOOTSTRAP_ECDS, ECDS_RESOURCE, FILTER_NAME, HCM, HEADER_GUARD, REPO, example_plugin_config

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
    assert [f["name"] for f in http_filters(boot)] == [HEADER_GUARD, FILTER_NAME, "envoy.filters.http.router"]
    guard = http_filters(boot)[0]["typed_config"]["mutations"]["request_mutations"]
    route_header = json.loads(config["configuration"]["value"])["route_header"]
    assert guard == [{"remove": route_header}, {"remove": "x-parallel-run-shadow"}]


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

