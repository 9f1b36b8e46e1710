#ifndef CONVOLVE_SUPPORT_H
#define CONVOLVE_SUPPORT_H
/// Keeps freed large buffers in the heap (no mmap/munmap and page faults per tensor).
void convolve_tune_allocator(void);
/// Returns free heap memory to the system (between phases: the tuned allocator never trims by itself).
void convolve_release_memory(void);

/// JPEG decoding through libjpeg-turbo's TurboJPEG library, loaded at run time (dlopen), so building
/// needs no JPEG headers or library. Every function returns 0 on success and otherwise writes a
/// message into `error` (`error_size` bytes).
/// Loads the library once (thread-safe); non-zero when it is missing.
int convolve_jpeg_load(char *error, int error_size);
/// Reads a JPEG's size and whether it is greyscale, without decoding its pixels.
int convolve_jpeg_header(const unsigned char *data, unsigned long size, int *width, int *height, int *grey,
                         char *error, int error_size);
/// Decodes to `channels` (1: grey, 3: RGB) interleaved bytes at `dst` (`width * height * channels`).
int convolve_jpeg_decode(const unsigned char *data, unsigned long size, unsigned char *dst, int width, int height,
                         int channels, char *error, int error_size);
#endif
