"""The structure of the Istio resources that envoy/istio/ ships, and a strict checker for it.

Written by hand from Istio's CRD schemas (manifests/charts/base/files/crd-all.gen.yaml
in istio/istio, master of August 2026, the same for these fields in 1.28 to 1.31)
and its mesh API (mesh/v1alpha1/proxy.proto in istio/api): for each kind we
ship, its group/version, the required fields, and every field it knows at
each level we use, with enums, patterns and bounds where the CRD has them.
Levels we do not use are left open (`opaque`), as are the CRD's free-form
fields (`pluginConfig`, an EnvoyFilter patch's `value`; those are checked
elsewhere: by the filter's validator and by Envoy in test_istio.py).

`check(document)` returns every problem as "path: what", like
`kubectl apply --validate=strict` would refuse the document: an unknown
field is an error (a misspelt `failStrategy` would otherwise be dropped in
silence by the API server's pruning, and the default, FAIL_CLOSE, would
apply).
"""

import re

# --------------------------------------------------------------------------- schema nodes


def obj(properties, required=(), exclusive=()):
    """An object with known fields. `exclusive`: groups of which at most one may be set (the CRD's oneOf)."""
    return {"type": "object", "properties": properties, "required": tuple(required), "exclusive": tuple(exclusive)}


def mapping(values):
    """An object with arbitrary keys (additionalProperties)."""
    return {"type": "map", "values": values}


def array(items, max_items=None):
    return {"type": "array", "items": items, "max_items": max_items}


def string(enum=None, pattern=None, min_length=None, max_length=None):
    return {"type": "string", "enum": enum, "pattern": pattern, "min_length": min_length, "max_length": max_length}


def integer(minimum=None, maximum=None):
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


BOOLEAN = {"type": "boolean"}
# x-kubernetes-preserve-unknown-fields, or a level of the CRD we do not use.
OPAQUE = {"type": "opaque"}

PORT_NUMBER = integer(0, 4294967295)  # the CRDs' uint32; Kubernetes ports are checked by Istio's own validation
LABEL_VALUES = mapping(string(max_length=63))

# ObjectMeta: what a document may set (the rest is the API server's).
METADATA = obj({
    "name": string(min_length=1, max_length=253),
    "namespace": string(min_length=1, max_length=63),
    "labels": mapping(string(max_length=63)),
    "annotations": mapping(string()),
}, required=("name",))

STRING_MATCH = obj({"exact": string(), "prefix": string(), "regex": string()},
                   exclusive=(("exact", "prefix", "regex"),))

HEADER_OPERATIONS = obj({
    "add": mapping(string()),
    "remove": array(string()),
    "set": mapping(string()),
})

DESTINATION = obj({
    "host": string(),
    "port": obj({"number": PORT_NUMBER}),
    "subset": string(),
}, required=("host",))

# --------------------------------------------------------------------------- kinds

WASM_PLUGIN = obj({
    "selector": obj({"matchLabels": mapping(string(max_length=63))}),
    "targetRef": OPAQUE,
    "targetRefs": array(OPAQUE, max_items=16),
    "url": string(min_length=1),
    "sha256": string(pattern=r"^$|^[a-f0-9]{64}$"),
    "imagePullPolicy": string(enum=("UNSPECIFIED_POLICY", "IfNotPresent", "Always")),
    "imagePullSecret": string(min_length=1, max_length=253),
    "verificationKey": string(),
    "pluginConfig": OPAQUE,
    "pluginName": string(min_length=1, max_length=256),
    "phase": string(enum=("UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS")),
    "priority": integer(-(2**31), 2**31 - 1),
    "failStrategy": string(enum=("FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD")),
    "vmConfig": OPAQUE,
    "match": array(obj({
        "mode": string(enum=("UNDEFINED", "CLIENT", "SERVER", "CLIENT_AND_SERVER")),
        "ports": array(obj({"number": integer(1, 65535)}, required=("number",))),
    })),
    "type": string(enum=("UNSPECIFIED_PLUGIN_TYPE", "HTTP", "NETWORK")),
}, required=("url",), exclusive=(("selector", "targetRef", "targetRefs"),))

HTTP_ROUTE = obj({
    "name": string(),
    "match": array(obj({
        "name": string(),
        "uri": STRING_MATCH,
        "scheme": STRING_MATCH,
        "method": STRING_MATCH,
        "authority": STRING_MATCH,
        "headers": mapping(STRING_MATCH),
        "withoutHeaders": mapping(STRING_MATCH),
        "queryParams": mapping(STRING_MATCH),
        "port": PORT_NUMBER,
        "sourceLabels": mapping(string()),
        "gateways": array(string()),
        "sourceNamespace": string(),
        "ignoreUriCase": BOOLEAN,
        "statPrefix": string(),
    })),
    "route": array(obj({
        "destination": DESTINATION,
        "weight": integer(-(2**31), 2**31 - 1),
        "headers": obj({"request": HEADER_OPERATIONS, "response": HEADER_OPERATIONS}),
    }, required=("destination",))),
    "headers": obj({"request": HEADER_OPERATIONS, "response": HEADER_OPERATIONS}),
    "timeout": string(),
    "retries": obj({
        "attempts": integer(-(2**31), 2**31 - 1),
        "perTryTimeout": string(),
        "retryOn": string(),
        "retryRemoteLocalities": BOOLEAN,
        "retryIgnorePreviousHosts": BOOLEAN,
        "backoff": string(),
    }),
    # Used nowhere here; known to the CRD.
    "redirect": OPAQUE, "directResponse": OPAQUE, "delegate": OPAQUE, "rewrite": OPAQUE,
    "fault": OPAQUE, "mirror": OPAQUE, "mirrors": OPAQUE, "mirrorPercentage": OPAQUE,
    "mirrorPercent": OPAQUE, "mirror_percent": OPAQUE, "corsPolicy": OPAQUE,
})

VIRTUAL_SERVICE = obj({
    "hosts": array(string()),
    "gateways": array(string()),
    "http": array(HTTP_ROUTE),
    "tls": OPAQUE,
    "tcp": OPAQUE,
    "exportTo": array(string()),
})

GATEWAY = obj({
    "selector": mapping(string()),
    "servers": array(obj({
        "port": obj({
            "number": PORT_NUMBER,
            "protocol": string(),
            "name": string(),
            "targetPort": PORT_NUMBER,
        }, required=("number", "protocol", "name")),
        "bind": string(),
        "hosts": array(string()),
        "tls": OPAQUE,
        "defaultEndpoint": string(),
        "name": string(),
    }, required=("port", "hosts"))),
})

ENVOY_FILTER = obj({
    "workloadSelector": obj({"labels": mapping(string(max_length=63))}),
    "targetRefs": array(OPAQUE, max_items=16),
    "priority": integer(-(2**31), 2**31 - 1),
    "configPatches": array(obj({
        "applyTo": string(enum=(
            "INVALID", "LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION",
            "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER")),
        "match": obj({
            "context": string(enum=("ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY", "WAYPOINT")),
            "proxy": obj({"proxyVersion": string(), "metadata": mapping(string())}),
            "listener": obj({
                "portNumber": PORT_NUMBER,
                "portName": string(),
                "name": string(),
                "listenerFilter": string(),
                "filterChain": obj({
                    "name": string(),
                    "sni": string(),
                    "transportProtocol": string(),
                    "applicationProtocols": string(),
                    "transportSocket": string(),
                    "destinationPort": PORT_NUMBER,
                    "filter": obj({"name": string(), "subFilter": obj({"name": string()})}),
                }),
            }),
            "routeConfiguration": OPAQUE,
            "cluster": OPAQUE,
            "waypoint": OPAQUE,
        }, exclusive=(("listener", "routeConfiguration", "cluster", "waypoint"),)),
        "patch": obj({
            "operation": string(enum=(
                "INVALID", "MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST",
                "REPLACE", "MERGE_AND_REPLACE_LIST")),
            "value": OPAQUE,
            "filterClass": string(enum=("UNSPECIFIED", "AUTHN", "AUTHZ", "STATS")),
        }),
    })),
}, exclusive=(("workloadSelector", "targetRefs"),))

# Kubernetes' own ConfigMap (core/v1): data values are strings.
CONFIG_MAP = {"data": mapping(string()), "binaryData": mapping(string()), "immutable": BOOLEAN}

# (apiVersion, kind) -> schema of the top level besides apiVersion, kind and metadata.
# Istio serves WasmPlugin only as v1alpha1 and EnvoyFilter only as v1alpha3;
# VirtualService and Gateway are served as v1 (stored as v1), v1beta1 and v1alpha3.
KINDS = {
    ("extensions.istio.io/v1alpha1", "WasmPlugin"): {"spec": WASM_PLUGIN},
    ("networking.istio.io/v1", "VirtualService"): {"spec": VIRTUAL_SERVICE},
    ("networking.istio.io/v1", "Gateway"): {"spec": GATEWAY},
    ("networking.istio.io/v1alpha3", "EnvoyFilter"): {"spec": ENVOY_FILTER},
    ("v1", "ConfigMap"): CONFIG_MAP,
}
# Only WasmPlugin's CRD requires `spec`.
REQUIRED_TOP = {"WasmPlugin": ("spec",)}

# The mesh ProxyConfig (istio.mesh.v1alpha1.ProxyConfig, JSON names), as far
# as a `proxy.istio.io/config` annotation here uses it.
PROXY_CONFIG = obj({
    "proxyStatsMatcher": obj({
        "inclusionPrefixes": array(string()),
        "inclusionSuffixes": array(string()),
        "inclusionRegexps": array(string()),
    }),
    "concurrency": integer(0),
    "holdApplicationUntilProxyStarts": BOOLEAN,
    "proxyMetadata": mapping(string()),
    # Deprecated since istio.stats became a native filter: refused here on purpose.
})

# Pod annotations Istio reads (istio/api annotation/annotations.yaml).
POD_ANNOTATIONS = {"proxy.istio.io/config", "sidecar.istio.io/bootstrapOverride"}


# --------------------------------------------------------------------------- checking


def check(document):
    """Every problem with one Kubernetes document, as a list of 'path: what' strings (empty when it is fine)."""
    if not isinstance(document, dict):
        return [f"(document): expected a mapping, got {type(document).__name__}"]
    key = (document.get("apiVersion"), document.get("kind"))
    if key not in KINDS:
        known = ", ".join(f"{v} {k}" for v, k in KINDS)
        return [f"apiVersion/kind: {key[0]!r} {key[1]!r} is not one of the kinds shipped here ({known})"]
    top = obj({"apiVersion": string(), "kind": string(), "metadata": METADATA, **KINDS[key]},
              required=("apiVersion", "kind", "metadata") + REQUIRED_TOP.get(key[1], ()))
    return check_value(document, top, "")


def check_value(value, schema, path):
    """Problems of `value` against `schema`. Recursion follows the schema, which is finite, so its depth is bounded."""
    kind = schema["type"]
    if kind == "opaque":
        return []
    if kind in ("object", "map"):
        if not isinstance(value, dict):
            return [f"{path or '(top)'}: expected an object, got {_name(value)}"]
        if kind == "map":
            problems = []
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(f"{path}: key {key!r} is not a string")
                problems += check_value(item, schema["values"], f"{path}.{key}" if path else str(key))
            return problems
        return _check_object(value, schema, path)
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {_name(value)}"]
        problems = []
        if schema["max_items"] is not None and len(value) > schema["max_items"]:
            problems.append(f"{path}: {len(value)} items, at most {schema['max_items']}")
        for i, item in enumerate(value):
            problems += check_value(item, schema["items"], f"{path}[{i}]")
        return problems
    if kind == "string":
        return _check_string(value, schema, path)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer, got {_name(value)}"]
        if schema["minimum"] is not None and value < schema["minimum"]:
            return [f"{path}: {value} is below {schema['minimum']}"]
        if schema["maximum"] is not None and value > schema["maximum"]:
            return [f"{path}: {value} is above {schema['maximum']}"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected true or false, got {_name(value)}"]
    raise ValueError(f"unknown schema type {kind!r} at {path}")


def _check_object(value, schema, path):
    problems = []
    known = schema["properties"]
    for key in value:
        if key not in known:
            problems.append(f"{_join(path, key)}: unknown field (known here: {', '.join(sorted(known))})")
    for key in schema["required"]:
        if key not in value:
            problems.append(f"{_join(path, key)}: required field missing")
    for group in schema["exclusive"]:
        present = [k for k in group if k in value]
        if len(present) > 1:
            problems.append(f"{path or '(top)'}: at most one of {', '.join(group)} may be set, found {', '.join(present)}")
    for key, item in value.items():
        if key in known:
            problems += check_value(item, known[key], _join(path, key))
    return problems


def _check_string(value, schema, path):
    if not isinstance(value, str):
        return [f"{path}: expected a string, got {_name(value)}"]
    if schema["enum"] is not None and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {', '.join(schema['enum'])}"]
    if schema["pattern"] is not None and not re.search(schema["pattern"], value):
        return [f"{path}: {value!r} does not match {schema['pattern']}"]
    if schema["min_length"] is not None and len(value) < schema["min_length"]:
        return [f"{path}: shorter than {schema['min_length']} characters"]
    if schema["max_length"] is not None and len(value) > schema["max_length"]:
        return [f"{path}: longer than {schema['max_length']} characters"]
    return []


def _join(path, key):
    return f"{path}.{key}" if path else key


def _name(value):
    return "null" if value is None else type(value).__name__
