#!/usr/bin/env python3
"""Print the value the filter's `parallel_run.config.revision` gauge takes for a revision.

    python3 envoy/istio/fingerprint.py REVISION

Every VM of a proxy sets the gauge when it accepts a configuration, to this
number computed from the configuration's `revision`; a refused push leaves
the previous value. So a proxy runs revision R exactly when its gauge reads
`fingerprint(R)` (README, "Loading it into Istio", confirmation). The
definition is the filter's (core/src/counters.rs, revision_fingerprint):
FNV-1a 64 over the UTF-8 bytes, cut to the low 52 bits so that Prometheus'
float64 samples hold it exactly, and never 0 (what a gauge reads before
anything set it).
"""

import sys

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK_52 = (1 << 52) - 1


def fingerprint(revision):
    value = FNV_OFFSET
    for byte in revision.encode():
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return max(value & MASK_52, 1)


def main(argv):
    if len(argv) != 1:
        print("usage: fingerprint.py REVISION", file=sys.stderr)
        return 2
    print(fingerprint(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
