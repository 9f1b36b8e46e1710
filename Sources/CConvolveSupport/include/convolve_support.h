#ifndef CONVOLVE_SUPPORT_H
#define CONVOLVE_SUPPORT_H
/// Keeps freed large buffers in the heap (no mmap/munmap and page faults per tensor).
void convolve_tune_allocator(void);
/// Returns free heap memory to the system (between phases: the tuned allocator never trims by itself).
void convolve_release_memory(void);
/// The CPUs the calling thread may run on (its affinity mask), in increasing order: the first
/// `capacity` ids into `cpus`. Returns how many there are (possibly more than `capacity`), or -1 where
/// unknown (not Linux, or the call failed).
int convolve_allowed_cpus(int *cpus, int capacity);
/// Binds the calling thread to one CPU (Linux); 0 on success, -1 otherwise (the thread is unchanged).
int convolve_bind_thread(int cpu);
/// One spin-wait hint: x86's `pause` (tens of cycles, yields the core's pipeline to a sibling
/// hyper-thread), AArch64's `yield`. A spin loop of these has a length in time, unlike an empty one.
static inline void convolve_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

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

/// gzip in one call through libdeflate, loaded at run time (dlopen) if installed.
/// Whether libdeflate.so.0 could be loaded.
int convolve_gunzip_available(void);
/// Inflates the single gzip member `in` into `out`: 0 with `*written` set; non-zero when it cannot
/// (no library, `out` too small, more than one member, corrupt data): stream with zlib instead.
int convolve_gunzip(const unsigned char *in, unsigned long in_size, unsigned char *out, unsigned long out_size,
                    unsigned long *written);

/// HTTP(S) GET through libcurl, loaded at run time (dlopen). Both return 0 on success and otherwise
/// write a message into `error` (`error_size` bytes).
/// Loads the library once (thread-safe); non-zero when it is missing.
int convolve_http_load(char *error, int error_size);
/// Receives each piece of the body and the declared length (-1: unknown); non-zero stops the transfer.
typedef int (*convolve_http_sink)(void *context, const unsigned char *data, unsigned long size, long long expected);
/// Streams `url`'s body (after redirects) to `sink`; fails on a status other than 200, a connection
/// error, a body shorter than its Content-Length, or `timeout_seconds` without data.
int convolve_http_get(const char *url, long timeout_seconds, void *context, convolve_http_sink sink,
                      char *error, int error_size);

/// MPI through Open MPI's libmpi.so.40, loaded at run time (dlopen), so building needs no MPI headers
/// or library. Open MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are macros for the addresses
/// of its exported globals; the shim looks those up. Every function returns 0 on success and otherwise
/// writes a message into `error` (`error_size` bytes) or returns MPI's error code.
/// Loads the library and calls MPI_Init_thread (funneled); non-zero when MPI is missing or fails.
int convolve_mpi_init(int *rank, int *size, char *error, int error_size);
/// Sum of `count` floats over all ranks, in place.
int convolve_mpi_allreduce_float(float *buffer, long count);
/// Sum of `count` doubles over all ranks, in place.
int convolve_mpi_allreduce_double(double *buffer, long count);
/// Rank `root`'s `count` bytes to every rank.
int convolve_mpi_broadcast(void *buffer, long count, int root);
/// Waits for every rank.
int convolve_mpi_barrier(void);
/// Ends every rank of the job with `code` (MPI_Abort on MPI_COMM_WORLD).
void convolve_mpi_abort(int code);
/// MPI_Finalize.
int convolve_mpi_finalize(void);
#endif
