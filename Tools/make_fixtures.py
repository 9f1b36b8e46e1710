#!/usr/bin/env python3
"""Generates PyTorch reference fixtures for Convolve's tests.

Run (outside the repo's test path; needs a CPU torch wheel):
    python3 -m venv /opt/torchvenv && /opt/torchvenv/bin/pip install torch==2.13.0+cpu numpy
    /opt/torchvenv/bin/python Tools/make_fixtures.py Tests/ConvolveTests/Fixtures
Each fixture is a JSON object mapping names to {"shape": [...], "data": [...]} (float64 text of the
float32 values), plus a few plain values. The tests need no Python.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

out_dir = sys.argv[1] if len(sys.argv) > 1 else "Tests/ConvolveTests/Fixtures"
os.makedirs(out_dir, exist_ok=True)
torch.manual_seed(1234)


COMPACT = False  # 9 significant digits: enough to round-trip float32, a third of the text


def T(t):
    t = t.detach().to(torch.float32)
    values = t.reshape(-1).tolist()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) if COMPACT else float(v) for v in values]}


def save(name, obj):
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def leaf(*shape):
    return torch.randn(*shape, dtype=torch.float32).requires_grad_()


# conv2d: several geometries, forward and backward for a random upstream gradient.
def conv_cases(cfgs):
    out = []
    for cfg in cfgs:
        x = leaf(cfg["n"], cfg["c"], cfg["h"], cfg["w"])
        w = leaf(cfg["oc"], cfg["c"] // cfg["groups"], *cfg["k"])
        b = leaf(cfg["oc"]) if cfg["bias"] else None
        y = F.conv2d(x, w, b, stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"],
                     groups=cfg["groups"])
        gy = torch.randn_like(y)
        y.backward(gy)
        case = dict(cfg, x=T(x), w=T(w), y=T(y), gy=T(gy), dx=T(x.grad), dw=T(w.grad))
        if b is not None:
            case["b"] = T(b)
            case["db"] = T(b.grad)
        out.append(case)
    return out


save("conv2d", conv_cases([
    dict(n=2, c=3, h=7, w=6, oc=4, k=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
    dict(n=1, c=2, h=9, w=8, oc=3, k=(3, 2), stride=(1, 2), padding=(0, 1), dilation=(2, 1), groups=1, bias=True),
    dict(n=2, c=4, h=5, w=5, oc=6, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=2, bias=False),
    dict(n=3, c=1, h=28, w=28, oc=4, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
    dict(n=2, c=5, h=4, w=3, oc=3, k=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True),
]))

# max and average pooling.
pools = []
for cfg in [
    dict(kind="max", k=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil=False, shape=(2, 3, 6, 6)),
    dict(kind="max", k=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil=True, shape=(1, 2, 7, 8)),
    dict(kind="max", k=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1), ceil=False, shape=(2, 1, 7, 7)),
    dict(kind="max", k=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil=True, shape=(1, 2, 5, 5)),
    dict(kind="avg", k=(3, 3), stride=(2, 2), padding=(1, 1), ceil=False, include_pad=True, shape=(2, 2, 7, 6)),
    dict(kind="avg", k=(3, 3), stride=(2, 2), padding=(1, 1), ceil=True, include_pad=False, shape=(1, 2, 6, 7)),
    dict(kind="avg", k=(2, 2), stride=(2, 2), padding=(0, 0), ceil=False, include_pad=True, shape=(1, 3, 5, 4)),
]:
    x = leaf(*cfg["shape"])
    if cfg["kind"] == "max":
        y = F.max_pool2d(x, cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"], ceil_mode=cfg["ceil"])
    else:
        y = F.avg_pool2d(x, cfg["k"], cfg["stride"], cfg["padding"], ceil_mode=cfg["ceil"],
                         count_include_pad=cfg["include_pad"])
    gy = torch.randn_like(y)
    y.backward(gy)
    pools.append(dict(cfg, x=T(x), y=T(y), gy=T(gy), dx=T(x.grad)))
save("pool2d", pools)

# batch norm: training (batch statistics, running-stat update) and eval.
bn_cases = []
for training in [True, False]:
    for shape in [(4, 3, 5, 5), (6, 2, 3, 1)]:
        m = nn.BatchNorm2d(shape[1])
        with torch.no_grad():
            m.weight.copy_(torch.randn(shape[1]))
            m.bias.copy_(torch.randn(shape[1]))
            m.running_mean.copy_(torch.randn(shape[1]))
            m.running_var.copy_(torch.rand(shape[1]) + 0.5)
        rm0, rv0 = m.running_mean.clone(), m.running_var.clone()
        m.train(training)
        x = leaf(*shape)
        y = m(x)
        gy = torch.randn_like(y)
        y.backward(gy)
        bn_cases.append(dict(training=training, x=T(x), weight=T(m.weight), bias=T(m.bias),
                             running_mean0=T(rm0), running_var0=T(rv0), y=T(y), gy=T(gy), dx=T(x.grad),
                             dweight=T(m.weight.grad), dbias=T(m.bias.grad),
                             running_mean=T(m.running_mean), running_var=T(m.running_var)))
save("batchnorm", bn_cases)

# losses and softmax family.
logits = leaf(6, 7)
targets = torch.tensor([0, 3, 6, 2, 2, 5])
loss = F.cross_entropy(logits, targets)
loss.backward()
ls_logits = logits.detach().clone().requires_grad_()
ls_loss = F.cross_entropy(ls_logits, targets, label_smoothing=0.1)
ls_loss.backward()
sm_in = leaf(3, 4, 5)
sm = F.softmax(sm_in, dim=1)
gsm = torch.randn_like(sm)
sm.backward(gsm)
lsm_in = sm_in.detach().clone().requires_grad_()
lsm = F.log_softmax(lsm_in, dim=-1)
lsm.backward(gsm)
save("losses", dict(logits=T(logits), targets=targets.tolist(), ce=float(loss), dlogits=T(logits.grad),
                    ce_smooth=float(ls_loss), dlogits_smooth=T(ls_logits.grad),
                    softmax_in=T(sm_in), softmax_dim1=T(sm), gsoftmax=T(gsm), dsoftmax=T(sm_in.grad),
                    log_softmax=T(lsm), dlog_softmax=T(lsm_in.grad)))

# optimizers: three steps with fixed gradients.
def opt_case(name, make, steps=3):
    p = torch.randn(5, 4).requires_grad_()
    p0 = p.detach().clone()
    grads = [torch.randn(5, 4) for _ in range(steps)]
    opt = make([p])
    after = []
    for g in grads:
        opt.zero_grad()
        p.grad = g.clone()
        opt.step()
        after.append(T(p))
    return dict(name=name, p0=T(p0), grads=[T(g) for g in grads], after=after)

save("optimizers", [
    opt_case("adam", lambda ps: torch.optim.Adam(ps, lr=0.01)),
    opt_case("adam_wd", lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, eps=1e-7)),
    opt_case("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.05)),
    opt_case("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    opt_case("sgd_nesterov_wd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    opt_case("sgd_dampening", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.5, dampening=0.3)),
    opt_case("rmsprop", lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    opt_case("rmsprop_centered_momentum", lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.9, centered=True)),
    opt_case("adadelta", lambda ps: torch.optim.Adadelta(ps, lr=1.0)),
])


# The tutorial's seed network, fixed weights, forward + backward in training mode.
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn_layers = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(4, 4, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2))
        self.linear_layers = nn.Sequential(nn.Linear(4 * 7 * 7, 10))

    def forward(self, x):
        x = self.cnn_layers(x)
        x = x.view(x.size(0), -1)
        return self.linear_layers(x)


torch.manual_seed(7)
net = Net()
state0 = {k: T(v) for k, v in net.state_dict().items()}
x = torch.rand(8, 1, 28, 28) * 2 - 1
labels = torch.randint(0, 10, (8,))
logits = net(x)
loss = F.cross_entropy(logits, labels)
loss.backward()
grads = {k: T(p.grad) for k, p in net.named_parameters()}
state1 = {k: T(v) for k, v in net.state_dict().items()}
net.eval()
with torch.no_grad():
    eval_logits = net(x)
save("seed_net", dict(state0=state0, state_keys=list(net.state_dict().keys()), x=T(x), labels=labels.tolist(),
                      logits=T(logits), loss=float(loss), grads=grads, state_after=state1,
                      eval_logits=T(eval_logits), repr=repr(net),
                      param_count=sum(p.numel() for p in net.parameters())))
print("fixtures written to", out_dir)

# learning-rate schedules: the lr after each scheduler.step()
def lrs(make_sched, steps):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out

save("schedulers", dict(
    step=lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), 7),
    cosine=lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=5, eta_min=0.001), 5),
    onecycle=lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, cycle_momentum=False), 9),
))
print("scheduler fixtures written")

# conv2d layers wide enough for the GEMM path that reads shifted image rows (unit stride/dilation),
# with its own seed so the fixtures above stay as they were.
torch.manual_seed(4321)
save("conv2d_wide", conv_cases([
    dict(n=2, c=16, h=9, w=8, oc=24, k=(3, 3), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True),
    dict(n=2, c=16, h=6, w=7, oc=32, k=(3, 2), stride=(1, 1), padding=(1, 2), dilation=(1, 1), groups=2, bias=False),
    # 32 channels per group: the weight gradient takes the channels-last path
    dict(n=2, c=32, h=7, w=6, oc=8, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
    dict(n=2, c=64, h=5, w=5, oc=8, k=(3, 3), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=2, bias=False),
]))
print("wide conv fixtures written")

# One layer per convolution algorithm path (ConvAlgorithm in Sources/Convolve/NNOps.swift), including
# the non-3x3 layers with >= 16 channels whose input gradient was once wrong (issue 17). Own seed.
torch.manual_seed(1717)
COMPACT = True
save("conv2d_paths", conv_cases([
    # shifted rows, non-3x3 kernels with >= 16 channels (GEMM input gradient, channels-last dW)
    dict(n=2, c=32, h=8, w=7, oc=16, k=(5, 5), stride=(1, 1), padding=(2, 2), dilation=(1, 1), groups=1, bias=True),
    dict(n=1, c=16, h=2, w=2, oc=16, k=(2, 2), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=False),
    dict(n=1, c=32, h=6, w=6, oc=32, k=(4, 4), stride=(1, 1), padding=(1, 2), dilation=(1, 1), groups=2, bias=True),
    # Winograd forward, input gradient and weight gradient
    dict(n=2, c=16, h=7, w=6, oc=16, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
    # Winograd forward; padding 3: GEMM input gradient; 17 channels: GEMM weight gradient
    dict(n=2, c=17, h=6, w=6, oc=16, k=(3, 3), stride=(1, 1), padding=(3, 3), dilation=(1, 1), groups=1, bias=True),
    # im2col: strided, dilated; pointwise
    dict(n=1, c=16, h=9, w=9, oc=24, k=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
    dict(n=1, c=16, h=7, w=7, oc=16, k=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), groups=1, bias=False),
    dict(n=2, c=32, h=5, w=5, oc=16, k=(1, 1), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, bias=True),
    # direct (few output channels x taps)
    dict(n=2, c=8, h=5, w=6, oc=4, k=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1, bias=True),
]))
print("conv path fixtures written")

# Global average pooling and the CIFAR ResNet's residual block (torchvision's BasicBlock layout), in
# training mode (batch statistics, running-stat update) with a projection shortcut and in eval mode
# with the identity shortcut.
x = leaf(2, 3, 5, 4)
y = F.adaptive_avg_pool2d(x, 1)
gy = torch.randn_like(y)
y.backward(gy)
gap = dict(x=T(x), y=T(y), gy=T(gy), dx=T(x.grad))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


blocks = []
for cin, cout, stride, training in [(3, 4, 2, True), (4, 4, 1, False)]:
    block = Block(cin, cout, stride)
    with torch.no_grad():   # non-trivial affine parameters and running statistics
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
    block.train(training)
    state0 = {k: T(v) for k, v in block.state_dict().items()}
    x = leaf(2, cin, 6, 5)
    y = block(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    blocks.append(dict(cin=cin, cout=cout, stride=stride, training=training, state0=state0, x=T(x), y=T(y), gy=T(gy),
                       dx=T(x.grad), grads={k: T(p.grad) for k, p in block.named_parameters()},
                       state1={k: T(v) for k, v in block.state_dict().items()}))


class ResNet(nn.Module):   # the zoo's CIFAR ResNet, narrow (first stage 4 channels) to keep the fixture small
    def __init__(self, channels, classes, width):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(Block(width, width, 1))
        self.layer2 = nn.Sequential(Block(width, 2 * width, 2))
        self.layer3 = nn.Sequential(Block(2 * width, 4 * width, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, classes)

    def forward(self, x):
        h = self.layer3(self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(self.avgpool(h), 1))


net = ResNet(3, 5, 4).train()
state0 = {k: T(v) for k, v in net.state_dict().items()}
x = leaf(2, 3, 9, 8)
y = net(x)
gy = torch.randn_like(y)
y.backward(gy)
resnet = dict(width=4, classes=5, state0=state0, x=T(x), y=T(y), gy=T(gy), dx=T(x.grad),
              grads={k: T(p.grad) for k, p in net.named_parameters()})
save("resnet", dict(gap=gap, blocks=blocks, resnet=resnet))

# The ImageNet mobile networks' activations: values and input gradients, on inputs that include
# every kink exactly (−3, 0, 3, 6) and points on both sides.
x = torch.cat([torch.tensor([-3.0, 0.0, 3.0, 6.0, -6.5, 7.25, -2.999, 2.999]), torch.randn(40) * 4]).requires_grad_()
gy = torch.randn_like(x)
acts = {}
for name, f in [("relu6", F.relu6), ("silu", F.silu), ("hardswish", F.hardswish), ("hardsigmoid", F.hardsigmoid)]:
    if x.grad is not None:
        x.grad = None
    y = f(x)
    y.backward(gy)
    acts[name] = dict(y=T(y), dx=T(x.grad))
save("activations", dict(x=T(x), gy=T(gy), **acts))
