#!/usr/bin/python3
"""Writes test/encoders/data/openclip_*: small images of every PIL mode that
open_clip's transform treats specially, and what that transform makes of them.

open_clip (eval) runs torchvision's Resize(size) (short side to size, long side
int(size * long / short)) and CenterCrop(crop) (offset round((n - crop) / 2),
halves to even) on the image as PIL opened it, and only then convert("RGB").
PIL resizes "P" and "1" images with NEAREST and "LA"/"RGBA" ones premultiplied
by alpha, so those differ from transformers' convert-first pipeline.  The
transform is written out here with PIL alone (torchvision is not in Debian 12);
test/golden2 holds the same transform run by torchvision 0.14 itself.

Offline developer tool (needs python3-pil, python3-numpy; Pillow 9.4 as in
Debian 12):  /usr/bin/python3 tools/openclip_image_reference.py
"""
import io
import json
import os

import numpy as np
from PIL import Image

OUT = 'test/encoders/data'
rng = np.random.default_rng(20240614)


def transform(im, size, crop):
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    left = int(round((nw - crop) / 2.0))
    top = int(round((nh - crop) / 2.0))
    im = im.crop((left, top, left + crop, top + crop))
    return np.asarray(im.convert('RGB'), dtype=np.uint8)


def noise(h, w, c):
    # smooth gradients plus noise: bicubic and NEAREST give visibly different results
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 // max(w - 1, 1) + 40 * k) % 256 for k in range(c)], -1)
    return ((base + rng.integers(0, 90, (h, w, c))) % 256).astype(np.uint8)


def palette_image(w, h, colours):
    im = Image.fromarray(rng.integers(0, colours, (h, w)).astype(np.uint8), 'P')
    pal = rng.integers(0, 256, (colours, 3)).astype(np.uint8)
    im.putpalette(pal.flatten().tolist())
    return im


def grey_palette_image(w, h):
    # palette i -> (i, i, i): PIL's GIF and BMP readers drop it and give mode L
    im = Image.fromarray(noise(h, w, 1)[:, :, 0], 'P')
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    return im


def rgba_image(w, h):
    a = noise(h, w, 4)
    a[:, :, 3] = rng.choice([0, 1, 17, 128, 254, 255], (h, w)).astype(np.uint8)
    return Image.fromarray(a, 'RGBA')


def la_image(w, h):
    a = noise(h, w, 2)
    a[:, :, 1] = rng.integers(0, 256, (h, w)).astype(np.uint8)
    return Image.fromarray(a, 'LA')


def save(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


# (name, bytes, expected PIL mode on open, shortest edge, crop)
cases = [
    ('palette_37x23.png', save(palette_image(37, 23, 16), 'PNG'), 'P', 16, 16),
    ('palette_23x41.gif', save(palette_image(23, 41, 64), 'GIF'), 'P', 9, 8),
    ('greypal_31x19.gif', save(grey_palette_image(31, 19), 'GIF', optimize=False), 'L', 12, 12),
    ('bilevel_29x22.png', save(Image.fromarray(noise(22, 29, 1)[:, :, 0] > 128), 'PNG'), '1', 13, 13),
    ('palette_27x33.bmp', save(palette_image(27, 33, 200), 'BMP'), 'P', 11, 10),
    ('greypal_26x18.bmp', save(Image.fromarray(noise(18, 26, 1)[:, :, 0], 'L'), 'BMP'), 'L', 9, 9),
    ('bilevel_30x21.bmp', save(Image.fromarray(noise(21, 30, 1)[:, :, 0] > 128), 'BMP'), '1', 14, 13),
    ('rgba_35x24.png', save(rgba_image(35, 24), 'PNG'), 'RGBA', 15, 15),
    ('la_20x33.png', save(la_image(20, 33), 'PNG'), 'LA', 12, 11),
    ('rgb_41x26.png', save(Image.fromarray(noise(26, 41, 3), 'RGB'), 'PNG'), 'RGB', 16, 14),
    ('rgba_16x16.png', save(rgba_image(16, 16), 'PNG'), 'RGBA', 16, 16),
    ('palette_25x31.tga', save(palette_image(25, 31, 50), 'TGA'), 'P', 13, 12),
    ('rgba_33x22.tga', save(rgba_image(33, 22), 'TGA'), 'RGBA', 11, 11),
    ('palette_29x21.tif', save(palette_image(29, 21, 40), 'TIFF'), 'P', 12, 11),
    ('rgba_21x30.tif', save(rgba_image(21, 30), 'TIFF'), 'RGBA', 14, 13),
    ('rgba_26x35.webp', save(rgba_image(26, 35), 'WEBP', lossless=True), 'RGBA', 13, 13),
]

manifest = []
for name, data, mode, size, crop in cases:
    im = Image.open(io.BytesIO(data))
    assert im.mode == mode, (name, im.mode, mode)
    ref = transform(im, size, crop)
    stem = 'openclip_' + name.replace('.', '_')
    with open(os.path.join(OUT, 'openclip_' + name), 'wb') as f:
        f.write(data)
    with open(os.path.join(OUT, stem + '.rgb'), 'wb') as f:
        f.write(ref.tobytes())
    # what transformers' order (convert first, then resize and floor crop) gives differs for most
    manifest.append({'image': 'openclip_' + name, 'rgb': stem + '.rgb', 'mode': mode,
                     'shortest_edge': size, 'crop': crop})
with open(os.path.join(OUT, 'openclip_images.json'), 'w') as f:
    json.dump(manifest, f, indent=1)
    f.write('\n')
