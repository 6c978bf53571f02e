#!/usr/bin/python3
# emoji_data.py - fetch (npm pack, checksum-verified) and prepare the emoji training/evaluation data.
#
# Usage:
#   /usr/bin/python3 tools/emoji_data.py fetch            # npm pack every package in the manifest, verify sha256
#   /usr/bin/python3 tools/emoji_data.py prepare          # tools/cache/prepared/{styles,streamline}.npz + concepts.json
#   /usr/bin/python3 tools/emoji_data.py openmoji         # tools/cache/prepared/openmoji.npz (evaluation only)
#
# Everything lands in tools/cache/ (git-ignored).  The package versions and their sha256 checksums are pinned
# in tools/emoji_manifest.json; a tarball whose checksum differs is refused.
#
# styles.npz holds every image of the training styles (TRAIN_STYLES), of every concept: the concept families
# that a family-hold-out run leaves out are flagged in concepts.json ("heldout"), and train.py drops them
# when asked to.  Two whole styles are never trained on: Streamline (streamline.npz; evaluation and the
# demo's samples) and OpenMoji (openmoji.npz; evaluation only, never committed).
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
import unicodedata

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

# The styles trained on: name -> (package, how its files are read, folder or None).  Monochrome sets
# (black ink on transparent pixels) are listed in MONO_STYLES: with alpha dropped they are black on black,
# so training only shows them composited over a background.
TRAIN_STYLES = {
    "google": ("emoji-datasource-google", "datasource", None),
    "twitter": ("emoji-datasource-twitter", "datasource", None),
    "fluent": ("fluentui-emoji", "fluent", "flat"),
    "fluent_modern": ("fluentui-emoji", "fluent", "modern"),
    "fluent_contrast": ("fluentui-emoji", "fluent", "high-contrast"),
    "noto_v1": ("@iconify-json/noto-v1", "iconify", None),
    "emojione": ("@iconify-json/emojione", "iconify", None),
    "emojione_mono": ("@iconify-json/emojione-monotone", "iconify", None),
    "fxemoji": ("@iconify-json/fxemoji", "iconify", None),
}
MONO_STYLES = {"fluent_contrast", "emojione_mono"}
# The held-out style that also supplies the demo's samples.
HELDOUT_STYLE = ("streamline", "@iconify-json/streamline-emojis")
# Icon names that a slug match would read wrong: Streamline's "turkey" is the flag, not the bird.
ICON_RENAMES = {"streamline": {"turkey": "flag-turkiye"}}


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
    # npm pack names a scoped package's tarball "scope-name-version.tgz"
    return os.path.join(CACHE, "%s-%s.tgz" % (pkg["name"].lstrip("@").replace("/", "-"), pkg["version"]))


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
    s = unicodedata.normalize("NFKD", label)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))  # "Türkiye" -> "turkiye"
    s = s.lower().replace("’", "").replace("'", "").replace("“", "").replace("”", "")
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


TONE_SUFFIXES = {"light": "1F3FB", "medium-light": "1F3FC", "medium": "1F3FD", "medium-dark": "1F3FE",
                 "dark": "1F3FF"}


class NameIndex:
    """Finds the concept of an icon file named by a slug of its CLDR name ("red-apple", Fluent, Iconify),
    with a skin-tone suffix ("-medium-dark", "-medium-dark-skin-tone"; "-default" for the yellow one),
    "flag-for-x" or a bare country name for "flag-x", or a numbered variant ("-2": Streamline draws some
    concepts twice, or in a second skin tone).  With
    dashless=True it compares names without separators, which also matches names made of Unicode character
    names run together (fxemoji: "facewithtearsofjoy")."""

    def __init__(self, concepts, dashless=False):
        self.dashless = dashless
        self.base = {}
        for c in sorted(concepts.values(), key=lambda c: c["hex"]):
            if c["skin"]:
                continue
            keys = [slug(c["en"])]
            cps = c["hex"].split("-")
            if dashless and len(cps) == 1:
                try:
                    keys.append(slug(unicodedata.name(chr(int(cps[0], 16)))))
                except ValueError:
                    pass
            for k in keys:
                self.base.setdefault(self.key(k), c["hex"])
        self.tone = {}
        for c in concepts.values():
            parts = c["hex"].split("-")
            tones = [p for p in parts if p in SKIN_TONES]
            if c["skin"] and len(tones) == 1:
                base = "-".join(p for p in parts if p not in SKIN_TONES)
                if base in concepts:
                    self.tone[(self.key(slug(concepts[base]["en"])), tones[0])] = c["hex"]

    def key(self, s):
        return s.replace("-", "") if self.dashless else s

    def find(self, name):
        names = [name]
        if name.startswith("flag-for-"):
            names.append("flag-" + name[len("flag-for-"):])
        m = re.match(r"(.+)-\d$", name)
        if m:
            names.append(m.group(1))
        for n in names:
            if self.key(n) in self.base:
                return self.base[self.key(n)]
            if self.key("flag-" + n) in self.base:
                return self.base[self.key("flag-" + n)]
            if n.endswith("-default") and self.key(n[:-8]) in self.base:
                return self.base[self.key(n[:-8])]
            stem = n[:-len("-skin-tone")] if n.endswith("-skin-tone") else n
            for suffix, tone in sorted(TONE_SUFFIXES.items(), key=lambda t: -len(t[0])):
                if stem.endswith("-" + suffix):
                    hx = self.tone.get((self.key(stem[:-len(suffix) - 1]), tone))
                    if hx:
                        return hx
        return None


def load_fluent(style, concepts, folder):
    """fluentui-emoji SVGs of one folder (flat, modern, high-contrast): file names are slugs of the CLDR
    names, skin variants end in -default/-light/..."""
    index = NameIndex(concepts)
    tar = open_package("fluentui-emoji")
    out, unmatched = [], []
    prefix = "package/icons/%s/" % folder
    for m in tar.getmembers():
        if not (m.name.startswith(prefix) and m.name.endswith(".svg")):
            continue
        name = m.name[len(prefix):-4]
        hx = index.find(name)
        if hx is None:
            unmatched.append(name)
            continue
        rgb, rgba = png_arrays(rasterise(tar.extractfile(m).read()))
        out.append((hx, rgb, rgba, "%s:%s.svg" % (style, name)))
    return out, unmatched


def iconify_svg(icons, icon):
    """The standalone SVG of one Iconify icon: its body in a viewBox of the icon's (or the set's) box."""
    box = [icon.get(k, icons.get(k, d)) for k, d in (("left", 0), ("top", 0), ("width", 16), ("height", 16))]
    if any(icon.get(k) for k in ("hFlip", "vFlip", "rotate")):
        return None  # transformed icons are few; leave them out rather than render them wrong
    return ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'viewBox="%s %s %s %s" width="%s" height="%s">%s</svg>'
            % (box[0], box[1], box[2], box[3], box[2], box[3], icon["body"])).encode()


def load_iconify(style, package, concepts):
    """An Iconify JSON icon set (icons.json): icon names are slugs of the CLDR names, except fxemoji's,
    which are run-together Unicode names."""
    index = NameIndex(concepts, dashless=(style == "fxemoji"))
    tar = open_package(package)
    icons = json.load(tar.extractfile("package/icons.json"))
    out, unmatched = [], []
    renames = ICON_RENAMES.get(style, {})
    # Other names of an icon (an alias with no flip or rotation), tried when its own name matches nothing:
    # "bear-face" is also "bear", the CLDR name.
    other_names = {}
    for alias, target in sorted(icons.get("aliases", {}).items()):
        if set(target) == {"parent"}:
            other_names.setdefault(target["parent"], []).append(alias)
    for name in sorted(icons["icons"]):
        hx = None
        for n in [name] + other_names.get(name, []):
            hx = hx or index.find(renames.get(n, n))
        svg = iconify_svg(icons, icons["icons"][name])
        if hx is None or svg is None:
            unmatched.append(name)
            continue
        rgb, rgba = png_arrays(rasterise(svg))
        out.append((hx, rgb, rgba, "%s:%s" % (style, name)))
    return out, unmatched


def load_style(style, concepts):
    package, kind, folder = TRAIN_STYLES[style]
    if kind == "datasource":
        return load_datasource(style, concepts), []
    if kind == "fluent":
        return load_fluent(style, concepts, folder)
    return load_iconify(style, package, concepts)


def dedupe(rows):
    """One image per concept and picture: styles reuse a drawing for aliases (an icon listed under two
    names, a skin-tone-less person drawn once), which would count it twice."""
    seen, out = set(), []
    for r in rows:
        key = (r[0], hashlib.sha256(r[2].tobytes()).digest())
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def save(path, rows):
    np.savez(path,
             rgb=np.stack([r[1] for r in rows]).astype(np.uint8),
             rgba=np.stack([r[2] for r in rows]).astype(np.uint8),
             hex=np.array([r[0] for r in rows]), source=np.array([r[3] for r in rows]))


def prepare():
    os.makedirs(PREP, exist_ok=True)
    concepts = load_concepts()
    rows = []
    for style in TRAIN_STYLES:
        got, unmatched = load_style(style, concepts)
        got = dedupe(got)
        print("%s: %d images, %d files unmatched%s" % (style, len(got), len(unmatched),
                                                       " (e.g. %s)" % unmatched[:6] if unmatched else ""),
              flush=True)
        rows += got
    save(os.path.join(PREP, "styles.npz"), rows)
    with open(os.path.join(PREP, "concepts.json"), "w") as f:
        json.dump(concepts, f, ensure_ascii=False, indent=0)
    style, package = HELDOUT_STYLE
    held, unmatched = load_iconify(style, package, concepts)
    # One picture per concept, as in OpenMoji: a concept's first drawing ("x" or "x-1"; "x-2" is often the
    # same drawing in a skin tone).
    firsts = {}
    for r in held:
        firsts.setdefault(r[0], r)
    held = list(firsts.values())
    save(os.path.join(PREP, style + ".npz"), held)
    print("%s (held-out style): %d images, %d files unmatched (e.g. %s)" % (style, len(held), len(unmatched),
                                                                           unmatched[:6]))
    fams = {c["family"] for c in concepts.values()}
    hfams = {c["family"] for c in concepts.values() if c["heldout"]}
    nheld = sum(concepts[r[0]]["heldout"] for r in rows)
    print("concepts %d, families %d; training-style images %d, of which %d in the %d families (%.1f%%) that "
          "a family-hold-out run leaves out" % (len(concepts), len(fams), len(rows), nheld, len(hfams),
                                                100.0 * len(hfams) / len(fams)))


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
    save(os.path.join(PREP, "openmoji.npz"), rows)
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
