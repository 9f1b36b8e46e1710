#!/usr/bin/env python3
"""Keras 3 / TensorFlow (CPU) side of the issue-5 workloads, same columns as convolve-bench.

    python Benchmarks/keras_baseline.py W1|W2|W3|all [--epochs 3] [--limit N] [--threads 2]

W1 is the tutorial's Keras model; W2 the PyTorch seed net written in Keras (BatchNorm, 'same' padding,
Adam lr 1e-2); W3 pytorch/examples' MNIST CNN in Keras. Data: CONVOLVE_DATA_DIR (gzip IDX files).
Train img/s is the median of epochs after the first (model.fit, shuffle=True); eval img/s is
model.predict on the 10k test set at batch 1000 (median of 3).
"""
import os, resource, sys, time

args = sys.argv[1:]
def opt(name, default):
    if name in args:
        i = args.index(name); v = args[i + 1]; del args[i:i + 2]; return v
    return default
epochs = int(opt("--epochs", 3)); limit = opt("--limit", None); threads = int(opt("--threads", 2))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)

import numpy as np
import tensorflow as tf
import keras
from keras import layers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import idx, process_age  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)


class Timer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__(); self.first = None; self.rates = []; self.n = 0
    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None: self.first = process_age()
    def on_epoch_begin(self, epoch, logs=None): self.t0 = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None): self.rates.append(self.n / (time.perf_counter() - self.t0))


def build(w):
    if w == "W1":
        return keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2, 2),
                                 layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2, 2), layers.Flatten(),
                                 layers.Dense(10, activation="softmax")]), 32, 1e-3, 1e-7, (0.0, 1.0)
    if w == "W2":
        return keras.Sequential([keras.Input((28, 28, 1)),
                                 layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                                 layers.ReLU(), layers.MaxPooling2D(2, 2),
                                 layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                                 layers.ReLU(), layers.MaxPooling2D(2, 2), layers.Flatten(),
                                 layers.Dense(10, activation="softmax")]), 64, 1e-2, 1e-8, (0.5, 0.5)
    return keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                             layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2), layers.Dropout(0.25),
                             layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
                             layers.Dense(10, activation="softmax")]), 64, 1e-3, 1e-8, (0.1307, 0.3081)


def main():
    which = args[0].upper() if args else "ALL"
    d = os.environ.get("CONVOLVE_DATA_DIR", "../shared/datasets/mnist")
    xtr = idx(f"{d}/train-images-idx3-ubyte.gz"); ytr = idx(f"{d}/train-labels-idx1-ubyte.gz")
    xte = idx(f"{d}/t10k-images-idx3-ubyte.gz")
    print("workload  threads  train_img/s  eval_img/s  first_step_s  peak_rss_MB  epochs  images/epoch")
    for w in (["W1", "W2", "W3"] if which == "ALL" else [which]):
        keras.utils.set_random_seed(0)
        model, batch, lr, eps, (mean, std) = build(w)
        n = int(limit) if limit else (12800 if w == "W3" else 60000)
        x = ((xtr[:n].astype("float32") / 255 - mean) / std).reshape(-1, 28, 28, 1)
        y = keras.utils.to_categorical(ytr[:n], 10)
        xt = ((xte.astype("float32") / 255 - mean) / std).reshape(-1, 28, 28, 1)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=eps),
                      loss="categorical_crossentropy", metrics=["accuracy"])
        timer = Timer(); timer.n = n
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
        ev = []
        for _ in range(3):
            t0 = time.perf_counter(); model.predict(xt, batch_size=1000, verbose=0); ev.append(len(xt) / (time.perf_counter() - t0))
        r = timer.rates
        tr = sorted(r[1:])[(len(r) - 2) // 2] if len(r) > 1 else r[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{w:<9} {threads:7d}  {tr:11.0f}  {sorted(ev)[1]:10.0f}  {timer.first:12.2f}  {rss:11.1f}  {epochs:6d}  {n:12d}")


if __name__ == "__main__":
    main()
