"""Writes the JPEG and resize fixtures of the image tests (Tests/ConvolveTests/Fixtures/jpeg/).

Real photographs from scikit-image's sample data (astronaut, coffee, chelsea), cropped small, saved by
Pillow as baseline, progressive, 4:4:4 and greyscale JPEGs; beside each, the pixels Pillow decodes
(reference.json), and Pillow's bilinear resizes of a crop. Also the class images of the end-to-end image
folder test (red discs, green squares, blue triangles), one truncated JPEG and one CMYK JPEG.

    python -m venv /tmp/v && /tmp/v/bin/pip install pillow numpy scikit-image
    /tmp/v/bin/python Tools/make_image_fixtures.py
"""
import io, json, os, random
import numpy as np
from PIL import Image, ImageDraw
import skimage.data

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "ConvolveTests", "Fixtures", "jpeg")
os.makedirs(out, exist_ok=True)
ref = {"decoded": {}, "resized": []}

photos = {"astronaut": skimage.data.astronaut()[40:100, 180:260], "coffee": skimage.data.coffee()[100:148, 200:264],
          "chelsea": skimage.data.chelsea()[80:136, 150:222]}
variants = [("baseline", dict(quality=90)), ("progressive", dict(quality=85, progressive=True)),
            ("444", dict(quality=95, subsampling=0)), ("grey", dict(quality=90))]
for name, pixels in photos.items():
    img = Image.fromarray(pixels)
    for variant, kwargs in variants:
        im = img.convert("L") if variant == "grey" else img
        path = f"{name}-{variant}.jpg"
        im.save(os.path.join(out, path), "JPEG", **kwargs)
        back = Image.open(os.path.join(out, path))
        back.load()
        mode = back.mode
        arr = np.asarray(back)
        ref["decoded"][path] = {"width": back.width, "height": back.height, "channels": 1 if mode == "L" else 3,
                                "pixels": arr.reshape(-1).tolist()}

# Pillow's bilinear resize (antialiased when shrinking) of a photo crop, RGB, to several sizes.
crop = Image.fromarray(skimage.data.astronaut()[100:164, 200:248])   # 48 wide, 64 high
src = np.asarray(crop)
for (w, h) in [(24, 32), (16, 16), (7, 9), (96, 80), (48, 20)]:
    r = np.asarray(crop.resize((w, h), Image.BILINEAR))
    ref["resized"].append({"width": w, "height": h, "pixels": r.reshape(-1).tolist()})
ref["resize_source"] = {"width": 48, "height": 64, "pixels": src.reshape(-1).tolist()}

# Class images for the end-to-end folder test: one shape and colour per class, random size and place.
rng = random.Random(7)
for cls, (colour, shape) in {"red": ((220, 40, 40), "disc"), "green": ((40, 200, 60), "square"),
                             "blue": ((50, 70, 230), "triangle")}.items():
    for i in range(2):
        size = rng.randint(30, 44)
        im = Image.new("RGB", (size, size), tuple(rng.randint(0, 60) for _ in range(3)))
        d = ImageDraw.Draw(im)
        r = rng.randint(size // 4, size // 3); cx = rng.randint(r, size - r); cy = rng.randint(r, size - r)
        if shape == "disc": d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        elif shape == "square": d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else: d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
        im.save(os.path.join(out, f"class-{cls}-{i}.jpg"), "JPEG", quality=92, progressive=(i == 1))

# Bad files: a truncated JPEG and a CMYK one.
whole = open(os.path.join(out, "astronaut-baseline.jpg"), "rb").read()
open(os.path.join(out, "truncated.jpg"), "wb").write(whole[: len(whole) // 2])
Image.fromarray(photos["coffee"]).convert("CMYK").save(os.path.join(out, "cmyk.jpg"), "JPEG", quality=90)

with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(ref, f, separators=(",", ":"))
print("wrote", sorted(os.listdir(out)))
