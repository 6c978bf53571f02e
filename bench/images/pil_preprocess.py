#!/usr/bin/python3
"""PIL + CLIPImageProcessor-equivalent preprocessing, timed per image.

usage: /usr/bin/python3 bench/images/pil_preprocess.py [--repeats N] FILE...

What a transformers user runs for an image file: load_image (Image.open,
ImageOps.exif_transpose, convert("RGB")), then CLIPImageProcessor's steps
with the PIL backend for openai/clip-vit-base-patch32: the short side
resized to 224 (PIL bicubic, long side int(224 * long / short)), the centre
224 x 224 cropped at ((size - 224) // 2), rescaled by 1/255 and normalised
with CLIP's mean and std, as float32 channel-first.  transformers itself is
not installed here; these are its steps, written with numpy.  One thread
(PIL decodes and resizes on one).  Prints the median of N runs per file.
"""
import argparse
import io
import os
import statistics
import time

import numpy as np
from PIL import Image, ImageOps

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
SIDE = 224


def preprocess(data):
    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im).convert("RGB")
    w, h = im.size
    if w <= h:
        size = (SIDE, int(SIDE * h / w))
    else:
        size = (int(SIDE * w / h), SIDE)
    im = im.resize(size, Image.BICUBIC)
    left, top = (size[0] - SIDE) // 2, (size[1] - SIDE) // 2
    im = im.crop((left, top, left + SIDE, top + SIDE))
    a = np.asarray(im).astype(np.float64) * (1 / 255)
    a = (a.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    for path in args.files:
        with open(path, "rb") as f:
            data = f.read()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            preprocess(data)
            times.append((time.perf_counter() - t0) * 1e3)
        print("PIL  %-22s %8.1f ms   (median of %d)" % (os.path.basename(path), statistics.median(times),
                                                     args.repeats))


if __name__ == "__main__":
    main()
