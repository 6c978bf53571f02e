#!/usr/bin/python3
# train.py - train the project's small bilingual (English + Korean) CLIP on emoji images.
#
# Usage: /usr/bin/python3 tools/train.py [--out models/emoji-clip-en-ko] [--epochs N] [--steps-per-epoch N]
#                                        [--batch N] [--threads N] [--smoke]
# Needs tools/cache/prepared/ (tools/emoji_data.py fetch && tools/emoji_data.py prepare).
# Learns the BPE vocabulary from the training captions, trains with a symmetric InfoNCE loss over cosine
# similarities and a learned temperature, and after every epoch exports the model (HF CLIPModel layout),
# appends loss and held-out-family recall to OUT/training_log.tsv and saves a resumable checkpoint in
# tools/cache/.  Uses a CUDA device when there is one; every random choice comes from fixed seeds.
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clip_bpe  # noqa: E402
from clip_model import CLIP, make_config, pixels_from_rgb, save_model  # noqa: E402
from evaluate import eval_set, load_npz  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
PREP = os.path.join(TOOLS, "cache", "prepared")
SEED = 20261128

EN_TEMPLATES = ["{}", "{}", "{}", "an emoji of {}", "{} emoji", "a picture of {}", "an icon of {}"]
KO_TEMPLATES = ["{}", "{}", "{}", "{} 이모지", "{} 그림", "{} 이모티콘", "{} 아이콘"]


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


def bpe_corpus(concepts):
    texts = []
    for c in concepts.values():
        if c["heldout"]:
            continue
        for lang in ("en", "ko"):
            texts.append(c[lang])
            texts.extend(c[lang + "_tags"])
    texts += [t.format("") for t in EN_TEMPLATES + KO_TEMPLATES] * 50
    return texts


def augment(rgb, rgba, gen, device, outline_p=0.0, min_scale=0.8):
    """Batch augmentation on uint8 [B,H,W,3]/[B,H,W,4]: small affine, and half the time a solid background
    behind the alpha channel instead of what the file stores under transparent pixels.  With outline_p > 0,
    that share of the images also gets a dark contour 1-2 px wide around the shape, as line-art emoji
    styles draw them."""
    b = rgb.shape[0]
    x = torch.from_numpy(rgb).to(device).float().permute(0, 3, 1, 2) / 255.0
    a = torch.from_numpy(rgba).to(device).float().permute(0, 3, 1, 2) / 255.0
    alpha = a[:, 3:4]
    prem = a[:, :3] * alpha
    # Small scale / translation / rotation, shared by both views of an image.
    do = (torch.rand(b, generator=gen) < 0.75).float()
    ang = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(12) * do
    scale = 1.0 + (torch.rand(b, generator=gen) * (0.15 + 1.0 - min_scale) - (1.0 - min_scale)) * do
    tx = (torch.rand(b, generator=gen) * 2 - 1) * 0.12 * do
    ty = (torch.rand(b, generator=gen) * 2 - 1) * 0.12 * do
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    stacked = torch.cat([x, prem, alpha], 1)
    stacked = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x, prem, alpha = stacked[:, :3], stacked[:, 3:6], stacked[:, 6:7]
    # Backgrounds: white, black, light grey or a random colour.
    kind = torch.randint(0, 4, (b,), generator=gen)
    bg = torch.rand(b, 3, generator=gen)
    bg[kind == 0] = 1.0
    bg[kind == 1] = 0.0
    bg[kind == 2] = 0.85 + 0.15 * torch.rand(int((kind == 2).sum()), 1, generator=gen)
    bg = bg.to(device)[:, :, None, None]
    if outline_p > 0:
        width = torch.randint(1, 3, (1,), generator=gen).item()
        grown = F.max_pool2d(alpha, 2 * width + 1, stride=1, padding=width)
        ring = (grown - alpha).clamp(0, 1)
        ink = torch.rand(b, 1, generator=gen).to(device)[:, :, None, None] * 0.25
        pick = (torch.rand(b, generator=gen) < outline_p).float().to(device)[:, None, None, None]
        ring = ring * pick
        prem = prem * (1 - ring) + ink * ring
        x = x * (1 - ring) + ink * ring
        alpha = torch.maximum(alpha, ring)
    composite = prem + (1 - alpha) * bg
    use_comp = (torch.rand(b, generator=gen) < 0.5).to(device)[:, None, None, None]
    out = torch.where(use_comp, composite, x)
    # Round to 8 bits as a decoded file would be, then normalise like CLIPImageProcessor.
    out = (out.clamp(0, 1) * 255).round()
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=device).view(1, 3, 1, 1)
    return (out / 255.0 - mean) / std


def encode_texts_bucketed(model, tok, texts, device, buckets=2):
    """Text features in input order; short and long captions are padded separately to save work
    (causal attention and end-of-text pooling make the padding length irrelevant to the result)."""
    ids = [tok.encode(t) for t in texts]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [None] * len(ids)
    size = (len(ids) + buckets - 1) // buckets
    for b in range(0, len(order), size):
        chunk = order[b:b + size]
        n = max(len(ids[i]) for i in chunk)
        t = torch.tensor([ids[i] + [tok.eos] * (n - len(ids[i])) for i in chunk], device=device)
        feats = model.encode_text(t)
        for j, i in enumerate(chunk):
            out[i] = feats[j]
    return torch.stack(out)


def param_groups(model, wd):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or name == "logit_scale":
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(TOOLS, "..", "models", "emoji-clip-en-ko"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--steps-per-epoch", type=int, default=80,
                    help="0: as many as 3 images per training group")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--merges", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--patch", type=int, default=16)
    ap.add_argument("--vision-layers", type=int, default=4)
    ap.add_argument("--vision-width", type=int, default=128)
    ap.add_argument("--text-layers", type=int, default=3)
    ap.add_argument("--text-width", type=int, default=128)
    ap.add_argument("--smoke", action="store_true", help="a few steps, timing only; exports nothing")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="end after this many epochs of the schedule (0: run it to the end)")
    ap.add_argument("--min-scale", type=float, default=0.8, help="smallest random zoom factor")
    ap.add_argument("--outline-p", type=float, default=0.0, help="share of images given a dark contour")
    ap.add_argument("--init-from", default="", help="start from the weights of an exported model directory "
                    "(a second stage with a fresh schedule; the log is appended to)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = random.Random(SEED)
    gen = torch.Generator().manual_seed(SEED)

    with open(os.path.join(PREP, "concepts.json")) as f:
        concepts = json.load(f)
    train = load_npz("train.npz")
    heldout = load_npz("heldout.npz")
    assert not any(concepts[str(h)]["heldout"] for h in train["hex"]), "held-out concept in training set"

    vocab, merges = clip_bpe.learn(bpe_corpus(concepts), args.merges)
    max_len = 32
    tok = clip_bpe.Tokenizer(vocab, merges, max_len)
    config = make_config(len(vocab), vocab[clip_bpe.BOS], vocab[clip_bpe.EOS],
                         text_width=args.text_width, text_layers=args.text_layers, text_positions=max_len,
                         vision_width=args.vision_width, vision_layers=args.vision_layers, patch=args.patch,
                         projection=128)
    model = CLIP(config).to(device)
    if args.init_from:
        from clip_model import read_safetensors
        model.load_state_dict(read_safetensors(os.path.join(args.init_from, "model.safetensors")))
    nparams = sum(p.numel() for p in model.parameters())
    print("vocab %d (%d merges), parameters %.2fM, device %s" % (len(vocab), len(merges), nparams / 1e6, device),
          flush=True)

    # Sampling unit: one concept ignoring skin tone ("tone group"); a batch never holds two images of the
    # same group, so near-identical skin variants are not each other's negatives.
    groups = {}
    for i, h in enumerate(train["hex"]):
        key = "-".join(p for p in str(h).split("-") if p not in ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"))
        groups.setdefault(key, []).append(i)
    group_keys = sorted(groups)
    steps_per_epoch = args.steps_per_epoch or max(1, 3 * len(group_keys) // args.batch)
    total = steps_per_epoch * args.epochs
    warmup = min(200, total // 10)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    print("train images %d, groups %d, steps/epoch %d, total steps %d" %
          (len(train["hex"]), len(group_keys), steps_per_epoch, total), flush=True)

    ckpt_path = os.path.join(TOOLS, "cache", "train_checkpoint%s.pt" % ("_stage2" if args.init_from else ""))
    start_epoch = 0
    if args.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        rng.setstate(ck["rng"])
        gen.set_state(ck["gen"])
        start_epoch = ck["epoch"]
        print("resumed after epoch %d" % start_epoch, flush=True)

    log_path = os.path.join(args.out, "training_log.tsv")
    if not args.smoke:
        os.makedirs(args.out, exist_ok=True)
        clip_bpe.save(args.out, vocab, merges, max_len)
        epoch_offset = 0
        earlier_log = os.path.join(args.init_from, "training_log.tsv") if args.init_from else ""
        if earlier_log and not os.path.exists(log_path) and os.path.exists(earlier_log):
            shutil.copyfile(earlier_log, log_path)  # one log across all stages
        if args.init_from and os.path.exists(log_path):
            with open(log_path) as f:
                epoch_offset = sum(1 for _ in f) - 1
        elif start_epoch == 0:
            with open(log_path, "w") as f:
                f.write("epoch\tstep\tseconds\tloss\ttemperature\theldout_en_t2i_R@5\theldout_ko_t2i_R@5"
                        "\theldout_en_i2t_R@1\theldout_ko_i2t_R@1\n")

    t0 = time.time()
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        model.train()
        run_loss = 0.0
        for s in range(steps_per_epoch):
            lr = args.lr * min(1.0, (step + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            keys = rng.sample(group_keys, args.batch)
            idx = [rng.choice(groups[k]) for k in keys]
            pixels = augment(train["rgb"][idx], train["rgba"][idx], gen, device, args.outline_p,
                             args.min_scale)
            texts = [caption(rng, concepts[str(train["hex"][i])], "en" if rng.random() < 0.5 else "ko")
                     for i in idx]
            img = F.normalize(model.encode_image(pixels), dim=-1)
            txt = F.normalize(encode_texts_bucketed(model, tok, texts, device), dim=-1)
            scale = model.logit_scale.exp().clamp(max=100.0)
            logits = scale * img @ txt.T
            target = torch.arange(len(idx), device=device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100.0))
            run_loss += loss.item()
            step += 1
            if s % 10 == 0 or args.smoke:
                print("epoch %d step %d/%d loss %.4f scale %.2f lr %.2e %.1fs" %
                      (epoch + 1, s + 1, steps_per_epoch, loss.item(), scale.item(), lr, time.time() - t0),
                      flush=True)
            if args.smoke and s + 1 >= args.steps_per_epoch:
                print("smoke: %.2f s/step" % ((time.time() - t0) / (s + 1)))
                return
        model.eval()
        ho = eval_set(model.cpu(), tok, concepts, heldout)
        model.to(device)
        save_model(model, args.out)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.getstate(),
                    "gen": gen.get_state(), "epoch": epoch + 1}, ckpt_path)
        line = "%d\t%d\t%.0f\t%.4f\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f" % (
            epoch + 1 + epoch_offset, step, time.time() - t0, run_loss / steps_per_epoch,
            model.logit_scale.exp().item(),
            ho["en"]["t2i_R@5"], ho["ko"]["t2i_R@5"], ho["en"]["i2t_R@1"], ho["ko"]["i2t_R@1"])
        with open(log_path, "a") as f:
            f.write(line + "\n")
        print("EPOCH " + line, flush=True)
        if args.stop_after and epoch + 1 >= args.stop_after:
            break


if __name__ == "__main__":
    main()
