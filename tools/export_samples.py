#!/usr/bin/python3
# export_samples.py - write the demo images (held-out concepts only) and the runtime reference outputs.
#
# Usage: /usr/bin/python3 tools/export_samples.py samples   [MODEL_DIR]   # MODEL_DIR/samples/*.png + captions.tsv
#        /usr/bin/python3 tools/export_samples.py reference [MODEL_DIR]   # MODEL_DIR/reference_outputs.json
#        /usr/bin/python3 tools/export_samples.py demo      [MODEL_DIR]   # rank the samples for their captions
#
# The samples come from concept families that were removed from training, in the three training styles.
# The reference file holds the training code's own forward outputs for fixed texts (token ids, raw
# text_embeds) and for three sample files (the CLIPImageProcessor pixel tensor and raw image_embeds), so the
# C runtime can be compared with it.
import hashlib
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import Tokenizer  # noqa: E402
from clip_model import clip_preprocess, load_model  # noqa: E402
from evaluate import load_npz  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(TOOLS, "..", "models", "emoji-clip-en-ko")
# emojibase groups that make good pictures: smileys, animals & nature, food, travel, activities, objects
PICTURE_GROUPS = {0, 3, 4, 5, 6, 7}
REFERENCE_TEXTS = ["red apple", "빨간 사과", "a smiling face with sunglasses", "고양이 얼굴", "an emoji of a rocket"]


def samples(model_dir, per_style=10):
    with open(os.path.join(TOOLS, "cache", "prepared", "concepts.json")) as f:
        concepts = json.load(f)
    held = load_npz("heldout.npz")
    out_dir = os.path.join(model_dir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    used = set()
    for style in ("google", "twitter", "fluent"):
        cands = []
        for i, (h, src) in enumerate(zip(held["hex"], held["source"])):
            c = concepts[str(h)]
            if str(src).startswith(style + ":") and not c["skin"] and c["group"] in PICTURE_GROUPS:
                rank = hashlib.sha256(("sample" + str(h)).encode()).hexdigest()
                cands.append((rank, i, str(h)))
        cands.sort()
        n = 0
        for _, i, h in cands:
            if h in used:
                continue
            used.add(h)
            name = "%s_%s.png" % (style, h.lower())
            Image.fromarray(held["rgba"][i], "RGBA").save(os.path.join(out_dir, name), optimize=True)
            rows.append((name, concepts[h]["en"], concepts[h]["ko"], str(held["source"][i])))
            n += 1
            if n == per_style:
                break
    with open(os.path.join(out_dir, "captions.tsv"), "w", encoding="utf-8") as f:
        f.write("file\tenglish\tkorean\tsource\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print("wrote %d samples to %s" % (len(rows), out_dir))


@torch.no_grad()
def reference(model_dir):
    model = load_model(model_dir)
    tok = Tokenizer.load(model_dir)
    size = model.config["vision_config"]["image_size"]
    texts = []
    for t in REFERENCE_TEXTS:
        ids = tok.encode(t)
        emb = model.encode_text(torch.tensor([ids]))[0]
        texts.append({"text": t, "token_ids": ids, "text_embeds": [round(float(v), 7) for v in emb]})
    sample_dir = os.path.join(model_dir, "samples")
    names = sorted(n for n in os.listdir(sample_dir) if n.endswith(".png"))
    picks = [n for n in names if n.startswith("google_")][:1] + [n for n in names if n.startswith("twitter_")][:1] \
        + [n for n in names if n.startswith("fluent_")][:1]
    images = []
    for n in picks:
        px = clip_preprocess(Image.open(os.path.join(sample_dir, n)), size)
        emb = model.encode_image(px[None])[0]
        images.append({"file": "samples/" + n, "pixel_values_shape": list(px.shape),
                       "pixel_values": [round(float(v), 6) for v in px.flatten()],
                       "image_embeds": [round(float(v), 7) for v in emb]})
    ref = {"about": "Forward outputs of tools/clip_model.py (float32, CPU) for this model: raw (unnormalised) "
                    "text_embeds from token_ids and image_embeds from pixel_values, which is the "
                    "CLIPImageProcessor-equivalent tensor (PIL convert('RGB'), bicubic resize, centre crop, "
                    "normalise) of the named file, flattened in [3,H,W] order.",
           "logit_scale": float(model.logit_scale.exp()),
           "texts": texts, "images": images}
    with open(os.path.join(model_dir, "reference_outputs.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False)
        f.write("\n")
    print("wrote reference outputs for %d texts and %d images" % (len(texts), len(images)))


@torch.no_grad()
def demo(model_dir):
    """What the README demo does, in PyTorch: every caption ranks the sample images, read from the files."""
    model = load_model(model_dir)
    tok = Tokenizer.load(model_dir)
    size = model.config["vision_config"]["image_size"]
    sample_dir = os.path.join(model_dir, "samples")
    with open(os.path.join(sample_dir, "captions.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    px = torch.stack([clip_preprocess(Image.open(os.path.join(sample_dir, r[0])), size) for r in rows])
    img = torch.nn.functional.normalize(model.encode_image(px), dim=-1)
    for col, lang in ((1, "English"), (2, "Korean")):
        ids = [tok.encode(r[col]) for r in rows]
        n = max(len(x) for x in ids)
        t = torch.tensor([x + [tok.eos] * (n - len(x)) for x in ids])
        txt = torch.nn.functional.normalize(model.encode_text(t), dim=-1)
        rank = (txt @ img.T).argsort(dim=1, descending=True)
        top1 = sum(int(rank[i, 0] == i) for i in range(len(rows)))
        top3 = sum(int(i in rank[i, :3].tolist()) for i in range(len(rows)))
        print("%s captions over the %d sample images: top-1 %d, top-3 %d" % (lang, len(rows), top1, top3))
        for i, r in enumerate(rows):
            print("  %-40s -> %s" % (r[col], ", ".join(rows[j][0] for j in rank[i, :3].tolist())))


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    model_dir = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODEL
    if what == "samples":
        samples(model_dir)
    elif what == "reference":
        reference(model_dir)
    elif what == "demo":
        demo(model_dir)
    else:
        sys.exit("usage: export_samples.py samples|reference|demo [MODEL_DIR]")
