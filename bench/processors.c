/* How many processors V8 believes the machine has, for bench.memory's
 * --processors: preloaded into the proxy Envoy only (LD_PRELOAD), it answers
 * sysconf's processor counts from PARALLEL_RUN_PROCESSORS and passes every
 * other name to the C library.
 *
 * Why: V8's default platform sizes its worker pool from
 * sysconf(_SC_NPROCESSORS_ONLN) (the processors minus one, at most 16), not
 * from the CPU affinity or a container's CPU limit, and Envoy's V8 compiles
 * the module at load on that pool. A proxy on a 64-core node compiles on 16
 * threads, whatever its pod's limit; this lets a 2-core machine measure
 * that (bench/MEMORY.md, section 8). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

long sysconf(int name) {
    static long (*real)(int);
    if (!real) {
        real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
    }
    if (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF) {
        const char *count = getenv("PARALLEL_RUN_PROCESSORS");
        long value = count ? atol(count) : 0;
        if (value > 0) {
            return value;
        }
    }
    return real ? real(name) : -1;
}
