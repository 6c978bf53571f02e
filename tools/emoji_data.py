#!/usr/bin/python3
# emoji_data.py - fetch (npm pack, checksum-verified) and prepare the emoji training/evaluation data.
#
# Usage:
#   /usr/bin/python3 tools/emoji_data.py fetch            # npm pack every package in the manifest, verify sha256
#   /usr/bin/python3 tools/emoji_data.py prepare          # build tools/cache/prepared/{train,heldout}.npz + concepts.json
#   /usr/bin/python3 tools/emoji_data.py openmoji         # build tools/cache/prepared/openmoji.npz (evaluation only)
#
# Everything lands in tools/cache/ (git-ignored).  The package versions and their sha256 checksums are pinned
# in tools/emoji_manifest.json; a tarball whose checksum differs is refused.
#
# Images are stored twice: "rgb" is exactly what the runtime (and PIL's convert("RGB")) sees, i.e. the
# colour channels with alpha dropped, and "rgba" keeps alpha so that training can composite the pictogram
# over other backgrounds as an augmentation.
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(ROOT, "cache")
PREP = os.path.join(CACHE, "prepared")
MANIFEST = os.path.join(ROOT, "emoji_manifest.json")
SIZE = 64  # every style is stored at the model's input resolution
HELDOUT_SALT = "crossmodal-heldout-v1"
HELDOUT_MOD = 10  # one family in ten is held out

SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
# Components that only choose a gender or age; a family groups these variants together.
PERSON_ALIASES = {"1F468": "1F9D1", "1F469": "1F9D1",   # man, woman -> person
                  "1F466": "1F9D2", "1F467": "1F9D2",   # boy, girl -> child
                  "1F474": "1F9D3", "1F475": "1F9D3"}  # old man, old woman -> older person
GENDER_SIGNS = {"2640", "2642"}


def load_manifest():
    with open(MANIFEST) as f:
        return json.load(f)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tarball_path(pkg):
    return os.path.join(CACHE, "%s-%s.tgz" % (pkg["name"], pkg["version"]))


def fetch():
    os.makedirs(CACHE, exist_ok=True)
    for pkg in load_manifest()["packages"]:
        path = tarball_path(pkg)
        if not os.path.exists(path):
            subprocess.run(["npm", "pack", "--silent", "%s@%s" % (pkg["name"], pkg["version"])],
                           cwd=CACHE, check=True, stdout=subprocess.DEVNULL)
        digest = sha256_file(path)
        if digest != pkg["sha256"]:
            sys.exit("checksum mismatch for %s: %s (manifest says %s)" % (path, digest, pkg["sha256"]))
        print("ok %s@%s %s" % (pkg["name"], pkg["version"], digest))


def open_package(name):
    for pkg in load_manifest()["packages"]:
        if pkg["name"] == name:
            path = tarball_path(pkg)
            if not os.path.exists(path) or sha256_file(path) != pkg["sha256"]:
                sys.exit("%s missing or corrupt: run `tools/emoji_data.py fetch`" % path)
            return tarfile.open(path, "r:gz")
    raise KeyError(name)


def norm_hex(code):
    """Hex code without variation selectors, upper case, dash separated."""
    return "-".join(p for p in code.upper().split("-") if p not in ("FE0F", "FE0E"))


def family_key(hexcode):
    parts = [p for p in hexcode.split("-") if p not in SKIN_TONES]
    out = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "200D" and i + 1 < len(parts) and parts[i + 1] in GENDER_SIGNS:
            i += 2
            continue
        out.append(PERSON_ALIASES.get(p, p))
        i += 1
    # A lone gender sign keeps its own family.
    return "-".join(out) if out else hexcode


def is_heldout(family):
    digest = hashlib.sha256((HELDOUT_SALT + family).encode()).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_MOD == 0


def slug(label):
    s = label.lower().replace("’", "").replace("'", "").replace("“", "").replace("”", "")
    s = re.sub(r"[^a-z0-9]+", "-", s)
    return s.strip("-")


def load_concepts():
    """Every emojibase emoji (skin variants flattened) with English and Korean label and tags."""
    tar = open_package("emojibase-data")
    en = json.load(tar.extractfile("package/en/data.json"))
    ko = json.load(tar.extractfile("package/ko/data.json"))
    ko_by_hex = {}
    for e in ko:
        ko_by_hex[norm_hex(e["hexcode"])] = e
        for s in e.get("skins", []):
            ko_by_hex[norm_hex(s["hexcode"])] = dict(s, tags=e.get("tags", []))
    concepts = {}
    for e in en:
        if e.get("group") == 2:  # skin-tone and hair components: not pictures of a thing
            continue
        entries = [(e, None)] + [(s, e) for s in e.get("skins", [])]
        for item, base in entries:
            hx = norm_hex(item["hexcode"])
            k = ko_by_hex.get(hx)
            if k is None:
                continue
            tags_en = (base or item).get("tags", [])
            concepts[hx] = {
                "hex": hx,
                "en": item["label"],
                "ko": k["label"],
                "en_tags": tags_en,
                "ko_tags": k.get("tags", []),
                "skin": base is not None,
                "base_label": (base or item)["label"],
                "family": family_key(hx),
                "group": item.get("group", -1),
            }
    for c in concepts.values():
        c["heldout"] = is_heldout(c["family"])
    return concepts


def png_arrays(data):
    im = Image.open(io.BytesIO(data))
    rgb = np.asarray(im.convert("RGB"))
    rgba = np.asarray(im.convert("RGBA"))
    if rgb.shape[:2] != (SIZE, SIZE):
        raise ValueError("unexpected size %r" % (rgb.shape,))
    return rgb, rgba


def rasterise(svg_bytes):
    png = subprocess.run(["rsvg-convert", "-w", str(SIZE), "-h", str(SIZE), "-f", "png"],
                         input=svg_bytes, stdout=subprocess.PIPE, check=True).stdout
    return png


def load_datasource(style, concepts):
    """emoji-datasource-{google,twitter}: the 64 px PNGs, keyed by emoji.json's unified code."""
    tar = open_package("emoji-datasource-" + style)
    members = {m.name: m for m in tar.getmembers()}
    meta = json.load(tar.extractfile("package/emoji.json"))
    out = []
    for e in meta:
        items = [e] + list((e.get("skin_variations") or {}).values())
        for it in items:
            hx = norm_hex(it["unified"])
            name = "package/img/%s/64/%s" % (style, it["image"])
            if hx in concepts and it.get("has_img_" + style) and name in members:
                rgb, rgba = png_arrays(tar.extractfile(members[name]).read())
                out.append((hx, rgb, rgba, "%s:%s" % (style, it["image"])))
    return out


FLUENT_TONES = {"light": "1F3FB", "medium-light": "1F3FC", "medium": "1F3FD",
                "medium-dark": "1F3FE", "dark": "1F3FF"}


def load_fluent(concepts):
    """fluentui-emoji flat SVGs: file slugs are the CLDR names; skin variants end in -default/-light/..."""
    by_slug = {}
    for c in concepts.values():
        if not c["skin"]:
            by_slug.setdefault(slug(c["en"]), c["hex"])
    by_slug_tone = {}
    for c in concepts.values():
        if c["skin"]:
            parts = c["hex"].split("-")
            tones = [p for p in parts if p in SKIN_TONES]
            if len(tones) == 1:
                base = "-".join(p for p in parts if p not in SKIN_TONES)
                if base in concepts:
                    by_slug_tone[(slug(concepts[base]["en"]), tones[0])] = c["hex"]
    tar = open_package("fluentui-emoji")
    out = []
    unmatched = []
    for m in tar.getmembers():
        if not (m.name.startswith("package/icons/flat/") and m.name.endswith(".svg")):
            continue
        s = m.name[len("package/icons/flat/"):-4]
        hx = None
        if s in by_slug:
            hx = by_slug[s]
        elif s.endswith("-default") and s[:-8] in by_slug:
            hx = by_slug[s[:-8]]
        else:
            for suffix, tone in sorted(FLUENT_TONES.items(), key=lambda t: -len(t[0])):
                if s.endswith("-" + suffix) and (s[:-len(suffix) - 1], tone) in by_slug_tone:
                    hx = by_slug_tone[(s[:-len(suffix) - 1], tone)]
                    break
        if hx is None:
            unmatched.append(s)
            continue
        rgb, rgba = png_arrays(rasterise(tar.extractfile(m).read()))
        out.append((hx, rgb, rgba, "fluent:%s.svg" % s))
    return out, unmatched


def save(path, rows, concepts):
    hexes = [r[0] for r in rows]
    np.savez(path,
             rgb=np.stack([r[1] for r in rows]).astype(np.uint8),
             rgba=np.stack([r[2] for r in rows]).astype(np.uint8),
             hex=np.array(hexes), source=np.array([r[3] for r in rows]))


def prepare():
    os.makedirs(PREP, exist_ok=True)
    concepts = load_concepts()
    rows = []
    for style in ("google", "twitter"):
        got = load_datasource(style, concepts)
        print("%s: %d images" % (style, len(got)))
        rows += got
    fluent, unmatched = load_fluent(concepts)
    print("fluent: %d images, %d slugs unmatched (e.g. %s)" % (len(fluent), len(unmatched), unmatched[:8]))
    rows += fluent
    train = [r for r in rows if not concepts[r[0]]["heldout"]]
    held = [r for r in rows if concepts[r[0]]["heldout"]]
    save(os.path.join(PREP, "train.npz"), train, concepts)
    save(os.path.join(PREP, "heldout.npz"), held, concepts)
    with open(os.path.join(PREP, "concepts.json"), "w") as f:
        json.dump(concepts, f, ensure_ascii=False, indent=0)
    fams = {c["family"] for c in concepts.values()}
    hfams = {c["family"] for c in concepts.values() if c["heldout"]}
    print("concepts %d, families %d, held-out families %d (%.1f%%); train images %d, held-out images %d"
          % (len(concepts), len(fams), len(hfams), 100.0 * len(hfams) / len(fams), len(train), len(held)))


def prepare_openmoji():
    os.makedirs(PREP, exist_ok=True)
    with open(os.path.join(PREP, "concepts.json")) as f:
        concepts = json.load(f)
    tar = open_package("openmoji")
    rows = []
    for m in tar.getmembers():
        if m.name.startswith("package/color/svg/") and m.name.endswith(".svg"):
            hx = norm_hex(m.name[len("package/color/svg/"):-4])
            if hx in concepts:
                rgb, rgba = png_arrays(rasterise(tar.extractfile(m).read()))
                rows.append((hx, rgb, rgba, "openmoji:" + m.name.rsplit("/", 1)[1]))
    save(os.path.join(PREP, "openmoji.npz"), rows, concepts)
    print("openmoji: %d images of known concepts" % len(rows))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "fetch":
        fetch()
    elif cmd == "prepare":
        prepare()
    elif cmd == "openmoji":
        prepare_openmoji()
    else:
        sys.exit(__doc__ if False else "usage: emoji_data.py fetch|prepare|openmoji")
