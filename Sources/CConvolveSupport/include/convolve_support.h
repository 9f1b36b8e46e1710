#ifndef CONVOLVE_SUPPORT_H
#define CONVOLVE_SUPPORT_H
/// Keeps freed large buffers in the heap (no mmap/munmap and page faults per tensor).
void convolve_tune_allocator(void);
/// Returns free heap memory to the system (between phases: the tuned allocator never trims by itself).
void convolve_release_memory(void);
#endif
