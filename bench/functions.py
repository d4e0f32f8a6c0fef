"""A wasm module's functions by size, and modules with functions of a chosen
size added, to price what V8's compilation of one function costs at load.

    python -m bench.functions list target/wasm32-wasip1/release/parallel_run.wasm --top 20
    python -m bench.functions add target/empty-filter/wasm32-wasip1/release/empty_filter.wasm \\
        /tmp/one-120k.wasm --count 1 --bytes 120000
    python -m bench.memory --setups empty --empty-wasm /tmp/one-120k.wasm --concurrency 1 --rounds 2

`list` names the functions when the module has a name section (a build with
`CARGO_PROFILE_RELEASE_STRIP=false`). `add` appends `count` functions of
about `bytes` bytes each, never called: blocks of memory loads, adds, a
conditional branch and a store, so that the optimising compiler has real
work (constants alone it would fold away). Envoy's V8 compiles every
function when the module loads, so what they cost is what their
compilation costs; bench/MEMORY.md, section 7, has the figures.
"""

import argparse
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("exports", REPO / "envoy/exports.py")
wasm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wasm)

TYPE, IMPORT, FUNCTION, CODE, CUSTOM = 1, 2, 3, 10, 0
FUNC_IMPORT = 0


def section_bodies(module):
    """[(id, body bytes)] of the module's sections, in order."""
    return [(sid, module[at:end]) for sid, _, at, end in wasm.sections(module)]


def vector(body):
    """(count, offset after it) of the vector a section body starts with."""
    return wasm.leb128(body, 0)


def name(body, at):
    """(the name at `at`, offset after it)."""
    size, at = wasm.leb128(body, at)
    return body[at:at + size].decode("utf-8", "replace"), at + size


def function_imports(body):
    """How many functions an import section imports (they come first in the index space)."""
    count, at = vector(body)
    functions = 0
    for _ in range(count):
        _, at = name(body, at)
        _, at = name(body, at)
        kind = body[at]
        at += 1
        if kind == FUNC_IMPORT:
            functions += 1
            _, at = wasm.leb128(body, at)
        elif kind == 1:  # table: element type, limits
            at = past_limits(body, at + 1)
        elif kind == 2:  # memory: limits
            at = past_limits(body, at)
        elif kind == 3:  # global: value type, mutability
            at += 2
        else:
            raise wasm.Malformed(f"import of unknown kind {kind}")
    return functions


def past_limits(body, at):
    """The offset after the limits at `at`: flags, minimum, and a maximum when flag 1 is set."""
    flags = body[at]
    _, at = wasm.leb128(body, at + 1)
    if flags & 1:
        _, at = wasm.leb128(body, at)
    return at


def bodies(body):
    """The function bodies of a code section, each with its locals."""
    count, at = vector(body)
    out = []
    for _ in range(count):
        size, at = wasm.leb128(body, at)
        out.append(body[at:at + size])
        at += size
    if at != len(body):
        raise wasm.Malformed("bytes after the last function body")
    return out


def function_names(body):
    """{function index: name} of a custom section, if it is the name section."""
    section, at = name(body, 0)
    names = {}
    if section != "name":
        return names
    while at < len(body):
        sub = body[at]
        size, at = wasm.leb128(body, at + 1)
        end = at + size
        if sub == 1:
            count, inner = wasm.leb128(body, at)
            for _ in range(count):
                index, inner = wasm.leb128(body, inner)
                names[index], inner = name(body, inner)
        at = end
    return names


def listing(module):
    """[(body bytes, name or None)] of every function the module defines, largest first."""
    imported, code, names = 0, [], {}
    for sid, body in section_bodies(module):
        if sid == IMPORT:
            imported = function_imports(body)
        elif sid == CODE:
            code = bodies(body)
        elif sid == CUSTOM:
            names.update(function_names(body))
    return sorted(((len(b), names.get(imported + i)) for i, b in enumerate(code)), key=lambda f: -f[0])


def synthetic_body(size, seed):
    """A function body of about `size` bytes: eight i32 locals, then blocks
    that load, add, branch out or store, and an `unreachable` (valid for any
    result type)."""
    code = bytearray(wasm.encode(1) + wasm.encode(8) + b"\x7f")
    state = seed
    while len(code) < size:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        load, store, local = (state >> 4) % 60000, (state >> 9) % 60000, (state >> 3) % 8
        sum_local = (local + 1) % 8
        code += b"\x02\x40"  # block
        code += b"\x41" + wasm.encode(load & 0x3FFF) + b"\x28\x02" + wasm.encode(load % 1000)  # i32.load
        code += b"\x20" + wasm.encode(local) + b"\x6a"  # local.get; i32.add
        code += b"\x22" + wasm.encode(sum_local)  # local.tee
        code += b"\x0d\x00"  # br_if 0
        code += b"\x41" + wasm.encode(store & 0x3FFF) + b"\x20" + wasm.encode(sum_local)
        code += b"\x36\x02" + wasm.encode(store % 1000)  # i32.store
        code += b"\x0b"  # end
    code += b"\x00\x0b"  # unreachable; end
    return wasm.encode(len(code)) + bytes(code)


def with_functions(module, count, size):
    """The module with `count` synthetic functions of about `size` bytes appended."""
    sections = section_bodies(module)
    type_index = no_params(dict(sections).get(TYPE, b""))
    out = bytearray(module[:8])
    for sid, body in sections:
        if sid == FUNCTION:
            n, at = vector(body)
            body = wasm.encode(n + count) + body[at:] + wasm.encode(type_index) * count
        elif sid == CODE:
            n, at = vector(body)
            body = wasm.encode(n + count) + body[at:] + b"".join(synthetic_body(size, i + 1) for i in range(count))
        out += bytes([sid]) + wasm.encode(len(body)) + body
    return bytes(out)


def no_params(types):
    """The index of a function type without parameters (the synthetic bodies use only locals)."""
    count, at = vector(types)
    for index in range(count):
        if types[at] != 0x60:
            raise wasm.Malformed(f"type {index} is not a function type")
        params, at = wasm.leb128(types, at + 1)
        at += params
        results, at = wasm.leb128(types, at)
        at += results
        if params == 0:
            return index
    raise wasm.Malformed("no function type without parameters")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="functions by size, largest first")
    ls.add_argument("module")
    ls.add_argument("--top", type=int, default=20)
    add = sub.add_parser("add", help="append synthetic functions")
    add.add_argument("module")
    add.add_argument("output")
    add.add_argument("--count", type=int, required=True)
    add.add_argument("--bytes", type=int, required=True)
    args = p.parse_args()
    module = Path(args.module).read_bytes()
    if args.command == "list":
        functions = listing(module)
        total = sum(size for size, _ in functions)
        print(f"{args.module}: {len(module):,} bytes, {len(functions):,} functions, {total:,} bytes of code")
        for size, label in functions[:args.top]:
            print(f"{size:>9,}  {label or '(no name section)'}")
        return 0
    out = with_functions(module, args.count, args.bytes)
    Path(args.output).write_bytes(out)
    print(f"{args.output}: {len(out):,} bytes ({args.count} functions of about {args.bytes:,} bytes added)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
