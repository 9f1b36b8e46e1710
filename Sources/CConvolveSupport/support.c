#include "convolve_support.h"
#include <malloc.h>

void convolve_tune_allocator(void) {
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
    mallopt(M_ARENA_MAX, 1);
#endif
}

void convolve_release_memory(void) {
#ifdef M_MMAP_THRESHOLD
    malloc_trim(0);
#endif
}
