#!/usr/bin/env python3
"""ONNX Runtime inference of the ImageNet architectures at batch 32, 224×224 — the strongest CPU
engine, the inference baseline of `convolve-bench imagenet`: images/s, median of 5 timed batches after
one warm-up, on the threads given by OMP_NUM_THREADS (default 2). The models are Convolve's own ONNX
exports (`ONNX_DIR=DIR convolve-bench imagenet` writes DIR/<name>.onnx), so both engines run the same
graph; ONNX Runtime's graph optimizations (fusing batch norm into convolutions, …) at their default,
the highest level.

    python3 Benchmarks/onnxruntime_imagenet.py DIR
"""
import glob
import os
import sys
import time

import numpy as np
import onnxruntime as ort

threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
x = np.random.default_rng(1).uniform(-2, 2, (32, 3, 224, 224)).astype(np.float32)
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx"))):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    session.run(None, {"input": x})
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        session.run(None, {"input": x})
        times.append(time.perf_counter() - t0)
    median = sorted(times)[2]
    name = os.path.basename(path)[:-5]
    print(f"{name} batch 32 224x224 threads={threads} onnxruntime {ort.__version__}: {32 / median:.1f} img/s "
          f"(median of 5; {median:.3f} s per batch)")
