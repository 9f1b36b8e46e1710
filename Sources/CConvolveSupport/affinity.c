// CPU affinity (Linux): which CPUs a thread may run on, and binding a thread to one of them.
#define _GNU_SOURCE
#include <sched.h>
#include "convolve_support.h"

int convolve_allowed_cpus(int *cpus, int capacity) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        if (count < capacity) cpus[count] = cpu;
        count++;
    }
    return count;
#else
    (void)cpus; (void)capacity;
    return -1;
#endif
}

int convolve_bind_thread(int cpu) {
#ifdef __linux__
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
#else
    (void)cpu;
    return -1;
#endif
}
