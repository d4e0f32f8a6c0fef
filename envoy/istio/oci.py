#!/usr/bin/env python3
"""Write the filter module as an OCI image layout that Istio can pull (`make oci`).

    python3 envoy/istio/oci.py MODULE.wasm OUT_DIR [--tag TAG]

OUT_DIR becomes an OCI image layout (image-spec v1.1 "image-layout"):
`oci-layout`, `index.json` (one manifest, named TAG) and `blobs/sha256/`
holding the image manifest, its config and one layer. The manifest digest is
printed: that is what Istio's agent compares with a WasmPlugin's `sha256`
(or the `@sha256:` of its url) after pulling.

The form is the one Istio's image fetcher (pkg/wasm/imagefetcher.go) calls
the "compat" variant: an ordinary OCI image whose last layer, of media type
application/vnd.oci.image.layer.v1.tar+gzip, is a tar.gz holding
`plugin.wasm`. Chosen over the fetcher's other form, the OCI artifact with
the media type application/vnd.module.wasm.content.layer.v1+wasm, because
Istio accepts that one only with exactly two layers (the module and a
runtime-config JSON), whereas an ordinary single-layer image is what every
registry and tool (crane, oras, skopeo, cosign) copies, signs and shows
without special cases.

Deterministic: the same module gives the same bytes and so the same digests
(tar entry with fixed owner, mode and time; gzip without a name and with
time 0; JSON with sorted keys and no whitespace). Standard library only;
no container engine.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
# The file name Istio's fetcher looks for in the layer (any directory).
MODULE_NAME = "plugin.wasm"
# Refuse what Istio would refuse: its fetcher reads at most this much of an
# uncompressed layer (features.MaxWasmBinarySizeBytes, 256 MiB by default).
MAX_MODULE_BYTES = 256 << 20
WASM_MAGIC = b"\0asm"


class OciError(Exception):
    """The module cannot be packed; the message says why."""


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type, data, annotations=None):
    desc = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if annotations:
        desc["annotations"] = annotations
    return desc


def layer_tar(module):
    """An uncompressed tar with one regular file, plugin.wasm, and nothing that varies."""
    info = tarfile.TarInfo(MODULE_NAME)
    info.size = len(module)
    info.mode = 0o444
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return out.getvalue()


def gzip_bytes(data):
    # mtime=0 and no file name in the header: the same input, the same bytes.
    return gzip.compress(data, compresslevel=9, mtime=0)


def build(module, tag):
    """The blobs of the image and the index.json naming it: (blobs by digest, index bytes, manifest digest)."""
    if len(module) > MAX_MODULE_BYTES:
        raise OciError(f"module is {len(module)} bytes, above Istio's limit of {MAX_MODULE_BYTES}")
    if not module.startswith(WASM_MAGIC):
        raise OciError("module does not start with the wasm magic bytes \\0asm: not a wasm binary")
    tar = layer_tar(module)
    layer = gzip_bytes(tar)
    # The config an image needs (image-spec "config"): platform as Go names
    # wasm targets, and the layer's uncompressed digest, which registries
    # and tools check the layer against.
    config = canonical_json({
        "architecture": "wasm",
        "os": "wasip1",
        "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]},
        "config": {},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, layer)],
        "annotations": {"org.opencontainers.image.title": MODULE_NAME},
    })
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [descriptor(MANIFEST_TYPE, manifest, {"org.opencontainers.image.ref.name": tag})],
    })
    blobs = {digest_of(blob): blob for blob in (layer, config, manifest)}
    return blobs, index, digest_of(manifest)


def write_layout(out_dir, blobs, index):
    """Write the layout into out_dir, replacing a previous one (stale blobs removed)."""
    out_dir = Path(out_dir)
    blob_dir = out_dir / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    keep = {digest.split(":", 1)[1] for digest in blobs}
    for old in blob_dir.iterdir():
        if old.name not in keep:
            old.unlink()
    for digest, data in blobs.items():
        (blob_dir / digest.split(":", 1)[1]).write_bytes(data)
    (out_dir / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    tmp = out_dir / f".index.json.{os.getpid()}"
    tmp.write_bytes(index)
    os.replace(tmp, out_dir / "index.json")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("module", type=Path, help="the built filter, e.g. target/wasm32-wasip1/release/parallel_run.wasm")
    parser.add_argument("out_dir", type=Path, help="directory to write the OCI image layout into")
    parser.add_argument("--tag", default="latest", help="name of the image in index.json (org.opencontainers.image.ref.name)")
    args = parser.parse_args(argv)
    try:
        module = args.module.read_bytes()
        blobs, index, manifest_digest = build(module, args.tag)
        write_layout(args.out_dir, blobs, index)
    except (OSError, OciError) as err:
        print(f"oci: {args.module}: {err}", file=sys.stderr)
        return 1
    print(f"oci: {args.out_dir} ({args.module.name}, {len(module)} bytes, tag {args.tag})")
    print(f"digest: {manifest_digest}")
    print(f"pin it in envoy/istio/wasmplugin.yaml: sha256: {manifest_digest.split(':', 1)[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
