#!/usr/bin/python3
# export_samples.py - write the demo images (a style never trained on) and the runtime reference outputs.
#
# Usage: /usr/bin/python3 tools/export_samples.py samples   [MODEL_DIR]   # MODEL_DIR/samples/*.png, captions.tsv, queries.tsv
#        /usr/bin/python3 tools/export_samples.py reference [MODEL_DIR]   # MODEL_DIR/reference_outputs.json
#        /usr/bin/python3 tools/export_samples.py demo      [MODEL_DIR]   # what tools/demo.sh asks, in PyTorch
#
# The samples are Streamline Emojis pictures (a drawing style held out of training) of well-known concepts
# the model trained on: what a user does is show it new pictures of things it knows.  queries.tsv holds the
# demo's text queries in English and Korean with the file that answers each one; tools/demo.sh reads both
# files.  The reference file holds the training code's own forward outputs for fixed texts (token ids, raw
# text_embeds) and for three sample files (the CLIPImageProcessor pixel tensor and raw image_embeds), so
# the C runtime can be compared with it.
import json
import os
import sys

import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import Tokenizer  # noqa: E402
from clip_model import clip_preprocess, load_model  # noqa: E402
from evaluate import load_npz  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(TOOLS, "..", "models", "emoji-clip-en-ko")
# Streamline icon names of the demo's 30 pictures, chosen before any model was trained on this data set.
SAMPLE_ICONS = ["grinning-squinting-face", "smiling-face-with-sunglasses", "loudly-crying-face", "cat", "cow",
                "dog-face", "penguin-1", "tiger", "elephant", "octopus", "turtle", "mushroom", "red-apple",
                "pizza-1", "hamburger-1", "watermelon-1", "strawberry-1", "doughnut-1", "sushi", "rocket",
                "bicycle", "airplane", "guitar", "umbrella", "sailboat", "snowman", "crown", "ghost", "rainbow",
                "sunflower-1"]
# The demo's queries and the icon that answers each: the first sentences and their Korean, and
# plain names of a few more samples, fixed before any model was measured on them.
DEMO_QUERIES = [("a laughing face", "grinning-squinting-face"), ("웃는 얼굴", "grinning-squinting-face"),
                ("red apple", "red-apple"), ("빨간 사과", "red-apple"),
                ("cat", "cat"), ("고양이", "cat"), ("cow", "cow"), ("젖소", "cow"),
                ("rocket", "rocket"), ("로켓", "rocket"), ("bicycle", "bicycle"), ("자전거", "bicycle"),
                ("penguin", "penguin-1"), ("펭귄", "penguin-1"), ("pizza", "pizza-1"), ("피자", "pizza-1")]
REFERENCE_TEXTS = ["red apple", "빨간 사과", "a smiling face with sunglasses", "고양이 얼굴", "an emoji of a rocket"]


def samples(model_dir):
    with open(os.path.join(TOOLS, "cache", "prepared", "concepts.json")) as f:
        concepts = json.load(f)
    held = load_npz("streamline.npz")
    by_icon = {str(src).split(":", 1)[1]: i for i, src in enumerate(held["source"])}
    out_dir = os.path.join(model_dir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith(".png"):
            os.remove(os.path.join(out_dir, old))
    rows, file_of = [], {}
    for icon in SAMPLE_ICONS:
        i = by_icon[icon]  # a KeyError here: the icon did not match a concept in tools/emoji_data.py
        h = str(held["hex"][i])
        name = "streamline_%s.png" % h.lower()
        Image.fromarray(held["rgba"][i], "RGBA").save(os.path.join(out_dir, name), optimize=True)
        rows.append((name, concepts[h]["en"], concepts[h]["ko"], str(held["source"][i])))
        file_of[icon] = name
    with open(os.path.join(out_dir, "captions.tsv"), "w", encoding="utf-8") as f:
        f.write("file\tenglish\tkorean\tsource\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    with open(os.path.join(out_dir, "queries.tsv"), "w", encoding="utf-8") as f:
        f.write("query\tanswer\n")
        for q, icon in DEMO_QUERIES:
            f.write("%s\t%s\n" % (q, file_of[icon]))
    print("wrote %d samples and %d queries to %s" % (len(rows), len(DEMO_QUERIES), out_dir))


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
    picks = names[:3]
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


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:]


@torch.no_grad()
def demo(model_dir):
    """What tools/demo.sh asks, in PyTorch: every query ranks the sample images, read from the files; then
    every sample's own English and Korean caption ranks them."""
    model = load_model(model_dir)
    tok = Tokenizer.load(model_dir)
    size = model.config["vision_config"]["image_size"]
    sample_dir = os.path.join(model_dir, "samples")
    rows = read_tsv(os.path.join(sample_dir, "captions.tsv"))
    files = [r[0] for r in rows]
    px = torch.stack([clip_preprocess(Image.open(os.path.join(sample_dir, f)), size) for f in files])
    img = torch.nn.functional.normalize(model.encode_image(px), dim=-1)

    def rank(texts):
        ids = [tok.encode(t) for t in texts]
        n = max(len(x) for x in ids)
        t = torch.tensor([x + [tok.eos] * (n - len(x)) for x in ids])
        txt = torch.nn.functional.normalize(model.encode_text(t), dim=-1)
        return (txt @ img.T).argsort(dim=1, descending=True).tolist()

    queries = read_tsv(os.path.join(sample_dir, "queries.tsv"))
    order = rank([q for q, _ in queries])
    places = [order[i].index(files.index(a)) + 1 for i, (_, a) in enumerate(queries)]
    print("demo queries over the %d sample images: right image first for %d of %d, in the top 3 for %d" %
          (len(files), sum(p == 1 for p in places), len(queries), sum(p <= 3 for p in places)))
    for (q, a), p, o in zip(queries, places, order):
        print("  %-22s rank %-2d  top 3: %s" % (q, p, ", ".join(rows[j][1] for j in o[:3])))
    for col, lang in ((1, "English"), (2, "Korean")):
        order = rank([r[col] for r in rows])
        top1 = sum(int(order[i][0] == i) for i in range(len(rows)))
        top3 = sum(int(i in order[i][:3]) for i in range(len(rows)))
        print("%s captions of the %d samples: own image first %d, top 3 %d" % (lang, len(rows), top1, top3))


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
