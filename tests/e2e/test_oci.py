"""`make oci`'s image layout, read back the way Istio's image fetcher reads an image.

envoy/istio/oci.py writes an OCI image layout of the built module. Here it is
read with nothing but the OCI image-layout rules and the steps of Istio's
pkg/wasm/imagefetcher.go for the "compat" variant (an OCI manifest; its last
layer of type application/vnd.oci.image.layer.v1.tar+gzip; gunzip, untar,
the entry whose base name is plugin.wasm): every blob's digest and size
against its descriptor, the layer against the module, the digest printed
against the manifest, and the whole layout against a second run.
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

from harness import REPO

SCRIPT = REPO / "envoy" / "istio" / "oci.py"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def write_layout(module, out_dir, tag="0.1.0"):
    result = subprocess.run([sys.executable, str(SCRIPT), str(module), str(out_dir), "--tag", tag],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    [digest] = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("digest: ")]
    return digest


def blob(layout, descriptor):
    """The blob a descriptor points at, checked against the descriptor's digest and size."""
    algorithm, hex_digest = descriptor["digest"].split(":", 1)
    assert algorithm == "sha256"
    data = (layout / "blobs" / "sha256" / hex_digest).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hex_digest, f"blob {hex_digest} does not hash to its name"
    assert len(data) == descriptor["size"], f"blob {hex_digest}: size {len(data)} != descriptor {descriptor['size']}"
    return data


def extract_module(layout, tag):
    """Follow index.json to the tagged manifest and take plugin.wasm out of it like Istio's fetcher."""
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    [entry] = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert entry["mediaType"] == OCI_MANIFEST
    manifest = json.loads(blob(layout, entry))
    assert manifest["schemaVersion"] == 2
    assert manifest.get("mediaType", "") != DOCKER_MANIFEST, "the fetcher would take the Docker path"
    config = json.loads(blob(layout, manifest["config"]))
    assert manifest["config"]["mediaType"] == OCI_CONFIG

    assert len(manifest["layers"]) == 1, "one layer: the module"
    layer_descriptor = manifest["layers"][-1]  # the fetcher reads the last layer
    assert layer_descriptor["mediaType"] == OCI_LAYER
    layer = blob(layout, layer_descriptor)
    tar_bytes = gzip.decompress(layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        assert members[0].isfile()
        return tar.extractfile(members[0]).read(), entry["digest"]


def test_layout_holds_the_module_as_istio_reads_it(wasm_path, tmp):
    digest = write_layout(wasm_path, tmp / "layout")
    module, manifest_digest = extract_module(tmp / "layout", "0.1.0")
    assert module == wasm_path.read_bytes()
    assert digest == manifest_digest, "the printed digest is the manifest's: what a WasmPlugin pins"
    blobs = sorted(os.listdir(tmp / "layout" / "blobs" / "sha256"))
    assert len(blobs) == 3, f"manifest, config and layer only: {blobs}"


def test_same_module_same_digest_and_another_module_another(wasm_path, tmp):
    first = write_layout(wasm_path, tmp / "a")
    again = write_layout(wasm_path, tmp / "b")
    assert first == again
    for name in ("index.json", "oci-layout"):
        assert (tmp / "a" / name).read_bytes() == (tmp / "b" / name).read_bytes()

    changed = tmp / "changed.wasm"
    changed.write_bytes(wasm_path.read_bytes() + b"\0")  # a trailing byte: another module
    other = write_layout(changed, tmp / "a")  # rewritten in place: the old blobs go
    assert other != first
    module, digest = extract_module(tmp / "a", "0.1.0")
    assert module == changed.read_bytes() and digest == other
    assert len(os.listdir(tmp / "a" / "blobs" / "sha256")) == 3


def test_what_is_not_a_module_is_refused(tmp):
    not_wasm = tmp / "README.md"
    not_wasm.write_text("# not a module\n")
    result = subprocess.run([sys.executable, str(SCRIPT), str(not_wasm), str(tmp / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "not a wasm binary" in result.stderr
    assert not (tmp / "out" / "index.json").exists()
