"""The `parallel-run-ctl` binary as an operator meets it: --help, --version,
typo suggestions, completions and man page, standard input, the WasmPlugin
manifest round trip (against a real Envoy for the readiness evidence), and
`status --exit-code` as a pipeline gate.
"""

import json
import subprocess
import time

import yaml

from harness import CTL_PATH, REPO, WINDOW_START_S, free_port, http, json_response, wait_ready, wait_until

CONFIG = {
    "revision": "cli-1",
    "legacy": {"cluster": "legacy"},
    "candidate": {"cluster": "candidate"},
    # Judged at once on a window longer than the test: READY is the filter's
    # windowed rule (lower bound of 12 of 12 is 75.8% at 95% confidence).
    "defaults": {"mode": "shadow", "target_match_rate": 0.7, "min_samples": 10,
                 "readiness": {"window_s": 60, "ready_after_s": 0}},
    "operations": [
        {"id": "getItem", "method": "GET", "path": "/items/{id}"},
        {"id": "getOrder", "method": "GET", "path": "/orders/{id}"},
    ],
}


def ctl(*args, stdin=None):
    assert CTL_PATH.exists(), f"{CTL_PATH} not found: cargo build --release -p parallel-run-ctl"
    return subprocess.run([str(CTL_PATH), *args], capture_output=True, text=True, timeout=60, input=stdin)


def test_help_version_suggestions_completions_and_man_page():
    result = ctl("--version")
    assert result.returncode == 0 and result.stdout.startswith("parallel-run-ctl "), result.stdout
    result = ctl("cutover", "--help")
    assert result.returncode == 0
    for option in ("--reason", "--force", "--allow-batch", "--no-wait", "--timeout", "--git", "--ecds", "--admin", "-o"):
        assert option in result.stdout, option
    result = ctl("cutovr", "getItem")
    assert result.returncode == 2 and "similar subcommand exists: 'cutover'" in result.stderr, result.stderr
    result = ctl("status", "--ecds", "x.json", "--exti-code")
    assert result.returncode == 2 and "--exit-code" in result.stderr, result.stderr
    result = ctl("completions", "bash")
    assert result.returncode == 0 and "cutover" in result.stdout and "--allow-batch" in result.stdout
    bash = subprocess.run(["bash", "-n"], input=result.stdout, capture_output=True, text=True)
    assert bash.returncode == 0, bash.stderr  # the completion script is valid bash
    result = ctl("man")
    assert result.returncode == 0 and ".TH" in result.stdout[:300], result.stdout[:300]
    assert "parallel\\-run\\-ctl" in result.stdout and "cutover" in result.stdout


def test_configuration_from_standard_input(tmp):
    text = json.dumps(CONFIG)
    result = ctl("validate", "-", "-o", "json", stdin=text)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["file"] == "-" and document["revision"] == "cli-1"
    assert [op["id"] for op in document["operations"]] == ["getItem", "getOrder"]
    result = ctl("validate", "-", stdin=text.replace('"shadow"', '"shadw"'))
    assert result.returncode == 1 and result.stderr.startswith("-: defaults.mode: unknown variant"), result.stderr
    # Standard input cannot be written to.
    result = ctl("cutover", "getItem", "--config", "-", "--reason", "x", "--no-wait", stdin=text)
    assert result.returncode == 1 and "cannot write to standard input" in result.stderr


def manifest(config):
    """The shipped WasmPlugin manifest, comments and all, with `config` as its pluginConfig."""
    text = (REPO / "envoy" / "istio" / "wasmplugin.yaml").read_text()
    head, _, _ = text.partition("  pluginConfig:\n")
    return head + "  pluginConfig:\n" + "".join("    " + line + "\n" for line in yaml.safe_dump(config, sort_keys=False).splitlines())


def test_a_wasmplugin_manifest_is_changed_in_place_with_evidence_from_envoy(backend, envoy, tmp):
    def same(request):
        return json_response({"path": request.path.split("?")[0]})

    legacy, candidate = backend(same, name="legacy"), backend(same, name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=CONFIG, ecds=True)
    time.sleep(WINDOW_START_S)
    for n in range(12):
        assert http("GET", proxy.url(f"/items/{n}"))[0] == 200
    prefix = "wasmcustom.parallel_run.operation.getItem."
    wait_until(lambda: proxy.counter(prefix + "matched") == 12, message="12 matched getItem comparisons")
    wait_ready(proxy, "getItem")

    path = tmp / "wasmplugin.yaml"
    original = manifest(CONFIG)
    path.write_text(original)
    result = ctl("cutover", "getItem", "--config", str(path), "--admin", proxy.admin_url(),
                 "--reason", "ready on the gateway", "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["format"] == "wasmplugin" and report["evidence"][0]["verdict"] == "ready"
    # Envoy does not read this file: written, and the CLI says how to push it.
    assert report["confirmation"]["outcome"] == "not_waited"
    assert "kubectl apply" in report["confirmation"]["detail"]

    written = path.read_text()
    head = original.partition("  pluginConfig:\n")[0]
    assert written.startswith(head), "every line before pluginConfig is kept, comments included"
    document = yaml.safe_load(written)
    plugin = document["spec"]["pluginConfig"]
    assert plugin["revision"] == report["new_revision"]
    assert [op.get("mode") for op in plugin["operations"]] == ["cutover", None]
    expected = yaml.safe_load(original)
    expected["spec"]["pluginConfig"] = plugin
    assert document == expected, "nothing else in the manifest changed"
    assert (tmp / "wasmplugin.audit.jsonl").exists()

    # status reads the manifest's thresholds; `wait` would time out: Envoy runs cli-1.
    result = ctl("wait", "--config", str(path), "--admin", proxy.admin_url(), "--timeout", "1s")
    assert result.returncode == 1 and "not active after 1 s" in result.stderr, result.stderr
    result = ctl("wait", "--revision", "cli-1", "--admin", proxy.admin_url(), "--timeout", "1s")
    assert result.returncode == 0 and 'Envoy runs revision "cli-1"' in result.stdout


def test_status_exit_code_gates_a_pipeline(backend, envoy, tmp):
    def answer(name):
        def handle(request):
            path = request.path.split("?")[0]
            wrong = name == "candidate" and path.startswith("/orders/")
            return json_response({"path": path, "v": 2 if wrong else 1})
        return handle

    legacy, candidate = backend(answer("legacy"), name="legacy"), backend(answer("candidate"), name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=CONFIG, ecds=True)
    time.sleep(WINDOW_START_S)
    for n in range(12):
        assert http("GET", proxy.url(f"/items/{n}"))[0] == 200
        assert http("GET", proxy.url(f"/orders/{n}"))[0] == 200
    wait_until(lambda: proxy.counter("wasmcustom.parallel_run.operation.getOrder.unmatched") == 12
               and proxy.counter("wasmcustom.parallel_run.operation.getItem.matched") == 12, message="24 comparisons")
    wait_ready(proxy, "getItem")
    wait_ready(proxy, "getOrder", ready=0, comparisons=12)
    where = ["--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url()]

    assert ctl("status", "getItem", "--exit-code", *where).returncode == 0
    result = ctl("status", "getOrder", "--exit-code", *where)
    assert result.returncode == 3 and "not ready: getOrder" in result.stderr, result.stderr
    result = ctl("status", "--exit-code", *where, "-o", "json")
    assert result.returncode == 3
    document = json.loads(result.stdout)
    assert document["error"]["kind"] == "not_ready"
    assert {op["id"]: op["verdict"] for op in document["operations"]} == {"getItem": "ready", "getOrder": "below_target"}
    result = ctl("status", "getOrdr", *where)
    assert result.returncode == 1 and 'unknown operation "getOrdr"' in result.stderr
    port = free_port()
    result = ctl("status", "--exit-code", "--ecds", str(proxy.ecds_file), "--admin", f"http://127.0.0.1:{port}")
    assert result.returncode == 4 and "cannot connect" in result.stderr, result.stderr
    # Without --exit-code the verdicts do not change the exit status.
    assert ctl("status", *where).returncode == 0


def test_lint_reports_risky_rules_and_idle_operations(backend, envoy, tmp):
    config = dict(CONFIG, operations=CONFIG["operations"] + [
        {"id": "createItem", "method": "POST", "path": "/items"},  # shadow (the default), but POST
    ])
    legacy, candidate = backend(name="legacy"), backend(name="candidate")
    proxy = envoy({"legacy": legacy.port, "candidate": candidate.port}, config=config, ecds=True)
    assert http("GET", proxy.url("/items/1"))[0] == 200
    assert http("POST", proxy.url("/items"), body={})[0] == 200
    assert http("GET", proxy.url("/nowhere"))[0] == 200
    assert http("GET", proxy.url("/items/7/labels?token=secret"))[0] == 200
    wait_until(lambda: proxy.counter("wasmcustom.parallel_run.unknown_operation.requests") == 2, message="unknown")
    where = ["--ecds", str(proxy.ecds_file), "--admin", proxy.admin_url()]

    result = ctl("lint", *where, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr  # warnings only
    findings = {(f["rule"], f["operation"]) for f in json.loads(result.stdout)["findings"]}
    assert findings == {("unsafe_method_not_shadowed", "createItem"), ("no_traffic", "getOrder"),
                        ("unknown_operation_traffic", None)}, findings
    result = ctl("lint", *where, "--strict")
    assert result.returncode == 1 and "0 error(s), 3 warning(s)" in result.stdout, result.stdout

    # Which paths: the filter's sampled lines in Envoy's log name the shape
    # (known literals kept, every other segment `*`), never the id or query.
    wait_until(lambda: proxy.log_text().count("unknown operation method=") == 2, message="sampled lines")
    result = ctl("lint", *where, "--envoy-log", str(proxy.log_file), "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    paths = [f["message"].split(":")[0] for f in json.loads(result.stdout)["findings"]
             if f["rule"] == "unknown_operation_path"]
    assert sorted(paths) == ["GET /*", "GET /items/*/*"], paths
    assert "secret" not in proxy.log_text() and "/7/" not in proxy.log_text()

    same = tmp / "same.json"
    same.write_text(json.dumps(dict(CONFIG, candidate={"cluster": "legacy"})))
    result = ctl("lint", "--config", str(same), "--no-envoy")
    assert result.returncode == 1, result.stdout
    assert result.stdout.count("error[same_cluster]") == 2 and "note: Envoy not asked" in result.stdout
