"""The module Envoy loads: the built filter with the callbacks it does not
need taken out of its exports.

    python3 envoy/exports.py target/wasm32-wasip1/release/parallel_run.wasm   # in place; `make build` runs it

The proxy-wasm Rust SDK exports every callback of the ABI, and Envoy calls
each one a module exports. `proxy_on_log` is one crossing into the VM per
request that the filter does not need: a stream's end is handled where
the context is deleted (`Drop` in src/stream.rs), right after Envoy's
access-log phase. Counted with `bench/instructions.py`: 1,501 instructions
a pass-through request less, 0.66% (bench/OPTIMISATIONS.md, "Session 27").
A module built by cargo alone keeps the export and works the same.

Only the export section changes: the function stays in the code section
(nothing calls it), every other byte of the module is kept. Running it
again on its own output changes nothing; so does running it on a module
without the export.
"""

import argparse
import shutil
import sys
from pathlib import Path

# Callbacks Envoy would call per request that the filter does not need.
UNNEEDED = ("proxy_on_log",)

MAGIC = b"\0asm\x01\0\0\0"
EXPORT_SECTION = 7


class Malformed(Exception):
    pass


def leb128(data, at):
    """(value, next offset) of the unsigned LEB128 number at `at`."""
    value = shift = 0
    for _ in range(5):  # a u32 takes at most 5 bytes
        if at >= len(data):
            raise Malformed(f"truncated number at byte {at}")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise Malformed(f"number longer than 5 bytes at byte {at}")


def encode(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def exports(body):
    """[(name, raw entry bytes)] of an export section's body."""
    count, at = leb128(body, 0)
    entries = []
    for _ in range(count):
        start = at
        size, at = leb128(body, at)
        name = body[at:at + size]
        at += size
        if at >= len(body):
            raise Malformed("export entry runs past its section")
        at += 1  # the kind: function, table, memory, global
        _, at = leb128(body, at)  # the index
        entries.append((name.decode("utf-8", "replace"), body[start:at]))
    if at != len(body):
        raise Malformed("bytes after the last export")
    return entries


def sections(module):
    """(id, start, body start, end) of every section of a module, in order."""
    if module[:8] != MAGIC:
        raise Malformed("not a WebAssembly 1.0 module")
    at = 8
    while at < len(module):
        size, body_at = leb128(module, at + 1)
        end = body_at + size
        if end > len(module):
            raise Malformed(f"section {module[at]} runs past the end of the module")
        yield module[at], at, body_at, end
        at = end


def exports_of(module):
    """[(name, raw entry bytes)] of every export of a module."""
    for section, _, body_at, end in sections(module):
        if section == EXPORT_SECTION:
            return exports(module[body_at:end])
    return []


def without(module, names):
    """(the module without the exports named, the names taken out)."""
    out = bytearray(MAGIC)
    removed = []
    for section, start, body_at, end in sections(module):
        if section == EXPORT_SECTION:
            entries = exports(module[body_at:end])
            kept = [raw for name, raw in entries if name not in names]
            removed += [name for name, _ in entries if name in names]
            body = encode(len(kept)) + b"".join(kept)
            out += bytes([section]) + encode(len(body)) + body
        else:
            out += module[start:end]
    return bytes(out), removed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("module", type=Path)
    args = p.parse_args()
    try:
        module = args.module.read_bytes()
        trimmed, removed = without(module, UNNEEDED)
        # Read back: what is written must parse, and have lost only those.
        left = {name for name, _ in exports_of(trimmed)}
        if set(UNNEEDED) & left or len(exports_of(module)) - len(removed) != len(left):
            raise Malformed("the rewritten module does not read back as expected")
    except (OSError, Malformed) as err:
        sys.exit(f"envoy/exports.py: {args.module}: {err}")
    if removed:
        # A new file renamed over the old: cargo's copy in deps/ is a hard
        # link to the old one and stays as cargo wrote it, and a reader
        # sees one module or the other, never half of each.
        partial = args.module.with_name(args.module.name + ".partial")
        partial.write_bytes(trimmed)
        shutil.copymode(args.module, partial)
        partial.replace(args.module)
    print(f"{args.module}: {', '.join(removed) or 'nothing'} taken out of the exports "
          f"({len(module)} -> {len(trimmed)} bytes)")


if __name__ == "__main__":
    main()
