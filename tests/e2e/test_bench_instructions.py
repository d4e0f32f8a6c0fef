"""The instruction counter's reading of callgrind dumps (bench/instructions.py).

Valgrind itself is not run here (a counted proxy takes minutes to start);
the parser is fed a dump in callgrind's compressed format, written the way
Valgrind 3.19 writes the proxy's, and the section table of the real Envoy
binary is read.
"""

from bench.instructions import Places, elf_sections, parse_dump
from testbed.envoy import envoy_binary

# Object (3) is used by cost lines before a `cob=` line names it; the line
# after each `calls=` is the callee's inclusive cost, not the caller's own.
DUMP = """\
version: 1
creator: callgrind-3.19.0
events: Ir
ob=(3)
fn=(10) 0x0000000001000000
0 500
cob=(2) ???
cfn=(11) 0x0000000000002000
calls=7 0x0
0 9000
ob=(2)
fn=(11)
0 4000
ob=(3)
cob=(3) /opt/envoy/bin/envoy
fn=(10)
+3 25
summary: 4525
"""


def test_a_dump_is_split_by_object_and_function_own_cost_only(tmp_path):
    path = tmp_path / "callgrind.out.1"
    path.write_text(DUMP)
    total, costs = parse_dump(path)
    assert total == 4525
    assert costs == {("/opt/envoy/bin/envoy", "0x0000000001000000"): 525,
                     ("???", "0x0000000000002000"): 4000}
    assert sum(costs.values()) == total


def test_code_valgrind_leaves_unnamed_is_placed_by_envoys_sections():
    sections = elf_sections(envoy_binary())
    assert ".text" in sections and "google_malloc" in sections
    base = 0x108000
    places = Places(base, sections)
    malloc_at, _ = sections["google_malloc"]
    text_at, _ = sections[".text"]
    assert places.part("???", hex(base + malloc_at + 16)) == "allocator"
    assert places.part("???", hex(base + text_at + 16)) == "envoy"
    assert places.part("???", "0x7f0000001000") == "anonymous"
    assert places.part("/usr/lib/x86_64-linux-gnu/libc.so.6", "memcpy") == "libc"
    assert places.part("/some/path/envoy", "0x10") == "envoy"
