"""The shipped module's largest function stays under a bound.

Envoy's V8 compiles every function with its optimising compiler when the
module loads; the memory that compiler takes for one function grows faster
than the function's size, and once freed Envoy's allocator keeps it.
Measured with Envoy 1.40 (bench/MEMORY.md, section 7): 120 KB of code
appended to the empty module cost +23.4 MiB of resident memory as one
function, +7.5 MiB as four and +0.5 MiB as 120. The filter's own largest function
was 26.8 KB (a derived configuration deserializer with every field's
parser inlined) before its cold code was kept in functions of their own
(the crate docs, "Function size"); a change that lets LLVM inline them
back fails here instead of costing every proxy megabytes unnoticed.
"""

from pathlib import Path

from bench import functions

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "target/wasm32-wasip1/release/parallel_run.wasm"

# The bound: the largest function was 13,025 bytes when it was set (`Object`'s
# visitor in the configuration reader, a derived struct's fields inlined),
# 8,347 since the module is built at opt-level "s" (the mask pattern
# parser; bench/MEMORY.md, section 8); 16 KiB leaves room for a build at
# opt-level 2 (CARGO_PROFILE_RELEASE_OPT_LEVEL=2, the profile's comment). One
# function appended to the empty module measured, at load: 16 KB +0.8 MiB,
# 30 KB +2.6 MiB, 60 KB +7.0 MiB, 120 KB +23.9 MiB (faster than its size).
MAX_FUNCTION_BYTES = 16 * 1024


def test_no_function_of_the_shipped_module_is_over_the_bound():
    sizes = [size for size, _ in functions.listing(SHIPPED.read_bytes())]
    assert len(sizes) > 1000  # the whole filter, not a stub
    largest = max(sizes)
    assert largest <= MAX_FUNCTION_BYTES, (
        f"the module's largest function is {largest:,} bytes (bound {MAX_FUNCTION_BYTES:,}): "
        "V8's compilation of it costs every proxy memory at load; keep the cold code it inlines "
        "in functions of its own (#[inline(never)], the crate docs' \"Function size\")")


def test_the_reader_counts_functions_added_to_a_module():
    # bench/functions.py's reader is the one the bound above relies on: the
    # functions it appends (bench/MEMORY.md, section 7) are read back whole.
    module = SHIPPED.read_bytes()
    before = functions.listing(module)
    grown = functions.listing(functions.with_functions(module, 3, 20_000))
    assert len(grown) == len(before) + 3
    added = sorted(size for size, _ in grown)[-3:]
    assert all(20_000 <= size < 20_100 for size in added), added
