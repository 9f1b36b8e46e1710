#ifndef CONVOLVE_SUPPORT_H
#define CONVOLVE_SUPPORT_H
/// Keeps freed large buffers in the heap (no mmap/munmap and page faults per tensor).
void convolve_tune_allocator(void);
#endif
