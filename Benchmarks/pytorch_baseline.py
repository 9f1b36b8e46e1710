#!/usr/bin/env python3
"""PyTorch side of the issue-5 workloads (same layers, init, optimizer, batch as convolve-bench).

    python Benchmarks/pytorch_baseline.py W1|W2|W3|all [--epochs 3] [--limit N] [--threads 2]

Reads MNIST from CONVOLVE_DATA_DIR (the four gzip IDX files). Prints the same columns as
convolve-bench: train img/s (median of epochs after the first), eval img/s (10k test, batch 1000,
median of 3), seconds from process start to the first training step, peak RSS MB.
"""
import os, resource, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import idx, process_age  # noqa: E402


class SeedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn_layers = nn.Sequential(
            nn.Conv2d(1, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(4, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2))
        self.linear_layers = nn.Sequential(nn.Linear(196, 10))

    def forward(self, x):
        x = self.cnn_layers(x)
        return self.linear_layers(x.view(x.size(0), -1))


class KerasSeed(nn.Module):
    """The Keras model written in PyTorch (logits; softmax fused into the loss), Keras init."""
    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.fc = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Linear(100, 10)
        for m in (self.c1, self.c2, self.fc):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2, 2)
        return self.fc(x.flatten(1))


class MnistCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = self.dropout2(F.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


def main():
    args = sys.argv[1:]
    def opt(name, default):
        if name in args:
            i = args.index(name); v = args[i + 1]; del args[i:i + 2]; return v
        return default
    epochs = int(opt("--epochs", 3)); limit = opt("--limit", None); threads = int(opt("--threads", 2))
    torch.set_num_threads(threads)
    which = args[0].upper() if args else "ALL"
    d = os.environ.get("CONVOLVE_DATA_DIR", "../shared/datasets/mnist")
    xtr = idx(f"{d}/train-images-idx3-ubyte.gz"); ytr = idx(f"{d}/train-labels-idx1-ubyte.gz")
    xte = idx(f"{d}/t10k-images-idx3-ubyte.gz")
    print("workload  threads  train_img/s  eval_img/s  first_step_s  peak_rss_MB  epochs  images/epoch")
    for w in (["W1", "W2", "W3"] if which == "ALL" else [which]):
        torch.manual_seed(0)
        if w == "W1": model, batch, lr, eps, mean, std = KerasSeed(), 32, 1e-3, 1e-7, 0.0, 1.0
        elif w == "W2": model, batch, lr, eps, mean, std = SeedNet(), 64, 1e-2, 1e-8, 0.5, 0.5
        else: model, batch, lr, eps, mean, std = MnistCNN(), 64, 1e-3, 1e-8, 0.1307, 0.3081
        n = int(limit) if limit else (12800 if w == "W3" else 60000)
        x = ((torch.from_numpy(xtr[:n].copy()).float() / 255 - mean) / std).unsqueeze(1)
        y = torch.from_numpy(ytr[:n].astype(np.int64))
        xt = ((torch.from_numpy(xte.copy()).float() / 255 - mean) / std).unsqueeze(1)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, shuffle=True)
        opt_ = torch.optim.Adam(model.parameters(), lr=lr, eps=eps)
        first, rates = None, []
        for e in range(epochs):
            model.train(); t0 = time.perf_counter(); seen = 0
            for xb, yb in loader:
                if first is None: first = process_age()
                opt_.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt_.step()
                seen += len(yb)
            rates.append(seen / (time.perf_counter() - t0))
        model.eval(); ev = []
        for _ in range(3):
            t0 = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(xt), 1000): model(xt[i:i + 1000])
            ev.append(len(xt) / (time.perf_counter() - t0))
        tr = sorted(rates[1:])[(len(rates) - 2) // 2] if len(rates) > 1 else rates[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{w:<9} {threads:7d}  {tr:11.0f}  {sorted(ev)[1]:10.0f}  {first:12.2f}  {rss:11.1f}  {epochs:6d}  {n:12d}")


if __name__ == "__main__":
    main()
