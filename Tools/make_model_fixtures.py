#!/usr/bin/env python3
"""Reference outputs of the ImageNet architectures for Convolve's tests, from their real PyTorch
implementations, with weights from a formula both sides compute (no weights are committed).
    /opt/torchvenv/bin/pip install torch==2.13.0+cpu numpy
    pip download --no-deps efficientnet-lite-pytorch==0.1.0 && unzip the wheel onto PYTHONPATH
    /opt/torchvenv/bin/python Tools/make_model_fixtures.py Tests/ConvolveTests/Fixtures

The formula (mirrored by the Swift tests' `formulaStateDict`), for the k-th state_dict entry, element
i, with u(i, k) in [-1, 1) an integer hash (exact on both sides; smooth formulas such as sin(a i + k)
made train-mode batch norm ill-conditioned: a 1e-6 change of the input moved the logits by 10%):
    running_var: 0.75 + 0.25 u     running_mean: 0.1 u     num_batches_tracked: 0
    1-D weight: 1 + 0.1 u          1-D bias: 0.1 u         others: u sqrt(3 / fan_in)
The input: element j of the flattened batch is 2 u(j, 999).
"""
import json
import math
import os
import sys

import torch

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/ConvolveTests/Fixtures"


def u(i, k):
    h = (i * 2654435761 + k * 40503 + 12345) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 2246822519) & 0xFFFFFFFF
    h ^= h >> 13
    return h / 4294967296.0 * 2 - 1


def formula_state(model):
    state = {}
    for k, (key, t) in enumerate(model.state_dict().items()):
        n = t.numel()
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(t)
            continue
        if key.endswith("running_var"):
            v = [0.75 + 0.25 * u(i, k) for i in range(n)]
        elif key.endswith("running_mean"):
            v = [0.1 * u(i, k) for i in range(n)]
        elif t.dim() == 1 and key.endswith("weight"):
            v = [1 + 0.1 * u(i, k) for i in range(n)]
        elif t.dim() == 1:
            v = [0.1 * u(i, k) for i in range(n)]
        else:
            fan_in = n // t.shape[0]
            v = [u(i, k) * math.sqrt(3 / fan_in) for i in range(n)]
        state[key] = torch.tensor(v, dtype=torch.float64).to(torch.float32).reshape(t.shape)
    return state


def formula_input(shape):
    n = math.prod(shape)
    return torch.tensor([2 * u(j, 999) for j in range(n)], dtype=torch.float64).to(torch.float32).reshape(shape)


def T(t):
    t = t.detach().to(torch.float64)
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.reshape(-1).tolist()]}


def summary(t):
    """A tensor in two numbers: its norm and its projection on the formula's u(i, 7) (a wrong element
    moves the projection unless it happens to be orthogonal to a pseudo-random vector)."""
    v = t.detach().double().reshape(-1)
    r = torch.tensor([u(i, 7) for i in range(v.numel())], dtype=torch.float64)
    return [float(v.norm()), float((v * r).sum())]



def block_case(block, input_channels, size, **fields):
    """One block's train-mode step in float64 on formula weights and input, summarized."""
    block = block.double()
    block.load_state_dict({kk: v.double() if v.is_floating_point() else v for kk, v in formula_state(block).items()})
    block.train()
    x = formula_input((2, input_channels, size, size)).double().requires_grad_()
    y = block(x)
    (y * formula_input(tuple(y.shape)).double()).sum().backward()
    return dict(**fields, size=size, keys=list(block.state_dict().keys()), y=summary(y), dx=summary(x.grad),
                grads={kk: summary(p.grad) for kk, p in block.named_parameters()})


def case(model, shape, grad_keys, running_key="_bn1.running_mean", full_grads=True):
    """Eval and train logits, loss, gradients and running mean, in float64 (the exact values a float32
    implementation approximates; PyTorch's own float32 error is recorded beside them)."""
    def run(dtype):
        model.to(dtype)
        model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in formula_state(model).items()})
        for p in model.parameters():
            p.grad = None
        x = formula_input(shape).to(dtype)
        model.eval()
        with torch.no_grad():
            eval_logits = model(x)
        model.train()
        train_logits = model(x)
        labels = torch.arange(shape[0]) * 7 % train_logits.shape[1]
        loss = torch.nn.functional.cross_entropy(train_logits, labels)
        loss.backward()
        params = dict(model.named_parameters())
        return dict(eval_logits=eval_logits, train_logits=train_logits.detach(), labels=labels.tolist(), loss=float(loss),
                    grads={k: params[k].grad for k in grad_keys}, running_mean=model.state_dict()[running_key])
    single, double = run(torch.float32), run(torch.float64)
    model.float()

    def error(a, b):  # max |a - b| / max |b|
        return float((a.double() - b).abs().max() / b.abs().max())
    return dict(shape=list(shape), keys=list(model.state_dict().keys()), eval_logits=T(double["eval_logits"]),
                train_logits=T(double["train_logits"]), labels=double["labels"], loss=double["loss"],
                grads={k: T(v) for k, v in double["grads"].items()} if full_grads else {},
                grad_summaries={k: summary(v) for k, v in double["grads"].items()},
                running_mean_after={running_key: T(double["running_mean"])},
                pytorch_float32_error={"eval_logits": error(single["eval_logits"], double["eval_logits"]),
                                       "train_logits": error(single["train_logits"], double["train_logits"]),
                                       **{k: error(single["grads"][k], double["grads"][k]) for k in grad_keys}})


torch.manual_seed(0)
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402

size = int(os.environ.get("SIZE", "48"))
lite0 = EfficientNet.from_name("efficientnet-lite0", image_size=size, dropout_rate=0.0, drop_connect_rate=0.0)
fixture = {"lite0": case(lite0, (2, 3, size, size),
                         ["_conv_stem.weight", "_blocks.0._depthwise_conv.weight", "_blocks.9._bn1.weight", "_bn1.weight", "_fc.bias"])}
fixture["lite0"]["parameter_count"] = sum(p.numel() for p in lite0.parameters())


# Single MBConv blocks, float64, train mode (batch statistics), with the residual where the shape allows:
# the backward of every op in a block, exact to float32 rounding (no ReLU6 kink in so few activations).
from efficientnet_lite_pytorch.model import MBConvBlock  # noqa: E402
from efficientnet_lite_pytorch.utils import BlockArgs, efficientnet_lite  # noqa: E402

blocks = []
for (i, o, k, s, n) in [(40, 40, 5, 1, 6), (24, 40, 5, 2, 12), (80, 80, 3, 1, 3), (16, 24, 3, 2, 7)]:
    _, params = efficientnet_lite(1.0, 1.0, n, 0.0, 0.0)
    args = BlockArgs(num_repeat=1, kernel_size=k, stride=s, expand_ratio=6, input_filters=i, output_filters=o, se_ratio=None, id_skip=True)
    blocks.append(block_case(MBConvBlock(args, params, image_size=n), i, n, input=i, output=o, kernel=k, stride=s))
fixture["mbconv_blocks"] = blocks

# torchvision's ResNets (0.28.0; its compiled ops do not load, its model code does with an empty
# torchvision._meta_registrations module).
import types  # noqa: E402
sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
import torchvision  # noqa: E402

for name in ("resnet18", "resnet50"):
    net = getattr(torchvision.models, name)()
    last = "layer4.1.bn2.weight" if name == "resnet18" else "layer4.2.bn3.weight"
    fixture[name] = case(net, (2, 3, 64, 64) if name == "resnet18" else (4, 3, 96, 96), ["conv1.weight", "layer1.0.conv1.weight", last, "fc.bias"],
                         running_key="layer4.0.bn1.running_mean", full_grads=False)
    fixture[name]["parameter_count"] = sum(p.numel() for p in net.parameters())
    print(name, fixture[name]["parameter_count"], fixture[name]["pytorch_float32_error"])

mnv2 = torchvision.models.mobilenet_v2()
fixture["mobilenet_v2"] = case(mnv2, (2, 3, 64, 64), ["features.0.0.weight", "features.1.conv.0.0.weight", "features.17.conv.2.weight",
                                                      "classifier.1.bias"], running_key="features.18.1.running_mean", full_grads=False)
fixture["mobilenet_v2"]["parameter_count"] = sum(p.numel() for p in mnv2.parameters())
print("mobilenet_v2", fixture["mobilenet_v2"]["parameter_count"], fixture["mobilenet_v2"]["pytorch_float32_error"])
# Its inverted residual blocks alone (train mode, float64): the whole network's train-mode step under
# formula weights is too ill-conditioned to compare (PyTorch's own float32 logits are ~50% off float64).
from torchvision.models.mobilenetv2 import InvertedResidual  # noqa: E402

inverted = []
for inp, oup, stride, t, n in [(32, 16, 1, 1, 8), (16, 24, 2, 6, 8), (24, 24, 1, 6, 6), (64, 96, 1, 6, 3)]:
    inverted.append(block_case(InvertedResidual(inp, oup, stride, t), inp, n, input=inp, output=oup, stride=stride, expansion=t))
fixture["inverted_residual_blocks"] = inverted

# torchvision's residual blocks alone, float64, train mode: Bottleneck with and without the projection
# shortcut, strided, and BasicBlock with one (the whole networks' early gradients are dominated by ReLU
# kinks: PyTorch's own float32 gradient of ResNet-50's layer1 is 9% off its float64 one).
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1  # noqa: E402

residual = []
for kind, inp, width, stride, n in [("bottleneck", 64, 16, 1, 6), ("bottleneck", 128, 32, 2, 8), ("bottleneck", 256, 64, 1, 3),
                                    ("basic", 32, 64, 2, 8)]:
    out_channels = width * (4 if kind == "bottleneck" else 1)
    down = None
    if stride != 1 or inp != out_channels:
        down = torch.nn.Sequential(conv1x1(inp, out_channels, stride), torch.nn.BatchNorm2d(out_channels))
    block = Bottleneck(inp, width, stride, down) if kind == "bottleneck" else BasicBlock(inp, width, stride, down)
    residual.append(block_case(block, inp, n, kind=kind, input=inp, width=width, stride=stride))
fixture["resnet_blocks"] = residual

# MobileNetV3 (Large, Small) and EfficientNet-B0: squeeze-and-excitation, hard-swish, SiLU. Dropout and
# stochastic depth off so train mode is deterministic; each network's eval and train logits, and each
# kind of block's train-mode step alone (the whole networks' gradients are as ill-conditioned under
# formula weights as MobileNetV2's: recorded in pytorch_float32_error).
from torchvision.models.mobilenetv3 import InvertedResidual as InvertedResidualV3, InvertedResidualConfig  # noqa: E402
from torchvision.models.efficientnet import MBConv, MBConvConfig  # noqa: E402
from functools import partial  # noqa: E402

for name, net, grads, running in [
        ("mobilenet_v3_large", torchvision.models.mobilenet_v3_large(dropout=0.0),
         ["features.0.0.weight", "features.4.block.2.fc1.weight", "classifier.3.bias"], "features.16.1.running_mean"),
        ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small(dropout=0.0),
         ["features.0.0.weight", "features.1.block.1.fc2.bias", "classifier.3.bias"], "features.12.1.running_mean"),
        ("efficientnet_b0", torchvision.models.efficientnet_b0(dropout=0.0, stochastic_depth_prob=0.0),
         ["features.0.0.weight", "features.2.0.block.2.fc1.weight", "classifier.1.bias"], "features.8.1.running_mean")]:
    fixture[name] = case(net, (2, 3, 64, 64), grads, running_key=running, full_grads=False)
    fixture[name]["parameter_count"] = sum(p.numel() for p in net.parameters())
    print(name, fixture[name]["parameter_count"], fixture[name]["pytorch_float32_error"])

norm = partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01)
v3_blocks = []
for (inp, k, exp, oup, se, act, stride, n) in [(16, 3, 16, 16, True, "RE", 2, 8), (24, 5, 72, 40, True, "RE", 2, 8),
                                               (40, 5, 120, 40, True, "HS", 1, 5), (80, 3, 184, 80, False, "HS", 1, 4)]:
    cnf = InvertedResidualConfig(inp, k, exp, oup, se, act, stride, 1, 1.0)
    v3_blocks.append(block_case(InvertedResidualV3(cnf, norm), inp, n, input=inp, kernel=k, expanded=exp, output=oup,
                                se=se, hardswish=act == "HS", stride=stride))
fixture["inverted_residual_v3_blocks"] = v3_blocks

mb_blocks = []
for (t, k, stride, inp, oup, n) in [(1, 3, 1, 32, 16, 8), (6, 3, 2, 16, 24, 8), (6, 5, 1, 40, 40, 5), (6, 5, 2, 112, 192, 4)]:
    cnf = MBConvConfig(t, k, stride, inp, oup, 1)
    mb_blocks.append(block_case(MBConv(cnf, 0.0, torch.nn.BatchNorm2d), inp, n, expansion=t, kernel=k, stride=stride,
                                input=inp, output=oup))
fixture["mbconv_se_blocks"] = mb_blocks

# timm's EfficientNet-B0 (pip install --no-deps timm): other key names for the same tensors in the same
# order. Its keys and its float64 eval-mode logits on formula weights (given by position, as Convolve
# matches such a file) and the formula input.
try:
    import timm
    timm_b0 = timm.create_model("efficientnet_b0", pretrained=False).double()
    timm_b0.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in formula_state(timm_b0).items()})
    timm_b0.eval()
    with torch.no_grad():
        timm_logits = timm_b0(formula_input((2, 3, 64, 64)).double())
    fixture["timm_efficientnet_b0"] = dict(keys=list(timm_b0.state_dict().keys()), shape=[2, 3, 64, 64], eval_logits=T(timm_logits))
    print("timm efficientnet_b0", len(fixture["timm_efficientnet_b0"]["keys"]), "keys")
except ImportError:
    print("timm not importable: its EfficientNet-B0 fixture skipped")

with open(os.path.join(out, "models.json"), "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
print("lite0 params", fixture["lite0"]["parameter_count"], "loss", fixture["lite0"]["loss"], fixture["lite0"]["pytorch_float32_error"])

# The real EfficientNet-Lite0 ImageNet weights (LITE0_PTH; never committed): the package's eval-mode
# top-5 classes and probabilities on the formula input at 224×224 (a photograph's check needs the
# resize; this one needs only the network and the weights).
lite0_path = os.environ.get("LITE0_PTH")
if lite0_path:
    real = EfficientNet.from_name("efficientnet-lite0")
    real.load_state_dict(torch.load(lite0_path, map_location="cpu", weights_only=True))
    real.eval()
    with torch.no_grad():
        logits = real(formula_input((2, 3, 224, 224)))
    probabilities = logits.softmax(dim=1)
    top = probabilities.topk(5, dim=1)
    with open(os.path.join(out, "lite0_real.json"), "w") as f:
        json.dump(dict(top5=top.indices.tolist(), probabilities=top.values.tolist(), logits=summary(logits)), f)
    print("lite0 real top5", top.indices.tolist(), top.values.tolist())

# Real photographs (PHOTOS_DIR: scikit-image's sample images, never committed) through the real
# weights, preprocessed as torchvision's evaluation transform does it on a PIL image (the shorter side
# resized to 256 by Pillow's bilinear, the centre 224x224 cropped, then mean and std): the cropped
# bytes' digest (Convolve's resize and crop must equal Pillow's byte for byte) and the top-5 classes.
photos_dir = os.environ.get("PHOTOS_DIR")
if lite0_path and photos_dir:
    import hashlib
    import numpy as np
    from PIL import Image
    photos = {}
    for name in ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png"]:
        image = Image.open(os.path.join(photos_dir, name)).convert("RGB")
        w, h = image.size
        short, long = min(w, h), max(w, h)
        size = (256, int(256 * long / short)) if w <= h else (int(256 * long / short), 256)
        left, top = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
        # torchvision's EfficientNet weights resize with Pillow's bicubic filter: its bytes too.
        bicubic = np.asarray(image.resize(size, Image.BICUBIC).crop((left, top, left + 224, top + 224)))
        image = image.resize(size, Image.BILINEAR)
        crop = np.asarray(image.crop((left, top, left + 224, top + 224)))
        chw = np.ascontiguousarray(crop.transpose(2, 0, 1))
        x = torch.from_numpy(chw.astype(np.float32) / 255).unsqueeze(0)
        x = (x - 127 / 255) / (128 / 255)
        with torch.no_grad():
            p = real(x).softmax(dim=1)[0]
        top = p.topk(5)
        bicubic_chw = np.ascontiguousarray(bicubic.transpose(2, 0, 1))
        photos[name] = dict(crop_sha256=hashlib.sha256(chw.tobytes()).hexdigest(),
                            bicubic_crop_sha256=hashlib.sha256(bicubic_chw.tobytes()).hexdigest(), top5=top.indices.tolist(),
                            probabilities=top.values.tolist())
        print(name, top.indices.tolist(), [round(v, 4) for v in top.values.tolist()])
    with open(os.path.join(out, "lite0_photos.json"), "w") as f:
        json.dump(photos, f, indent=1)
