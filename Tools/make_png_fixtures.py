#!/usr/bin/env python3
"""PNG fixtures written by Pillow (the real consumer and producer), for Convolve's PNG decoder tests.

Run (a venv outside the repo with Pillow and numpy):
    /opt/torchvenv/bin/pip install pillow numpy
    /opt/torchvenv/bin/python Tools/make_png_fixtures.py Tests/ConvolveTests/Fixtures/png
Writes one small PNG per colour type and bit depth, and expected.json: for each file the 8-bit pixels
Convolve must decode (grey, or RGB with alpha composited on black), computed here with numpy from
the values Pillow wrote.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/ConvolveTests/Fixtures/png"
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(17)
W, H = 7, 5
expected = {}


def save(name, img, pixels, channels):
    img.save(os.path.join(out, name), optimize=False)
    # Read back with Pillow to be sure the file holds what we meant.
    back = Image.open(os.path.join(out, name))
    assert back.size == (W, H), name
    expected[name] = {"width": W, "height": H, "channels": channels,
                      "pixels": [int(v) for v in np.asarray(pixels, dtype=np.uint8).reshape(-1)]}


def scale16(v):  # 16-bit to 8-bit, rounded (libpng's png_set_scale_16)
    return (v.astype(np.int64) * 255 + 32767) // 65535


g8 = rng.integers(0, 256, (H, W), dtype=np.uint8)
save("gray8.png", Image.fromarray(g8, "L"), g8, 1)

g16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
save("gray16.png", Image.fromarray(g16.astype(np.int32), "I").convert("I;16"), scale16(g16), 1)

la = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
save("gray_alpha8.png", Image.fromarray(la, "LA"), la[..., 0].astype(int) * la[..., 1] // 255, 1)

rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
save("rgb8.png", Image.fromarray(rgb, "RGB"), rgb, 3)

rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
save("rgba8.png", Image.fromarray(rgba, "RGBA"), rgba[..., :3].astype(int) * rgba[..., 3:4] // 255, 3)

pal = rng.integers(0, 256, (16, 3), dtype=np.uint8)
idx = rng.integers(0, 16, (H, W), dtype=np.uint8)
p = Image.fromarray(idx, "P")
p.putpalette(pal.reshape(-1).tolist())
save("palette8.png", p, pal[idx], 3)

alpha = rng.integers(0, 256, 16, dtype=np.uint8)
pt = Image.fromarray(idx, "P")
pt.putpalette(pal.reshape(-1).tolist())
pt.info["transparency"] = bytes(alpha.tolist())
save("palette_trns.png", pt, pal[idx].astype(int) * alpha[idx][..., None] // 255, 3)

bw = rng.integers(0, 2, (H, W), dtype=np.uint8) * 255
save("gray1.png", Image.fromarray(bw, "L").convert("1", dither=Image.Dither.NONE), bw, 1)

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=0, sort_keys=True)
check = np.asarray(Image.open(os.path.join(out, "gray1.png")).convert("L")).reshape(-1)
assert check.tolist() == expected["gray1.png"]["pixels"], "gray1.png does not hold the intended bits"
print("png fixtures written:", ", ".join(sorted(expected)))
