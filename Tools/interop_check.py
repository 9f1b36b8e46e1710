#!/usr/bin/env python3
"""Files Convolve writes, read by their real consumers (CI runs this after the tests).

    python3 Tools/interop_check.py .build/release/convolve DATA_DIR
needs: pillow, numpy, safetensors, tensorboard, onnx, onnxruntime (a venv outside the repo; .ci/run makes one).
Checks: a training checkpoint loads with the safetensors library with PyTorch's state_dict keys,
shapes and dtypes; the PNG grid of `convolve show` opens in Pillow and holds the dataset's pixels;
a safetensors file written by the safetensors library loads in Convolve (`convolve evaluate`); the
run's TensorBoard event file is read by TensorBoard's own reader (scalars equal metrics.csv, the input
grid decodes in Pillow, a histogram per parameter and gradient); the ONNX export of a PyTorch-style and a
Keras-style model passes ONNX's checker and ONNX Runtime gives Convolve's predictions.
"""
import gzip
import os
import subprocess
import sys
import tempfile

import csv
import io

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

exe, data = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="convolve-interop-")
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    return subprocess.run([exe, *args], capture_output=True, text=True)


# 1. A checkpoint, read by the safetensors library: the tutorial model's PyTorch state_dict.
r = run("train", "--model", "torch-seed", "--epochs", "1", "--train-limit", "640", "--test-limit", "100",
        "--data-dir", data, "--output", tmp + "/run", "--quiet")
check(r.returncode == 0, "convolve train: " + r.stderr.strip()[:200])
sd = load_file(tmp + "/run/model.safetensors")
expected = {
    "cnn_layers.0.weight": (4, 1, 3, 3), "cnn_layers.0.bias": (4,),
    "cnn_layers.1.weight": (4,), "cnn_layers.1.bias": (4,), "cnn_layers.1.running_mean": (4,),
    "cnn_layers.1.running_var": (4,), "cnn_layers.1.num_batches_tracked": (),
    "cnn_layers.4.weight": (4, 4, 3, 3), "cnn_layers.4.bias": (4,),
    "cnn_layers.5.weight": (4,), "cnn_layers.5.bias": (4,), "cnn_layers.5.running_mean": (4,),
    "cnn_layers.5.running_var": (4,), "cnn_layers.5.num_batches_tracked": (),
    "linear_layers.0.weight": (10, 196), "linear_layers.0.bias": (10,),
}
check(set(sd) == set(expected), "state_dict keys are PyTorch's: %s" % sorted(set(sd) ^ set(expected)))
check(all(sd[k].shape == s for k, s in expected.items() if k in sd), "state_dict shapes")
check(sd["cnn_layers.1.num_batches_tracked"].dtype == np.int64 and int(sd["cnn_layers.1.num_batches_tracked"]) == 10,
      "num_batches_tracked is int64 and counts the 10 steps")
check(all(np.isfinite(v).all() for k, v in sd.items()), "weights are finite")

# 1b. The run's TensorBoard events, read by TensorBoard's reader.
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ea = EventAccumulator(tmp + "/run/tensorboard", size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0})
ea.Reload()
tags = ea.Tags()
rows = list(csv.DictReader(open(tmp + "/run/metrics.csv")))
check({"epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy", "epoch/learning_rate"} <= set(tags["scalars"]),
      "TensorBoard reads the epoch scalars: %s" % tags["scalars"])
val = [e.value for e in ea.Scalars("epoch/val_accuracy")]
check(len(val) == len(rows) and all(abs(v - float(r["val_accuracy"])) < 1e-6 for v, r in zip(val, rows)),
      "epoch/val_accuracy equals metrics.csv")
check(all([e.step for e in ea.Scalars(t)] == list(range(1, len(rows) + 1)) for t in tags["scalars"] if t.startswith("epoch/"))
      and all([e.step for e in ea.Histograms(t)] == list(range(1, len(rows) + 1)) for t in tags["histograms"]),
      "epoch scalars and histograms at steps 1..epochs")
check(all(abs(e.value - float(r["loss"])) < 1e-5 for e, r in zip(ea.Scalars("epoch/loss"), rows)), "epoch/loss equals metrics.csv")
img = ea.Images("train/inputs")[0]
check(Image.open(io.BytesIO(img.encoded_image_string)).size == (img.width, img.height), "the input grid decodes in Pillow")
check("test/mistakes" in tags["images"] and "test/mistakes_labels" in tags["tensors"]
      and b" \xe2\x86\x92 " in ea.Tensors("test/mistakes_labels")[0].tensor_proto.string_val[0],
      "misclassified test images and their labels")
check(all(("parameters/" + k) in tags["histograms"] and ("gradients/" + k) in tags["histograms"]
          for k in expected if "running" not in k and "num_batches" not in k),
      "a histogram per parameter and gradient")

# 2. The PNG grid, read by Pillow: image k of the grid is dataset image k scaled x2.
r = run("show", "--count", "4", "--data-dir", data, "--output", tmp + "/grid.png")
check(r.returncode == 0, "convolve show")
with Image.open(tmp + "/grid.png") as im:
    im.verify()
grid = np.asarray(Image.open(tmp + "/grid.png").convert("L"))
raw = gzip.open(os.path.join(data, "train-images-idx3-ubyte.gz")).read()
first = np.frombuffer(raw[16:16 + 784], dtype=np.uint8).reshape(28, 28)
check(np.array_equal(grid[4:60:2, 4:60:2], first), "the grid's first cell holds training image 0")

# 2b. `convolve plot`'s pictures, read by Pillow.
r = run("plot", tmp + "/run", "--data-dir", data, "--output", tmp + "/plots")
check(r.returncode == 0, "convolve plot: " + r.stderr.strip()[:200])
sizes = {}
for name in ("curves.png", "confusion.png", "mistakes.png"):
    with Image.open(os.path.join(tmp, "plots", name)) as im:
        im.verify()
    sizes[name] = Image.open(os.path.join(tmp, "plots", name)).size
check(sizes["curves.png"] == (900, 360) and min(min(s) for s in sizes.values()) > 100, "the plots open in Pillow: %s" % sizes)

# 3. A file written by the safetensors library, read by Convolve.
save_file({k: v for k, v in sd.items()}, tmp + "/python.safetensors", metadata={"model": "torch-seed"})
r = run("evaluate", tmp + "/python.safetensors", "--data-dir", data, "--limit", "100", "--json")
check(r.returncode == 0 and '"accuracy"' in r.stdout, "convolve evaluate reads a file the safetensors library wrote")

# 4. ONNX: every zoo model exported by `convolve export`, checked by ONNX's checker, run by ONNX Runtime
#    on 100 real test images: its outputs equal Convolve's within 1e-4.
import json

import onnx
import onnxruntime as ort

raw = gzip.open(os.path.join(data, "t10k-images-idx3-ubyte.gz")).read()
images = np.frombuffer(raw[16:16 + 100 * 784], dtype=np.uint8).reshape(100, 1, 28, 28)
with open(tmp + "/hundred.idx", "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + (100).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big") + images.tobytes())
for name in ["torch-seed", "keras-seed", "lenet5", "mnist-cnn"]:
    run_dir = tmp + "/zoo-" + name
    r = run("train", "--model", name, "--epochs", "1", "--train-limit", "640", "--test-limit", "100",
            "--data-dir", data, "--output", run_dir, "--quiet", "--no-tensorboard")
    check(r.returncode == 0, "convolve train %s" % name)
    onnx_path = run_dir + "/model.onnx"
    r = run("export", run_dir + "/model.safetensors", "--output", onnx_path)
    check(r.returncode == 0, "convolve export %s %s" % (name, r.stderr.strip()[:200]))
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    check(model.ir_version == 8 and model.opset_import[0].version == 17 and meta.get("model") == name
          and len(meta.get("class_names", "").split("\t")) == 10,
          "%s: IR 8, opset 17, metadata %s" % (name, sorted(meta)))
    mean, std = float(meta["normalize_mean"]), float(meta["normalize_std"])
    out = ort.InferenceSession(onnx_path).run(None, {"input": (images.astype(np.float32) / 255 - mean) / std})[0]
    r = run("predict", run_dir + "/model.safetensors", tmp + "/hundred.idx", "--json")
    ref = np.array([p["outputs"] for p in json.loads(r.stdout)])
    worst = float(np.abs(out - ref).max())
    check(out.shape == (100, 10) and worst < 1e-4,
          "ONNX Runtime's %s on 100 test images equals Convolve's (%s, max difference %.1e)" % (name, meta["output"], worst))

print("interop: %d of %d checks ok" % (checks - len(failures), checks))
sys.exit(1 if failures else 0)
