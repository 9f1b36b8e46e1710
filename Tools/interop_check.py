#!/usr/bin/env python3
"""Files Convolve writes, read by their real consumers (CI runs this after the tests).

    python3 Tools/interop_check.py .build/release/convolve DATA_DIR
needs: pillow, numpy, safetensors, tensorboard, onnx, onnxruntime, scikit-image (a venv outside the repo; .ci/run makes one).
Checks: a training checkpoint loads with the safetensors library with PyTorch's state_dict keys,
shapes and dtypes; the PNG grid of `convolve show` opens in Pillow and holds the dataset's pixels;
a safetensors file written by the safetensors library loads in Convolve (`convolve evaluate`); the
run's TensorBoard event file is read by TensorBoard's own reader (scalars equal metrics.csv, the input
grid decodes in Pillow, a histogram per parameter and gradient); the ONNX export of a PyTorch-style and a
Keras-style model and the ResNet passes ONNX's checker and ONNX Runtime gives Convolve's predictions; a
CIFAR-10 archive written by Python's tarfile reads with its class names and pixels; JPEG photographs in an
image folder decode and resize as Pillow does them.
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
check(np.array_equal(grid[6:62:2, 6:62:2], first), "the grid's first cell holds training image 0")

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
def exported(name, run_dir):
    """`convolve export` of a run's model, checked by ONNX's checker; the model, its metadata and a
    function normalizing pixels in [0, 1] as the metadata says."""
    onnx_path = run_dir + "/model.onnx"
    r = run("export", run_dir + "/model.safetensors", "--output", onnx_path)
    check(r.returncode == 0, "convolve export %s %s" % (name, r.stderr.strip()[:200]))
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    mean = np.array([float(v) for v in meta["normalize_mean"].split(",")], np.float32).reshape(1, -1, 1, 1)
    std = np.array([float(v) for v in meta["normalize_std"].split(",")], np.float32).reshape(1, -1, 1, 1)
    session = ort.InferenceSession(onnx_path)
    return model, meta, lambda pixels: session.run(None, {"input": (pixels - mean) / std})[0]


for name in ["torch-seed", "keras-seed", "lenet5", "fast-cnn", "mnist-cnn", "resnet8"]:
    run_dir = tmp + "/zoo-" + name
    r = run("train", "--model", name, "--epochs", "1", "--train-limit", "640", "--test-limit", "100",
            "--data-dir", data, "--output", run_dir, "--quiet", "--no-tensorboard")
    check(r.returncode == 0, "convolve train %s" % name)
    model, meta, infer = exported(name, run_dir)
    check(model.ir_version == 8 and model.opset_import[0].version == 17 and meta.get("model") == name
          and len(json.loads(meta.get("class_names", "[]"))) == 10,
          "%s: IR 8, opset 17, metadata %s" % (name, sorted(meta)))
    out = infer(images.astype(np.float32) / 255)
    r = run("predict", run_dir + "/model.safetensors", tmp + "/hundred.idx", "--json")
    ref = np.array([p["outputs"] for p in json.loads(r.stdout)])
    worst = float(np.abs(out - ref).max())
    check(out.shape == (100, 10) and worst < 1e-4,
          "ONNX Runtime's %s on 100 test images equals Convolve's (%s, max difference %.1e)" % (name, meta["output"], worst))

# 4b. The ImageNet architectures (every new op: depthwise and "same"-padded convolutions, ReLU6, SiLU,
#     hard-swish, hard-sigmoid, squeeze-and-excitation): each trained one epoch on a small folder of
#     64x64 colour images (running statistics move), exported, checked, and run by ONNX Runtime on those
#     images: its outputs equal Convolve's within 1e-4 of their scale.
rng = np.random.default_rng(11)
shapes = tmp + "/shapes64"
files = []
for c in ("a", "b"):
    os.makedirs(os.path.join(shapes, c))
    for i in range(8):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        pixels[:, :, "ab".index(c)] //= 4   # a class signal
        path = os.path.join(shapes, c, "%d.png" % i)
        Image.fromarray(pixels).save(path)
        files.append(path)
batch = np.stack([np.asarray(Image.open(f)).transpose(2, 0, 1) for f in files]).astype(np.float32) / 255
for name in ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0",
             "efficientnet_lite0"]:
    run_dir = tmp + "/zoo-" + name
    r = run("train", "--model", name, "--dataset", shapes, "--epochs", "1", "--batch-size", "8", "--val-split", "0.5",
            "--output", run_dir, "--quiet", "--no-tensorboard")
    check(r.returncode == 0, "convolve train %s on a 64x64 image folder %s" % (name, r.stderr.strip()[:200]))
    _, _, infer = exported(name, run_dir)
    out = infer(batch)
    r = run("predict", run_dir + "/model.safetensors", *files, "--json")
    ref = np.array([p["outputs"] for p in json.loads(r.stdout)])
    worst = float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-6))
    check(out.shape == (16, 2) and worst < 1e-4,
          "ONNX Runtime's %s on 16 images equals Convolve's (relative difference %.1e)" % (name, worst))

# 4c. The real EfficientNet-Lite0 weights (CONVOLVE_WEIGHTS_DIR, when set): imported, exported, and run by
#     ONNX Runtime on a real photograph preprocessed by Pillow as torchvision does (shorter side 256,
#     bilinear; centre 224): the same logits as `convolve predict`, which does that preprocessing itself.
weights_dir = os.environ.get("CONVOLVE_WEIGHTS_DIR")
if weights_dir and os.path.exists(os.path.join(weights_dir, "photos", "chelsea.png")):
    ckpt = tmp + "/lite0.safetensors"
    r = run("import", os.path.join(weights_dir, "efficientnet-lite0-57934424.pth"), "--model", "efficientnet_lite0", "--output", ckpt)
    check(r.returncode == 0, "convolve import of the real Lite0 weights " + r.stderr.strip()[:200])
    r = run("export", ckpt, "--output", tmp + "/lite0.onnx")
    check(r.returncode == 0, "convolve export of the real Lite0 " + r.stderr.strip()[:200])
    photo = os.path.join(weights_dir, "photos", "chelsea.png")
    image = Image.open(photo).convert("RGB")
    w, h = image.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    image = image.resize(size, Image.BILINEAR)
    left, top = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
    x = np.asarray(image.crop((left, top, left + 224, top + 224))).transpose(2, 0, 1)[None].astype(np.float32) / 255
    out = ort.InferenceSession(tmp + "/lite0.onnx").run(None, {"input": (x - 127 / 255) / (128 / 255)})[0][0]
    r = run("predict", ckpt, photo, "--json", "--top-k", "5")
    ref = np.array(json.loads(r.stdout)[0]["outputs"])
    worst = float(np.abs(out - ref).max() / np.abs(ref).max())
    check(worst < 1e-4 and int(out.argmax()) == int(ref.argmax()) == 282,
          "ONNX Runtime's real Lite0 on chelsea.png equals Convolve's (tiger cat; relative difference %.1e)" % worst)
else:
    print("skip the real Lite0 ONNX check: CONVOLVE_WEIGHTS_DIR has no weights and photos")

# 5. CIFAR-10's binary archive as Python's tarfile and gzip write it (the real layout's producer tools):
#    `convolve show` reads it, with the class names of batches.meta.txt and the records' pixels.
import tarfile

rng = np.random.default_rng(5)
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
records = {}
cifar_dir = tmp + "/cifar"
os.makedirs(cifar_dir)
with tarfile.open(cifar_dir + "/cifar-10-binary.tar.gz", "w:gz") as tf:
    def add(name, payload):
        info = tarfile.TarInfo("cifar-10-batches-bin/" + name)
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    add("batches.meta.txt", ("\n".join(names) + "\n\n").encode())
    for batch in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, 7, dtype=np.uint8)
        pixels = rng.integers(0, 256, (7, 3072), dtype=np.uint8)
        records[batch] = (labels, pixels)
        add(batch, np.concatenate([labels[:, None], pixels], axis=1).tobytes())
r = run("show", "--dataset", "cifar10", "--data-dir", cifar_dir, "--split", "test", "--count", "4", "--output", tmp + "/cifar.png")
labels, pixels = records["test_batch.bin"]
check(r.returncode == 0 and ("labels: " + " ".join(names[l] for l in labels[:4])) in r.stdout,
      "convolve show reads a CIFAR-10 archive written by tarfile: " + (r.stdout + r.stderr).strip()[-160:])
cell = np.asarray(Image.open(tmp + "/cifar.png").convert("RGB"))[6:70:2, 6:70:2]
check(np.array_equal(cell, pixels[0].reshape(3, 32, 32).transpose(1, 2, 0)), "the grid's first cell holds test record 0 (CHW planes)")

# 6. Real photographs (scikit-image's sample data) as JPEGs in an image folder: Convolve's decoding
#    (libjpeg-turbo) and bilinear resize agree with Pillow's within 2 levels.
import skimage.data

folder = tmp + "/photos"
photos = {"astronaut": skimage.data.astronaut(), "chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
for split in ["train", "val"]:
    for cls, pixels in photos.items():
        os.makedirs(f"{folder}/{split}/{cls}")
        Image.fromarray(pixels).save(f"{folder}/{split}/{cls}/photo.jpg", quality=90, progressive=(cls == "coffee"))
r = run("show", "--dataset", folder, "--image-size", "32", "--count", "3", "--output", tmp + "/photos.png")
check(r.returncode == 0 and "labels: astronaut chelsea coffee" in r.stdout, "convolve show on a JPEG folder: " + (r.stdout + r.stderr).strip()[-160:])
grid = np.asarray(Image.open(tmp + "/photos.png").convert("RGB")).astype(int)
worst = 0
for k, cls in enumerate(photos):
    ox, oy = 6 + (k % 2) * (64 + 6), 6 + (k // 2) * (64 + 19 + 6)   # 2 columns; cells 64 wide, labels 19 high
    ours = grid[oy:oy + 64:2, ox:ox + 64:2]
    pillow = np.asarray(Image.open(f"{folder}/train/{cls}/photo.jpg").convert("RGB").resize((32, 32), Image.BILINEAR)).astype(int)
    worst = max(worst, int(np.abs(ours - pillow).max()))
check(worst <= 2, "decoded and resized photographs agree with Pillow's (largest difference %d)" % worst)

print("interop: %d of %d checks ok" % (checks - len(failures), checks))
sys.exit(1 if failures else 0)
