#!/usr/bin/python3
# train.py - train the project's small bilingual (English + Korean) CLIP on emoji images.
#
# Usage: /usr/bin/python3 tools/train.py --out DIR --ckpt DIR [--steps N] [--holdout-families] [--resume] ...
#        (--help lists every option; the model card's "Reproduce" section has the shipped model's commands)
# Needs tools/cache/prepared/ (tools/emoji_data.py fetch && tools/emoji_data.py prepare).
#
# Learns the BPE vocabulary from the training captions and trains with a symmetric InfoNCE loss over cosine
# similarities and a learned temperature.  The learning rate warms up, stays at its peak, and decays
# linearly to zero over the last --decay-steps steps (warm-up / stable / decay), so a long run can be
# stopped and cooled down from any snapshot of its stable phase (--branch-from) without knowing its length
# in advance.  Every --eval-every steps it exports the model (HF CLIPModel layout) into --out, appends loss
# and recall on the held-out sets to --out/training_log.tsv and writes a resumable checkpoint into --ckpt
# (also every --ckpt-minutes); every --snapshot-every steps it keeps a copy of that checkpoint.  Stopping
# (SIGSTOP/SIGCONT, or a kill followed by --resume) loses at most the steps since the last checkpoint.
# Every random choice comes from fixed seeds.
import os

# A shared machine: threads waiting at a barrier sleep instead of spinning, and BLAS does not start its own
# threads under torch's (the bf16 products run in oneDNN on torch's threads).  Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_bpe  # noqa: E402
from clip_model import CLIP, make_config, save_model  # noqa: E402
from emoji_data import MONO_STYLES, SKIN_TONES  # noqa: E402
from evaluate import eval_set, load_npz, select  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
PREP = os.path.join(TOOLS, "cache", "prepared")
SEED = 20261128

EN_TEMPLATES = ["{}", "{}", "{}", "an emoji of {}", "{} emoji", "a picture of {}", "an icon of {}"]
KO_TEMPLATES = ["{}", "{}", "{}", "{} 이모지", "{} 그림", "{} 이모티콘", "{} 아이콘"]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def caption(rng, c, lang):
    label = c[lang]
    tags = [t for t in c[lang + "_tags"] if t.lower() != label.lower()]
    r = rng.random()
    if r < 0.12 and tags:
        return rng.choice(tags)
    if r < 0.30 and tags:
        picked = rng.sample(tags, min(len(tags), rng.randint(1, 3)))
        return ", ".join([label] + picked)
    templates = EN_TEMPLATES if lang == "en" else KO_TEMPLATES
    return rng.choice(templates).format(label)


def bpe_corpus(concepts, holdout_families):
    texts = []
    for c in concepts.values():
        if holdout_families and c["heldout"]:
            continue
        for lang in ("en", "ko"):
            texts.append(c[lang])
            texts.extend(c[lang + "_tags"])
    texts += [t.format("") for t in EN_TEMPLATES + KO_TEMPLATES] * 50
    return texts


def augment(rgb, rgba, mono, gen, outline_p=0.3, min_scale=0.6):
    """Batch augmentation on uint8 [B,H,W,3]/[B,H,W,4]: a small affine warp, and half the time a solid
    background behind the alpha channel instead of what the file stores under transparent pixels (always,
    over a light background, for monochrome styles, whose stored view is black on black).  outline_p of the
    images get a dark contour 1-2 px wide around the shape, as line-art emoji styles draw them."""
    b = rgb.shape[0]
    x = torch.from_numpy(rgb).float().permute(0, 3, 1, 2) / 255.0
    a = torch.from_numpy(rgba).float().permute(0, 3, 1, 2) / 255.0
    alpha = a[:, 3:4]
    prem = a[:, :3] * alpha
    # Scale / translation / rotation, shared by both views of an image.
    do = (torch.rand(b, generator=gen) < 0.75).float()
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(12) * do
    scale = 1.0 + (torch.rand(b, generator=gen) * (0.15 + 1.0 - min_scale) - (1.0 - min_scale)) * do
    tx = (torch.rand(b, generator=gen) * 2 - 1) * 0.12 * do
    ty = (torch.rand(b, generator=gen) * 2 - 1) * 0.12 * do
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    stacked = torch.cat([x, prem, alpha], 1)
    stacked = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x, prem, alpha = stacked[:, :3], stacked[:, 3:6], stacked[:, 6:7]
    # Backgrounds: white, black, light grey or a random colour; light ones only behind monochrome ink.
    kind = torch.randint(0, 4, (b,), generator=gen)
    bg = torch.rand(b, 3, generator=gen)
    bg[kind == 0] = 1.0
    bg[kind == 1] = 0.0
    bg[kind == 2] = 0.85 + 0.15 * torch.rand(int((kind == 2).sum()), 1, generator=gen)
    mono = torch.as_tensor(mono)
    bg[mono] = 0.55 + 0.45 * bg[mono]
    bg = bg[:, :, None, None]
    if outline_p > 0:
        width = torch.randint(1, 3, (1,), generator=gen).item()
        grown = F.max_pool2d(alpha, 2 * width + 1, stride=1, padding=width)
        ring = (grown - alpha).clamp(0, 1)
        ink = torch.rand(b, 1, generator=gen)[:, :, None, None] * 0.25
        pick = (torch.rand(b, generator=gen) < outline_p).float()[:, None, None, None]
        ring = ring * pick
        prem = prem * (1 - ring) + ink * ring
        x = x * (1 - ring) + ink * ring
        alpha = torch.maximum(alpha, ring)
    composite = prem + (1 - alpha) * bg
    use_comp = ((torch.rand(b, generator=gen) < 0.5) | mono)[:, None, None, None]
    out = torch.where(use_comp, composite, x)
    # Round to 8 bits as a decoded file would be, then normalise like CLIPImageProcessor.
    out = (out.clamp(0, 1) * 255).round()
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (out / 255.0 - mean) / std


class TokenCache:
    """Captions repeat (labels, templates, tags), and the Python BPE is slow: each one is tokenised once."""

    def __init__(self, tok):
        self.tok = tok
        self.ids = {}

    def __call__(self, text):
        ids = self.ids.get(text)
        if ids is None:
            ids = self.ids[text] = self.tok.encode(text)
        return ids


def encode_texts_bucketed(model, ids, buckets=2):
    """Text features in input order; short and long captions are padded separately to save work
    (causal attention and end-of-text pooling make the padding length irrelevant to the result)."""
    eos = model.config["text_config"]["eos_token_id"]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = (len(ids) + buckets - 1) // buckets
    feats, where = [], []
    for b in range(0, len(order), size):
        chunk = order[b:b + size]
        n = max(len(ids[i]) for i in chunk)
        t = torch.tensor([ids[i] + [eos] * (n - len(ids[i])) for i in chunk])
        feats.append(model.encode_text(t))
        where += chunk
    out = torch.cat(feats)
    inverse = torch.empty(len(where), dtype=torch.long)
    inverse[torch.tensor(where)] = torch.arange(len(where))
    return out[inverse]


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or name == "logit_scale":
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def learning_rate(args, step):
    lr = args.lr * min(1.0, (step + 1) / max(1, args.warmup))
    if args.decay_steps and step >= args.steps - args.decay_steps:
        lr *= max(0.0, (args.steps - step) / args.decay_steps)
    return lr


def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description="Train the emoji CLIP (see the header of this file).")
    ap.add_argument("--out", required=True, help="exported model directory (updated at every evaluation)")
    ap.add_argument("--ckpt", required=True, help="checkpoint directory (last.pt, step_N.pt snapshots)")
    ap.add_argument("--steps", type=int, default=20000, help="total steps of the schedule")
    ap.add_argument("--decay-steps", type=int, default=0,
                    help="the last this many steps decay the learning rate linearly to zero (0: none)")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--branch-from", default="",
                    help="start from this checkpoint's weights, optimiser state and step (a decay branch)")
    ap.add_argument("--resume", action="store_true", help="continue from --ckpt/last.pt")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--merges", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the products")
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--vision-layers", type=int, default=6)
    ap.add_argument("--vision-width", type=int, default=192)
    ap.add_argument("--text-layers", type=int, default=4)
    ap.add_argument("--text-width", type=int, default=128)
    ap.add_argument("--act", default="quick_gelu")
    ap.add_argument("--min-scale", type=float, default=0.6, help="smallest random zoom factor")
    ap.add_argument("--outline-p", type=float, default=0.3, help="share of images given a dark contour")
    ap.add_argument("--holdout-families", action="store_true",
                    help="leave out the concept families flagged held out (measures unseen concepts)")
    ap.add_argument("--holdout-styles", default="",
                    help="comma-separated training styles to leave out and validate on (recipe pilots)")
    ap.add_argument("--eval-sets", default="streamline,openmoji",
                    help="never-trained styles to log recall on (streamline, openmoji; '' for none)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-minutes", type=float, default=10)
    ap.add_argument("--snapshot-every", type=int, default=2000)
    ap.add_argument("--smoke", type=int, default=0, help="run this many steps, print timings, export nothing")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    gen = torch.Generator().manual_seed(SEED)

    with open(os.path.join(PREP, "concepts.json")) as f:
        concepts = json.load(f)
    styles = load_npz("styles.npz")
    style_of = np.array([str(s).split(":", 1)[0] for s in styles["source"]])
    left_out = [s for s in args.holdout_styles.split(",") if s]
    for s in left_out:
        if s not in set(style_of):
            sys.exit("unknown style %r (have %s)" % (s, sorted(set(style_of))))
    family_out = np.array([args.holdout_families and concepts[str(h)]["heldout"] for h in styles["hex"]])
    style_out = np.isin(style_of, left_out)
    train = select(styles, ~family_out & ~style_out)
    train_mono = np.isin(style_of[~family_out & ~style_out], sorted(MONO_STYLES))

    # Validation sets, logged at every evaluation (none of them chooses anything in a shipped run).
    val = {}
    if args.holdout_families:
        val["heldout_families"] = select(styles, family_out & ~style_out)
    for s in left_out:
        if s not in MONO_STYLES:  # as the runtime sees them (alpha dropped), monochrome sets are all black
            val["style_" + s] = select(styles, (style_of == s) & ~family_out)
    for name in [n for n in args.eval_sets.split(",") if n]:
        val[name] = load_npz(name + ".npz")

    vocab, merges = clip_bpe.learn(bpe_corpus(concepts, args.holdout_families), args.merges)
    max_len = 32
    tok = clip_bpe.Tokenizer(vocab, merges, max_len)
    tokens = TokenCache(tok)
    config = make_config(len(vocab), vocab[clip_bpe.BOS], vocab[clip_bpe.EOS],
                         text_width=args.text_width, text_layers=args.text_layers, text_positions=max_len,
                         vision_width=args.vision_width, vision_layers=args.vision_layers, patch=args.patch,
                         projection=128, act=args.act)
    model = CLIP(config)
    nparams = sum(p.numel() for p in model.parameters())
    print("vocab %d (%d merges), parameters %.2fM (%.1f MB as float32)" %
          (len(vocab), len(merges), nparams / 1e6, nparams * 4 / 1e6), flush=True)

    # Sampling unit: one concept ignoring skin tone ("tone group"); a batch never holds two images of the
    # same group, so near-identical skin variants are not each other's negatives.
    groups = {}
    for i, h in enumerate(train["hex"]):
        key = "-".join(p for p in str(h).split("-") if p not in SKIN_TONES)
        groups.setdefault(key, []).append(i)
    group_keys = sorted(groups)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    print("train images %d (%s), tone groups %d, steps %d (decay %d), validation %s" %
          (len(train["hex"]), ", ".join("%s %d" % (s, (style_of[~family_out & ~style_out] == s).sum())
                                        for s in dict.fromkeys(style_of)),
           len(group_keys), args.steps, args.decay_steps,
           ", ".join("%s %d" % (k, len(v["hex"])) for k, v in val.items())), flush=True)

    step, wall, cpu = 0, 0.0, 0.0
    start = os.path.join(args.ckpt, "last.pt") if args.resume else args.branch_from
    if start:
        ck = torch.load(start)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng.setstate(ck["rng"])
        gen.set_state(ck["gen"])
        step, wall, cpu = ck["step"], ck["wall"], ck["cpu"]
        print("started from %s at step %d" % (start, step), flush=True)

    log_path = os.path.join(args.out, "training_log.tsv")
    if not args.smoke:
        os.makedirs(args.out, exist_ok=True)
        os.makedirs(args.ckpt, exist_ok=True)
        clip_bpe.save(args.out, vocab, merges, max_len)
        if args.branch_from:
            # The branch's log starts with the parent run's, up to the branch point.
            earlier = os.path.join(ck["args"]["out"], "training_log.tsv")
            if os.path.exists(earlier) and not os.path.exists(log_path):
                with open(earlier) as f:
                    lines = [ln for ln in f if ln.startswith("step") or int(ln.split("\t")[0]) <= step]
                with open(log_path, "w") as f:
                    f.writelines(lines)
        if not os.path.exists(log_path):
            with open(log_path, "w") as f:
                f.write("\t".join(["step", "pairs", "wall_s", "cpu_s", "lr", "loss", "temperature"] +
                                  ["%s_%s_%s" % (v, lang, k) for v in val for lang in ("en", "ko")
                                   for k in ("t2i_R@5", "i2t_R@1")]) + "\n")
        with open(os.path.join(args.ckpt, "args.json"), "w") as f:
            json.dump(vars(args), f, indent=1)

    def checkpoint(path):
        save_checkpoint(path, {"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(),
                               "gen": gen.get_state(), "step": step, "wall": wall, "cpu": cpu,
                               "args": vars(args)})

    def evaluate_and_export():
        model.eval()
        res = {name: eval_set(model, tok, concepts, data) for name, data in val.items()}
        model.train()
        save_model(model, args.out)
        cells = ["%d" % step, "%d" % (step * args.batch), "%.0f" % wall, "%.0f" % cpu,
                 "%.2e" % learning_rate(args, step - 1), "%.4f" % (run_loss / max(1, run_n)),
                 "%.2f" % model.logit_scale.exp().item()]
        cells += ["%.3f" % res[v][lang][k] for v in val for lang in ("en", "ko") for k in ("t2i_R@5", "i2t_R@1")]
        with open(log_path, "a") as f:
            f.write("\t".join(cells) + "\n")
        print("EVAL " + " ".join(cells), flush=True)
        checkpoint(os.path.join(args.ckpt, "last.pt"))
        if step % args.snapshot_every == 0:
            shutil.copyfile(os.path.join(args.ckpt, "last.pt"), os.path.join(args.ckpt, "step_%06d.pt" % step))

    model.train()
    run_loss, run_n = 0.0, 0
    last_ckpt = time.time()
    timings = []
    while step < args.steps:
        t0, c0 = time.time(), time.process_time()
        for g in opt.param_groups:
            g["lr"] = learning_rate(args, step)
        keys = rng.sample(group_keys, args.batch)
        idx = np.array([rng.choice(groups[k]) for k in keys])
        pixels = augment(train["rgb"][idx], train["rgba"][idx], train_mono[idx], gen, args.outline_p,
                         args.min_scale)
        texts = [caption(rng, concepts[str(train["hex"][i])], "en" if rng.random() < 0.5 else "ko") for i in idx]
        ids = [tokens(t) for t in texts]
        t1 = time.time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            img = model.encode_image(pixels)
            txt = encode_texts_bucketed(model, ids)
        img = F.normalize(img.float(), dim=-1)
        txt = F.normalize(txt.float(), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100.0)
        logits = scale * img @ txt.T
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))
        run_loss += loss.item()
        run_n += 1
        step += 1
        took = time.time() - t0
        recent = sorted(t[0] for t in timings[-20:])
        if len(recent) >= 5 and took > 60 and took > 10 * recent[len(recent) // 2]:
            took = recent[len(recent) // 2]  # the process was stopped (SIGSTOP): a pause is not training time
        wall += took
        cpu += time.process_time() - c0
        timings.append((took, t1 - t0))
        if step % 20 == 0 or args.smoke:
            print("step %d loss %.4f scale %.2f lr %.2e wall %.0fs cpu %.0fs (%.2f s/step, data %.2f)" %
                  (step, loss.item(), scale.item(), learning_rate(args, step - 1), wall, cpu,
                   np.mean([t[0] for t in timings[-20:]]), np.mean([t[1] for t in timings[-20:]])), flush=True)
        if args.smoke:
            if len(timings) >= args.smoke:
                t = sorted(timings[1:])
                print("smoke: median %.3f s/step (data %.3f), cpu %.3f s/step" %
                      (t[len(t) // 2][0], t[len(t) // 2][1], cpu / step))
                return
            continue
        if step % args.eval_every == 0 or step == args.steps:
            evaluate_and_export()
            run_loss, run_n = 0.0, 0
            last_ckpt = time.time()
        elif time.time() - last_ckpt > 60 * args.ckpt_minutes:
            checkpoint(os.path.join(args.ckpt, "last.pt"))
            last_ckpt = time.time()


if __name__ == "__main__":
    main()
