#!/usr/bin/python3
"""Writes the photo-like test images of the image benchmark.

usage: /usr/bin/python3 bench/images/make_photos.py OUT_DIR

No photographs ship with the project, and none can be downloaded, so each
image is synthesised with the statistics that matter to a decoder and a
resampler: a 1/f amplitude spectrum (the spectrum of natural scenes, so
detail at every scale up to the pixel), colour that varies more slowly than
brightness, hard-edged objects, and sensor noise.  Each is written as a
JPEG (quality 90, 4:2:0, what cameras and phones store) and as a lossy WebP
(quality 80) by PIL, i.e. by libjpeg-turbo and libwebp.

Sizes: 0.3 MP (640x480), 2 MP (1632x1224), 12 MP (4000x3000) and 24 MP
(6000x4000), named SIZE_N.jpg / .webp; SIZE_1 is the timing image, and
12mp_1 .. 12mp_6 are the set the embedding cosines are measured on.
"""
import os
import sys

import numpy as np
from PIL import Image

SIZES = {"0.3mp": (640, 480), "2mp": (1632, 1224), "12mp": (4000, 3000), "24mp": (6000, 4000)}
COUNT = {"0.3mp": 1, "2mp": 1, "12mp": 6, "24mp": 1}


def pink(h, w, rng, exponent):
    """A field with amplitude spectrum 1 / f^exponent, scaled to unit deviation."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape).astype(np.float32) +
                1j * rng.standard_normal(f.shape).astype(np.float32)) / f ** exponent
    spectrum[0, 0] = 0
    field = np.fft.irfft2(spectrum, s=(h, w)).astype(np.float32)
    return field / field.std()


def photo(w, h, seed):
    rng = np.random.RandomState(seed)
    lum = 128 + 45 * pink(h, w, rng, 1.0)
    img = np.empty((h, w, 3), np.float32)
    tint = [pink(h, w, rng, 1.4) for _ in range(2)]
    img[..., 0] = lum + 25 * tint[0]
    img[..., 1] = lum - 10 * tint[0] + 10 * tint[1]
    img[..., 2] = lum + 25 * tint[1]
    # hard-edged objects: discs and boxes of flat colour with a little texture
    y, x = np.ogrid[0:h, 0:w]
    for _ in range(12):
        colour = rng.uniform(20, 235, 3).astype(np.float32)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.03, 0.15) * min(w, h)
        if rng.rand() < 0.5:
            mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        else:
            mask = (abs(x - cx) < r) & (abs(y - cy) < 0.6 * r)
        img[mask] = 0.7 * colour + 0.3 * img[mask]
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seed = 1
    for name, (w, h) in SIZES.items():
        for n in range(1, COUNT[name] + 1):
            base = os.path.join(out, "%s_%d" % (name, n))
            seed += 1
            if os.path.exists(base + ".webp"):
                continue
            im = photo(w, h, seed)
            im.save(base + ".jpg", quality=90, subsampling=2)
            im.save(base + ".webp", quality=80)
            print("wrote %s.jpg (%d bytes), .webp (%d bytes)" % (
                base, os.path.getsize(base + ".jpg"), os.path.getsize(base + ".webp")), file=sys.stderr)


if __name__ == "__main__":
    main()
