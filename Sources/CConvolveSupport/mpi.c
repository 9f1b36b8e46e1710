// MPI through Open MPI's libmpi.so.40 (Debian's openmpi-bin / libopenmpi3), looked up with dlopen at
// run time: `swift build` needs only the toolchain, and `--distributed` without Open MPI says in one
// line what to install. MPI's handles are macros in C (Open MPI: the addresses of exported globals such
// as ompi_mpi_comm_world), which Swift cannot import; here they are those globals' addresses.
#include "convolve_support.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdint.h>

typedef void *handle;
static int (*mpi_init_thread)(int *, char ***, int, int *);
static int (*mpi_comm_rank)(handle, int *);
static int (*mpi_comm_size)(handle, int *);
static int (*mpi_allreduce)(const void *, void *, int, handle, handle, handle);
static int (*mpi_bcast)(void *, int, handle, int, handle);
static int (*mpi_barrier)(handle);
static int (*mpi_abort)(handle, int);
static int (*mpi_finalize)(void);
static handle comm_world, type_float, type_double, type_byte, op_sum;
#define IN_PLACE ((void *)1)   /* Open MPI's MPI_IN_PLACE */
#define THREAD_FUNNELED 1
static const long chunk = 1L << 30;   /* MPI counts are ints: large buffers go in pieces */

int convolve_mpi_init(int *rank, int *size, char *error, int error_size) {
    // RTLD_GLOBAL: Open MPI's plugins, which it dlopens in turn, resolve libmpi's symbols.
    void *lib = dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
        snprintf(error, (size_t)error_size, "--distributed needs Open MPI (libmpi.so.40), which is not installed: "
                 "apt-get install openmpi-bin, then start with mpirun -np N convolve train --distributed …");
        return -1;
    }
    mpi_init_thread = (int (*)(int *, char ***, int, int *))dlsym(lib, "MPI_Init_thread");
    mpi_comm_rank = (int (*)(handle, int *))dlsym(lib, "MPI_Comm_rank");
    mpi_comm_size = (int (*)(handle, int *))dlsym(lib, "MPI_Comm_size");
    mpi_allreduce = (int (*)(const void *, void *, int, handle, handle, handle))dlsym(lib, "MPI_Allreduce");
    mpi_bcast = (int (*)(void *, int, handle, int, handle))dlsym(lib, "MPI_Bcast");
    mpi_barrier = (int (*)(handle))dlsym(lib, "MPI_Barrier");
    mpi_abort = (int (*)(handle, int))dlsym(lib, "MPI_Abort");
    mpi_finalize = (int (*)(void))dlsym(lib, "MPI_Finalize");
    comm_world = dlsym(lib, "ompi_mpi_comm_world");
    type_float = dlsym(lib, "ompi_mpi_float");
    type_double = dlsym(lib, "ompi_mpi_double");
    type_byte = dlsym(lib, "ompi_mpi_byte");
    op_sum = dlsym(lib, "ompi_mpi_op_sum");
    if (!mpi_init_thread || !mpi_comm_rank || !mpi_comm_size || !mpi_allreduce || !mpi_bcast || !mpi_barrier ||
        !mpi_abort || !mpi_finalize || !comm_world || !type_float || !type_double || !type_byte || !op_sum) {
        snprintf(error, (size_t)error_size, "libmpi.so.40 is not Open MPI (its ompi_mpi_* handles are missing)");
        return -1;
    }
    int provided = 0;
    int rc = mpi_init_thread(NULL, NULL, THREAD_FUNNELED, &provided);
    if (rc != 0) { snprintf(error, (size_t)error_size, "MPI_Init_thread failed (error %d)", rc); return rc; }
    mpi_comm_rank(comm_world, rank);
    mpi_comm_size(comm_world, size);
    return 0;
}

/* In-place sum over all ranks of `count` elements of `size` bytes, in pieces of at most 2^30. */
static int allreduce(void *buffer, long count, handle type, size_t size) {
    for (long done = 0; done < count; done += chunk) {
        long n = count - done < chunk ? count - done : chunk;
        int rc = mpi_allreduce(IN_PLACE, (char *)buffer + done * (long)size, (int)n, type, op_sum, comm_world);
        if (rc != 0) return rc;
    }
    return 0;
}

int convolve_mpi_allreduce_float(float *buffer, long count) { return allreduce(buffer, count, type_float, sizeof(float)); }
int convolve_mpi_allreduce_double(double *buffer, long count) { return allreduce(buffer, count, type_double, sizeof(double)); }

int convolve_mpi_broadcast(void *buffer, long count, int root) {
    for (long done = 0; done < count; done += chunk) {
        long n = count - done < chunk ? count - done : chunk;
        int rc = mpi_bcast((char *)buffer + done, (int)n, type_byte, root, comm_world);
        if (rc != 0) return rc;
    }
    return 0;
}

int convolve_mpi_barrier(void) { return mpi_barrier(comm_world); }
void convolve_mpi_abort(int code) { if (mpi_abort) mpi_abort(comm_world, code); }
int convolve_mpi_finalize(void) { return mpi_finalize ? mpi_finalize() : 0; }
