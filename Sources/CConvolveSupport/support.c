#include "convolve_support.h"
#include <malloc.h>
#include <unistd.h>

void convolve_tune_allocator(void) {
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    // One arena per core plus one for the loader: threads allocating scratch in parallel ops do not
    // queue on one arena lock (a futex sleep each time they meet), while memory stays bounded.
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mallopt(M_ARENA_MAX, (int)(cores > 0 ? cores + 1 : 2));
#endif
}

void convolve_release_memory(void) {
#ifdef M_MMAP_THRESHOLD
    malloc_trim(0);
#endif
}
