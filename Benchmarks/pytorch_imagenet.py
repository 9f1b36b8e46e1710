#!/usr/bin/env python3
"""PyTorch eager inference of the ImageNet architectures at batch 32, 224×224 (the baseline of
`convolve-bench imagenet`): images/s, median of 5 timed batches after one warm-up, on the threads
given by OMP_NUM_THREADS / torch's default. Needs torch (2.13.0+cpu), torchvision 0.28.0 (its model code;
an empty torchvision._meta_registrations module stands in for its compiled ops) and, for
EfficientNet-Lite0, the efficientnet-lite-pytorch package on PYTHONPATH."""
import time

import torch

torch.manual_seed(1)
x = torch.rand(32, 3, 224, 224) * 4 - 2
models = {}
try:
    import sys
    import types
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torchvision
    models["resnet18"] = torchvision.models.resnet18()
    models["resnet34"] = torchvision.models.resnet34()
    models["resnet50"] = torchvision.models.resnet50()
    models["mobilenet_v2"] = torchvision.models.mobilenet_v2()
    models["mobilenet_v3_large"] = torchvision.models.mobilenet_v3_large()
    models["mobilenet_v3_small"] = torchvision.models.mobilenet_v3_small()
    models["efficientnet_b0"] = torchvision.models.efficientnet_b0()
except ImportError:
    print("torchvision not importable: ResNets skipped")
try:
    from efficientnet_lite_pytorch import EfficientNet
    models["efficientnet_lite0"] = EfficientNet.from_name("efficientnet-lite0")
except ImportError:
    print("efficientnet-lite-pytorch not importable: skipped")
for name, model in models.items():
    model.eval()
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    median = sorted(times)[2]
    print(f"{name} batch 32 224x224 threads={torch.get_num_threads()}: {32 / median:.1f} img/s (median of 5; {median:.3f} s per batch)")
