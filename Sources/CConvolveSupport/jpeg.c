// JPEG decoding with libjpeg-turbo's TurboJPEG API (libturbojpeg.so.0, Debian's libturbojpeg0), looked
// up with dlopen at first use: `swift build` needs only the toolchain, and a machine without the library
// gets one message naming the package. Only the stable TurboJPEG 2.x entry points are used (also
// exported by 3.x).
#include "convolve_support.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef void *tjhandle;
static tjhandle (*tj_init_decompress)(void);
static int (*tj_decompress_header3)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *);
static int (*tj_decompress2)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
static char *(*tj_get_error_str2)(tjhandle);
static int (*tj_destroy)(tjhandle);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];
static int loaded;

enum { TJPF_RGB = 0, TJPF_GRAY = 6, TJCS_GRAY = 2, TJCS_CMYK = 3, TJCS_YCCK = 4, TJFLAG_STOPONWARNING = 8192 };

static void load_library(void) {
    const char *names[] = {"libturbojpeg.so.0", "libturbojpeg.so", NULL};
    void *lib = NULL;
    for (int i = 0; names[i] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error,
                 "JPEG support needs libjpeg-turbo's TurboJPEG library (libturbojpeg.so.0), which is not installed: "
                 "apt-get install libturbojpeg0");
        return;
    }
    tj_init_decompress = (tjhandle (*)(void))dlsym(lib, "tjInitDecompress");
    tj_decompress_header3 = (int (*)(tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *))
        dlsym(lib, "tjDecompressHeader3");
    tj_decompress2 = (int (*)(tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int))
        dlsym(lib, "tjDecompress2");
    tj_get_error_str2 = (char *(*)(tjhandle))dlsym(lib, "tjGetErrorStr2");
    tj_destroy = (int (*)(tjhandle))dlsym(lib, "tjDestroy");
    if (!tj_init_decompress || !tj_decompress_header3 || !tj_decompress2 || !tj_get_error_str2 || !tj_destroy) {
        snprintf(load_error, sizeof load_error, "libturbojpeg.so.0 lacks the TurboJPEG 2 functions (version too old)");
        return;
    }
    loaded = 1;
}

int convolve_jpeg_load(char *error, int error_size) {
    pthread_once(&load_once, load_library);
    if (!loaded) snprintf(error, (size_t)error_size, "%s", load_error);
    return loaded ? 0 : -1;
}

static int fail(tjhandle h, const char *what, char *error, int error_size) {
    snprintf(error, (size_t)error_size, "%s: %s", what, h ? tj_get_error_str2(h) : "cannot create a decoder");
    if (h) tj_destroy(h);
    return -1;
}

int convolve_jpeg_header(const unsigned char *data, unsigned long size, int *width, int *height, int *grey,
                         char *error, int error_size) {
    if (convolve_jpeg_load(error, error_size) != 0) return -1;
    tjhandle h = tj_init_decompress();
    if (!h) return fail(h, "not a readable JPEG", error, error_size);
    int subsampling = 0, colorspace = 0;
    if (tj_decompress_header3(h, data, size, width, height, &subsampling, &colorspace) != 0)
        return fail(h, "not a readable JPEG", error, error_size);
    tj_destroy(h);
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        snprintf(error, (size_t)error_size, "CMYK JPEGs are not supported (convert the image to RGB)");
        return -1;
    }
    *grey = colorspace == TJCS_GRAY;
    return 0;
}

int convolve_jpeg_decode(const unsigned char *data, unsigned long size, unsigned char *dst, int width, int height,
                         int channels, char *error, int error_size) {
    if (convolve_jpeg_load(error, error_size) != 0) return -1;
    tjhandle h = tj_init_decompress();
    if (!h) return fail(h, "not a readable JPEG", error, error_size);
    // Warnings (a truncated file, corrupt data) stop decoding: such a file is an error, as in Pillow.
    if (tj_decompress2(h, data, size, dst, width, width * channels, height, channels == 1 ? TJPF_GRAY : TJPF_RGB,
                       TJFLAG_STOPONWARNING) != 0)
        return fail(h, "corrupt or truncated JPEG data", error, error_size);
    tj_destroy(h);
    return 0;
}
