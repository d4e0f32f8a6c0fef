"""A proxy-wasm module whose VM dies on the first request, for tests of what
Envoy does when the filter's VM is dead (FAIL_OPEN, the fallback route, the
header guard).

Killing the real filter's VM needs a bug in it, and the bugs are being fixed;
this module traps (`unreachable`) in `proxy_on_request_headers`, which is how
any guest fault ends: Envoy logs "Function: proxy_on_request_headers failed",
marks that worker's VM failed, and every later request on the worker skips the
filter (`failure_policy: FAIL_OPEN`). Measured on Envoy 1.40: the request
whose callback trapped is answered 503 by Envoy and never forwarded; the
following ones are served.

The module is assembled here byte by byte (WebAssembly binary format 1), so no
toolchain is needed: it exports the few functions the host requires (an ABI
version, `malloc`, the context, VM-start and configure callbacks, all no-ops
that succeed) and the trapping request callback.
"""

import struct
from pathlib import Path

TRAP_LOG = "Function: proxy_on_request_headers failed"

_I32 = 0x7F
_I32_CONST = 0x41
_UNREACHABLE = 0x00
_END = 0x0B


def _leb(n):
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _vec(items):
    return _leb(len(items)) + b"".join(items)


def _name(text):
    return _vec([bytes([b]) for b in text.encode()])


def _section(section_id, payload):
    return bytes([section_id]) + _leb(len(payload)) + payload


def _functype(params, results):
    return b"\x60" + _vec([bytes([p]) for p in params]) + _vec([bytes([r]) for r in results])


_TYPES = [
    _functype([], []),                       # 0: proxy_abi_version_0_2_1
    _functype([_I32, _I32], []),             # 1: proxy_on_context_create(context, parent)
    _functype([_I32, _I32], [_I32]),         # 2: proxy_on_vm_start / proxy_on_configure(context, size) -> ok
    _functype([_I32], [_I32]),               # 3: malloc(size) -> pointer
    _functype([_I32, _I32, _I32], [_I32]),   # 4: proxy_on_request_headers(context, headers, end) -> action
]

_RETURN_ONE = bytes([_I32_CONST]) + _leb(1) + bytes([_END])

# (export name, type index, body). malloc is never called (the module asks the
# host for nothing), but the host refuses a module without it.
_FUNCTIONS = [
    ("proxy_abi_version_0_2_1", 0, bytes([_END])),
    ("proxy_on_context_create", 1, bytes([_END])),
    ("proxy_on_vm_start", 2, _RETURN_ONE),
    ("proxy_on_configure", 2, _RETURN_ONE),
    ("malloc", 3, bytes([_I32_CONST]) + _leb(1024) + bytes([_END])),
    ("proxy_on_request_headers", 4, bytes([_UNREACHABLE, _END])),
]


def trapping_module():
    """The module's bytes."""
    exports = [_name("memory") + b"\x02" + _leb(0)]
    exports += [_name(name) + b"\x00" + _leb(index) for index, (name, _, _) in enumerate(_FUNCTIONS)]
    bodies = [_vec([]) + body for _, _, body in _FUNCTIONS]  # no locals
    return (b"\x00asm" + struct.pack("<I", 1)
            + _section(1, _vec(_TYPES))
            + _section(3, _vec([_leb(t) for _, t, _ in _FUNCTIONS]))
            + _section(5, _vec([b"\x00" + _leb(1)]))  # one memory, 1 page minimum, no maximum
            + _section(7, _vec(exports))
            + _section(10, _vec([_leb(len(body)) + body for body in bodies])))


def write_trapping_module(directory):
    """Writes the module into `directory`; returns its path."""
    path = Path(directory) / "trap-on-request.wasm"
    path.write_bytes(trapping_module())
    return path
