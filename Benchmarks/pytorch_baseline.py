#!/usr/bin/env python3
"""PyTorch side of the issue-5 workloads (same layers, init, optimizer, batch as convolve-bench).

    python Benchmarks/pytorch_baseline.py W1|W2|W3|W4|all [--epochs 3] [--limit N] [--threads 2]

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


class Block(nn.Module):
    """torchvision's BasicBlock (the layout Convolve's BasicBlock follows)."""
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNet8(nn.Module):
    """The zoo's resnet8: conv 3x3 to 16, blocks at 16, 32 (stride 2), 64 (stride 2), global average pool, fc."""
    def __init__(self, channels=3, classes=10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16)
        self.layer1, self.layer2, self.layer3 = Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def crop_and_flip(xb, g):
    """RandomCrop(32, padding=4) + RandomHorizontalFlip per image, on a uint8 batch [N, 3, 32, 32]."""
    n = xb.shape[0]
    padded = F.pad(xb, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=g); dx = torch.randint(0, 9, (n,), generator=g)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def w4(epochs, limit, threads):
    """W4: resnet8 on CIFAR-shaped random pixels, batch 128, SGD 0.1 momentum 0.9 weight decay 5e-4, crop + flip,
    normalization per channel; the batch is built in the training loop (the DataLoader's default, no workers)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = int(limit) if limit else 5120
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    xt = torch.randint(0, 256, (2000, 3, 32, 32), dtype=torch.uint8, generator=g)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1); std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    model = ResNet8()
    opt_ = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    first, rates = None, []
    for e in range(epochs):
        model.train(); t0 = time.perf_counter(); seen = 0
        order = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            idx_ = order[i:i + 128]
            xb = (crop_and_flip(x[idx_], g).float() / 255 - mean) / std
            if first is None: first = process_age()
            opt_.zero_grad()
            F.cross_entropy(model(xb), y[idx_]).backward()
            opt_.step()
            seen += len(idx_)
        rates.append(seen / (time.perf_counter() - t0))
    model.eval(); ev = []
    xtn = (xt.float() / 255 - mean) / std
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(xtn), 500): model(xtn[i:i + 500])
        ev.append(len(xtn) / (time.perf_counter() - t0))
    tr = sorted(rates[1:])[(len(rates) - 2) // 2] if len(rates) > 1 else rates[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("workload  threads  train_img/s  eval_img/s  first_step_s  peak_rss_MB  epochs  images/epoch")
    print(f"{'W4':<9} {threads:7d}  {tr:11.0f}  {sorted(ev)[1]:10.0f}  {first:12.2f}  {rss:11.1f}  {epochs:6d}  {n:12d}")


def main():
    args = sys.argv[1:]
    def opt(name, default):
        if name in args:
            i = args.index(name); v = args[i + 1]; del args[i:i + 2]; return v
        return default
    epochs = int(opt("--epochs", 3)); limit = opt("--limit", None); threads = int(opt("--threads", 2))
    torch.set_num_threads(threads)
    which = args[0].upper() if args else "ALL"
    if which == "W4":
        return w4(epochs, limit, threads)
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
