// HTTP(S) downloads with libcurl (libcurl.so.4, Debian's libcurl4, which the Swift toolchain itself
// needs), looked up with dlopen at first use. Linking Foundation's URLSession instead would load libcurl,
// GnuTLS, Kerberos and their dependencies into every process at start (~5 MB resident, and the dynamic
// linking time) for a feature that runs once per dataset, and would keep the executables from linking
// the Swift runtime statically. Only the stable easy interface is used (libcurl ≥ 7.55).
#include "convolve_support.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef void CURL;
// Option and info numbers from curl.h (stable ABI): type base + number.
enum {
    OPT_WRITEDATA = 10001, OPT_URL = 10002, OPT_ERRORBUFFER = 10010, OPT_USERAGENT = 10018,
    OPT_WRITEFUNCTION = 20011, OPT_LOW_SPEED_LIMIT = 19, OPT_LOW_SPEED_TIME = 20, OPT_NOPROGRESS = 43,
    OPT_FAILONERROR = 45, OPT_FOLLOWLOCATION = 52, OPT_MAXREDIRS = 68, OPT_CONNECTTIMEOUT = 78, OPT_NOSIGNAL = 99,
    INFO_RESPONSE_CODE = 0x200002, INFO_CONTENT_LENGTH_DOWNLOAD_T = 0x60000F,
    CURLE_OK = 0, CURLE_WRITE_ERROR = 23, CURLE_HTTP_RETURNED_ERROR = 22, ERROR_SIZE = 256,
    GLOBAL_DEFAULT = 3,
};

static int (*curl_global_init_)(long);
static CURL *(*curl_easy_init_)(void);
static int (*curl_easy_setopt_)(CURL *, int, ...);
static int (*curl_easy_perform_)(CURL *);
static int (*curl_easy_getinfo_)(CURL *, int, ...);
static const char *(*curl_easy_strerror_)(int);
static void (*curl_easy_cleanup_)(CURL *);

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256];
static int loaded;

static void load_library(void) {
    const char *names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so", NULL};
    void *lib = NULL;
    for (int i = 0; names[i] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error,
                 "downloading needs libcurl (libcurl.so.4), which is not installed: apt-get install libcurl4");
        return;
    }
    curl_global_init_ = (int (*)(long))dlsym(lib, "curl_global_init");
    curl_easy_init_ = (CURL * (*)(void)) dlsym(lib, "curl_easy_init");
    curl_easy_setopt_ = (int (*)(CURL *, int, ...))dlsym(lib, "curl_easy_setopt");
    curl_easy_perform_ = (int (*)(CURL *))dlsym(lib, "curl_easy_perform");
    curl_easy_getinfo_ = (int (*)(CURL *, int, ...))dlsym(lib, "curl_easy_getinfo");
    curl_easy_strerror_ = (const char *(*)(int))dlsym(lib, "curl_easy_strerror");
    curl_easy_cleanup_ = (void (*)(CURL *))dlsym(lib, "curl_easy_cleanup");
    if (!curl_global_init_ || !curl_easy_init_ || !curl_easy_setopt_ || !curl_easy_perform_ || !curl_easy_getinfo_ ||
        !curl_easy_strerror_ || !curl_easy_cleanup_) {
        snprintf(load_error, sizeof load_error, "libcurl.so.4 lacks the easy interface's functions");
        return;
    }
    if (curl_global_init_(GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_error, sizeof load_error, "libcurl could not initialize");
        return;
    }
    loaded = 1;
}

int convolve_http_load(char *error, int error_size) {
    pthread_once(&load_once, load_library);
    if (!loaded) snprintf(error, (size_t)error_size, "%s", load_error);
    return loaded ? 0 : -1;
}

struct transfer {
    CURL *curl;
    void *context;
    convolve_http_sink sink;
    long status;
    long long expected;   // Content-Length, -1 when not declared
    int stopped_by_sink;
};

static size_t on_data(char *data, size_t size, size_t count, void *user) {
    struct transfer *t = user;
    size_t n = size * count;
    if (t->status == 0) {   // the first piece of the body: the response's status and declared length
        curl_easy_getinfo_(t->curl, INFO_RESPONSE_CODE, &t->status);
        curl_easy_getinfo_(t->curl, INFO_CONTENT_LENGTH_DOWNLOAD_T, &t->expected);
    }
    if (t->status != 200) return 0;   // a 2xx/3xx that is not the file: stop, reported below
    if (t->sink(t->context, (const unsigned char *)data, n, t->expected) != 0) { t->stopped_by_sink = 1; return 0; }
    return n;
}

int convolve_http_get(const char *url, long timeout_seconds, void *context, convolve_http_sink sink,
                      char *error, int error_size) {
    if (convolve_http_load(error, error_size) != 0) return -1;
    struct transfer t = {curl_easy_init_(), context, sink, 0, -1, 0};
    if (!t.curl) { snprintf(error, (size_t)error_size, "libcurl could not create a transfer"); return -1; }
    char curl_error[ERROR_SIZE] = "";
    curl_easy_setopt_(t.curl, OPT_URL, url);
    curl_easy_setopt_(t.curl, OPT_WRITEFUNCTION, on_data);
    curl_easy_setopt_(t.curl, OPT_WRITEDATA, &t);
    curl_easy_setopt_(t.curl, OPT_ERRORBUFFER, curl_error);
    curl_easy_setopt_(t.curl, OPT_USERAGENT, "convolve");
    curl_easy_setopt_(t.curl, OPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt_(t.curl, OPT_MAXREDIRS, 10L);
    curl_easy_setopt_(t.curl, OPT_FAILONERROR, 1L);
    curl_easy_setopt_(t.curl, OPT_NOPROGRESS, 1L);
    curl_easy_setopt_(t.curl, OPT_NOSIGNAL, 1L);
    // Like URLSession's request timeout: give up after `timeout_seconds` without data.
    curl_easy_setopt_(t.curl, OPT_CONNECTTIMEOUT, timeout_seconds);
    curl_easy_setopt_(t.curl, OPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt_(t.curl, OPT_LOW_SPEED_TIME, timeout_seconds);
    int rc = curl_easy_perform_(t.curl);
    if (rc == CURLE_HTTP_RETURNED_ERROR || (rc == CURLE_WRITE_ERROR && !t.stopped_by_sink && t.status != 200)) {
        if (t.status == 0) curl_easy_getinfo_(t.curl, INFO_RESPONSE_CODE, &t.status);
        snprintf(error, (size_t)error_size, "HTTP %ld", t.status);
    } else if (rc == CURLE_WRITE_ERROR && t.stopped_by_sink) {
        snprintf(error, (size_t)error_size, "cannot write the downloaded data");
    } else if (rc != CURLE_OK) {
        snprintf(error, (size_t)error_size, "%s", curl_error[0] ? curl_error : curl_easy_strerror_(rc));
    }
    curl_easy_cleanup_(t.curl);
    return rc == CURLE_OK ? 0 : -1;
}
