# numpy (OpenBLAS) SGEMM GF/s on 1 and 2 threads: the ceiling recorded beside every benchmark run.
# Run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset in that command only (see BENCHMARKS.md).
import numpy as np, time
from threadpoolctl import threadpool_info, threadpool_limits
info = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
print("openblas:", info[0].get("version"), info[0].get("architecture"), "threads", info[0].get("num_threads"))
n = 2048
a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
for t in (1, 2):
    with threadpool_limits(t):
        a @ b
        ts = []
        for _ in range(5):
            t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
        print(f"numpy sgemm {n}^3 threads={t}: {2*n**3/sorted(ts)[2]/1e9:.1f} GF/s (median of 5)")
