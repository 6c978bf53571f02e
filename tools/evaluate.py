#!/usr/bin/python3
# evaluate.py - retrieval evaluation of an exported emoji CLIP on styles and concepts it never trained on.
#
# Usage: /usr/bin/python3 tools/evaluate.py [MODEL_DIR] [--heldout-families] [--json OUT.json]
#   needs tools/cache/prepared/ (tools/emoji_data.py prepare) and builds tools/cache/prepared/openmoji.npz
#   on first use (tools/emoji_data.py openmoji).
#
# Sets: OpenMoji colour images and Streamline images, two drawing styles absent from training, each over
# every concept it shares with the caption data.  --heldout-families says the model was trained without
# the held-out concept families (train.py --holdout-families): then those families are also measured in
# the training styles and split out of the two unseen styles.  The fit on training images (Noto, trained
# concepts) is a diagnostic.  Skin-tone variants are left out of every set (their captions differ only in
# the tone).  Queries are the emojibase labels.
# Text->image: a hit when any of the top k images shows the query's concept.  Image->text: a hit when the
# image's label is among the top k labels.  The baseline re-runs the same with the labels shuffled among
# the concepts, i.e. chance level for that gallery.
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import Tokenizer  # noqa: E402
from clip_model import load_model, pixels_from_rgb  # noqa: E402

PREP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache", "prepared")


@torch.no_grad()
def embed_images(model, rgb, batch=256):
    out = []
    for i in range(0, len(rgb), batch):
        e = model.encode_image(pixels_from_rgb(rgb[i:i + batch]))
        out.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model, tok, texts, batch=256):
    out = []
    for i in range(0, len(texts), batch):
        ids = [tok.encode(t) for t in texts[i:i + batch]]
        n = max(len(x) for x in ids)
        ids = torch.tensor([x + [tok.eos] * (n - len(x)) for x in ids])
        out.append(torch.nn.functional.normalize(model.encode_text(ids), dim=-1))
    return torch.cat(out)


def recalls(text_emb, image_emb, image_concept, ks_t2i=(1, 5, 10), ks_i2t=(1, 5)):
    """text_emb[j] describes concept j; image_concept[i] is the concept index of image i."""
    sim = text_emb @ image_emb.T  # [concepts, images]
    image_concept = torch.as_tensor(image_concept)
    res = {}
    top = sim.topk(max(ks_t2i), dim=1).indices
    hits = image_concept[top] == torch.arange(sim.shape[0])[:, None]
    for k in ks_t2i:
        res["t2i_R@%d" % k] = hits[:, :k].any(dim=1).float().mean().item()
    top = sim.T.topk(max(ks_i2t), dim=1).indices
    hits = top == image_concept[:, None]
    for k in ks_i2t:
        res["i2t_R@%d" % k] = hits[:, :k].any(dim=1).float().mean().item()
    return res


def eval_set(model, tok, concepts, data, langs=("en", "ko"), seed=0):
    """Recall on one image set (npz arrays), skin-tone variants excluded; with a shuffled-label baseline."""
    keep = [i for i, h in enumerate(data["hex"]) if not concepts[str(h)]["skin"]]
    hexes = [str(data["hex"][i]) for i in keep]
    order = sorted(set(hexes))
    index = {h: j for j, h in enumerate(order)}
    image_concept = [index[h] for h in hexes]
    img = embed_images(model, data["rgb"][keep])
    out = {"images": len(keep), "concepts": len(order)}
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(order))
    for lang in langs:
        texts = [concepts[h][lang] for h in order]
        txt = embed_texts(model, tok, texts)
        out[lang] = recalls(txt, img, image_concept)
        out[lang + "_shuffled"] = recalls(txt[perm], img, image_concept)
    return out


def markdown_table(results):
    """The figures as the model card shows them: model / shuffled-caption baseline per cell."""
    keys = ["t2i_R@1", "t2i_R@5", "t2i_R@10", "i2t_R@1", "i2t_R@5"]
    lines = ["| set | images | concepts | language | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
             "| --- | ---: | ---: | --- | " + " | ".join("---:" for _ in keys) + " |"]
    for name, r in results.items():
        for lang in ("en", "ko"):
            cells = ["%.3f / %.3f" % (r[lang][k], r[lang + "_shuffled"][k]) for k in keys]
            lines.append("| %s | %d | %d | %s | %s |" % (name, r["images"], r["concepts"],
                                                        {"en": "English", "ko": "Korean"}[lang],
                                                        " | ".join(cells)))
    return "\n".join(lines)


def load_npz(name):
    d = np.load(os.path.join(PREP, name))
    return {k: d[k] for k in d.files}


def select(data, mask):
    """The rows of an image set (dict of equal-length arrays) where mask is true."""
    return {k: v[mask] for k, v in data.items()}


def style_mask(data, style):
    return np.array([str(s).split(":", 1)[0] == style for s in data["source"]])


def heldout_mask(data, concepts):
    return np.array([concepts[str(h)]["heldout"] for h in data["hex"]])


def main():
    args = sys.argv[1:]
    out_json = None
    if "--json" in args:
        i = args.index("--json")
        out_json = args[i + 1]
        del args[i:i + 2]
    families = "--heldout-families" in args
    args = [a for a in args if a != "--heldout-families"]
    model_dir = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                     "models", "emoji-clip-en-ko")
    torch.set_num_threads(int(os.environ.get("CM_THREADS", "2")))
    with open(os.path.join(PREP, "concepts.json")) as f:
        concepts = json.load(f)
    if not os.path.exists(os.path.join(PREP, "openmoji.npz")):
        import subprocess
        subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     "emoji_data.py"), "openmoji"], check=True)
    model = load_model(model_dir)
    tok = Tokenizer.load(model_dir)
    unseen = {"openmoji": load_npz("openmoji.npz"), "streamline": load_npz("streamline.npz")}
    styles = load_npz("styles.npz")
    results = {}
    for name, data in unseen.items():
        results[name + "_unseen_style"] = eval_set(model, tok, concepts, data)
    if families:
        held = heldout_mask(styles, concepts)
        results["heldout_concepts_train_styles"] = eval_set(model, tok, concepts, select(styles, held))
        for name, data in unseen.items():
            h = heldout_mask(data, concepts)
            results[name + "_heldout_concepts"] = eval_set(model, tok, concepts, select(data, h))
            results[name + "_seen_concepts"] = eval_set(model, tok, concepts, select(data, ~h))
        trained = ~held
    else:
        trained = np.ones(len(styles["hex"]), dtype=bool)
    results["diagnostic_trained_concepts_google"] = eval_set(
        model, tok, concepts, select(styles, trained & style_mask(styles, "google")))
    for name, r in results.items():
        print("%s: %d images, %d concepts" % (name, r["images"], r["concepts"]))
        for key in ("en", "en_shuffled", "ko", "ko_shuffled"):
            print("  %-12s " % key + "  ".join("%s %.3f" % kv for kv in r[key].items()))
    print()
    print(markdown_table(results))
    if out_json:
        with open(out_json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
