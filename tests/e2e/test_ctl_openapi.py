"""`parallel-run-ctl init --openapi` and `lint --openapi` on real public
OpenAPI documents (installed by `make e2e` into .cache/openapi-specs): ReadMe's
examples of many OpenAPI 3.0 and 3.1 shapes, in JSON and YAML, and GitHub's
(1,471 operations). The generated configuration validates, has one operation
per operationId, and routes in a real Envoy.
"""

import json
import random
import re
import subprocess

import pytest
import yaml

from harness import CTL_PATH, REPO, http, wait_until

SPECS = REPO / ".cache" / "openapi-specs" / "node_modules"
EXAMPLES = SPECS / "@readme" / "oas-examples"
GITHUB = SPECS / "@octokit" / "openapi" / "generated" / "ghec.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def ctl(*args, stdin=None):
    assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=120, input=stdin)


def require(path):
    if not path.exists():
        pytest.fail(f"{path} not found: `make .stamps/openapi-specs` (make e2e does it) installs the specs",
                    pytrace=False)


def spec_operations(path):
    """(method, path, operationId) of every operation, read by Python's own parsers."""
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    def resolved(item):  # a local $ref path item, one level
        ref = item.get("$ref")
        if not ref:
            return item
        node = document
        for token in ref.removeprefix("#/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    return [(method.upper(), route, op.get("operationId"))
            for route, item in (document.get("paths") or {}).items()
            for method, op in resolved(item).items() if method in METHODS]


def sanitise(raw):
    """The CLI's rule: anything outside [A-Za-z0-9_-] becomes _, runs collapse, ends trimmed."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]", "_", raw)).strip("_")


def examples():
    require(EXAMPLES)
    return sorted(p for version in ("3.0", "3.1") for kind in ("json", "yaml")
                  for p in (EXAMPLES / version / kind).glob(f"*.{kind}"))


def test_every_example_shape_becomes_a_valid_configuration():
    files = examples()
    assert len(files) > 60, files
    by_spec = {}
    for path in files:
        operations = spec_operations(path)
        result = ctl("-o", "json", "init", "--openapi", str(path))
        if not operations:
            # A document without paths (3.1 allows webhooks only): nothing to configure.
            assert result.returncode == 1 and "paths" in result.stderr, (path, result.stderr)
            continue
        assert result.returncode == 0, (path, result.stderr)
        report = json.loads(result.stdout)
        config = report["config"]
        # Every operation of the spec is in the configuration or named as skipped.
        assert report["operations"] + len(report["skipped"]) == len(operations), (path, report["skipped"])
        for skipped in report["skipped"]:
            assert skipped.startswith("paths."), skipped
        ids = [op["id"] for op in config["operations"]]
        assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids), (path, ids)
        for op in config["operations"]:
            assert op["mode"] == ("legacy" if op["method"] in ("POST", "PUT", "PATCH", "DELETE") else "shadow"), op
        # What the CLI wrote is what the filter accepts.
        check = ctl("validate", "-", stdin=json.dumps(config))
        assert check.returncode == 0, (path, check.stderr)
        by_spec.setdefault((path.parent.parent.name, path.stem), []).append((operations, config))
    # The JSON and the YAML edition of one example give the same configuration
    # (where the two editions agree: a few upstream ones differ in a method).
    pairs = [editions for editions in by_spec.values() if len(editions) == 2 and editions[0][0] == editions[1][0]]
    assert len(pairs) > 30
    for (_, json_config), (_, yaml_config) in pairs:
        assert json_config == yaml_config


def test_a_large_spec_generates_validates_and_routes_in_envoy(backend, envoy, tmp):
    require(GITHUB)
    out = tmp / "github.json"
    result = ctl("init", "--openapi", str(GITHUB), "--out", str(out), "--base-path", "/api/v3")
    assert result.returncode == 0, result.stderr
    config = json.loads(out.read_text())
    operations = spec_operations(GITHUB)
    assert len(operations) > 1400
    assert len(config["operations"]) >= len(operations) - 5, result.stdout
    # One operation per operationId, sanitised to [A-Za-z0-9_-]+ (a suffix
    # _2, _3 where two sanitise alike), on the spec's method and path.
    expected = {(method, "/api/v3" + route): op_id for method, route, op_id in operations}
    ids = [op["id"] for op in config["operations"]]
    assert len(set(ids)) == len(ids)
    for op in config["operations"]:
        want = sanitise(expected[(op["method"], op["path"])])
        assert op["id"] == want or re.fullmatch(re.escape(want) + r"_\d+", op["id"]), (op, want)
    # Writing over an existing file needs --overwrite.
    again = ctl("init", "--openapi", str(GITHUB), "--out", str(out))
    assert again.returncode == 1 and "--overwrite" in again.stderr

    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=config, ecds=True)
    assert f'configuration applied: revision="{config["revision"]}"' in proxy.log_text()
    # A sample of operations: a request on each concrete path is counted for it.
    rng = random.Random(20261201)
    sample = rng.sample([op for op in config["operations"] if op["method"] == "GET"], 40)
    for op in sample:
        path = re.sub(r"\{[^}]+\}", "x1", op["path"])
        assert http("GET", proxy.url(path))[0] == 200, path

    def counted():
        stats = proxy.stats(filter=r"^wasmcustom\.parallel_run\.operation\.[^.]+\.requests$")
        return all(stats.get(f"wasmcustom.parallel_run.operation.{op['id']}.requests", 0) >= 1 for op in sample)

    wait_until(counted, timeout=10, message="every sampled operation counted")
    assert proxy.counter("wasmcustom.parallel_run.unknown_operation.requests") == 0


def test_lint_compares_a_configuration_with_the_spec(tmp):
    files = examples()
    petstore = next(p for p in files if p.parent.parent.name == "3.0" and p.name == "petstore.json")
    result = ctl("-o", "json", "init", "--openapi", str(petstore))
    config = json.loads(result.stdout)["config"]
    removed = config["operations"].pop(0)
    config["operations"].append({"id": "legacyOnly", "method": "GET", "path": "/old/thing"})
    path = tmp / "petstore-config.json"
    path.write_text(json.dumps(config))
    result = ctl("-o", "json", "lint", "--config", str(path), "--no-envoy", "--openapi", str(petstore))
    assert result.returncode == 0, result.stderr  # warnings
    findings = {(f["rule"], f["operation"]) for f in json.loads(result.stdout)["findings"]}
    assert findings == {("not_configured", removed["id"]), ("not_in_spec", "legacyOnly")}, findings


def test_bad_specs_are_refused_with_the_line(tmp):
    broken = tmp / "broken.yaml"
    broken.write_text("openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get: {operationId: [\n")
    result = ctl("init", "--openapi", str(broken))
    assert result.returncode == 1 and "not valid YAML" in result.stderr and "line" in result.stderr, result.stderr
    dup = tmp / "dup.json"
    dup.write_text(json.dumps({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/a": {"get": {"operationId": "same"}}, "/b": {"get": {"operationId": "same"}}}}))
    result = ctl("init", "--openapi", str(dup))
    assert result.returncode == 1
    assert 'paths./b.get: duplicate operationId "same" (also paths./a.get)' in result.stderr, result.stderr
    swagger = tmp / "swagger.json"
    swagger.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    result = ctl("init", "--openapi", str(swagger))
    assert result.returncode == 1 and "Swagger 2.0: OpenAPI 3.0 or 3.1 expected" in result.stderr
