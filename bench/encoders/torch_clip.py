#!/usr/bin/python3
# torch_clip.py: a compact CLIP and SigLIP forward in PyTorch, the reference side of the encoder benchmark.
#
# Loads a Hugging Face CLIP model directory (config.json + model.safetensors, parsed with numpy: no
# safetensors package), runs the text tower (causal pre-LN transformer, pooled at the first EOS, projection)
# and the vision tower (patch convolution, class + position embeddings, pre-LN, encoder, post-LN on CLS,
# projection) in eval mode under torch.inference_mode().  A SigLIP directory (model_type siglip) runs as
# transformers' SiglipModel: text without causal mask pooled at the last position then the head linear;
# vision with a biased patch convolution, no class token, post-LN on every token, then the attention-pooling
# head (probe, torch's multi-head attention arithmetic, residual LN + MLP); gelu_pytorch_tanh.  Then either
#   --check-golden   checks itself against test/golden/expected.json (raw projected features; with a SigLIP
#                    directory, against test/golden2's tiny-siglip), or
#   MODEL_DIR        times images/s and texts/s at batch 1 and 32 and one-item latency at each thread count.
# Results are printed as "RESULT key value" lines (read by run.sh) plus a human summary on stderr.
#
# usage: /usr/bin/python3 bench/encoders/torch_clip.py --check-golden
#        /usr/bin/python3 bench/encoders/torch_clip.py MODEL_DIR [--threads 1,2] [--repeats 5] [--compare FILE]
#                                                       [--tuned-env] [--no-timing]
import argparse
import ctypes
import json
import os
import statistics
import struct
import sys
import time

# --tuned-env: re-run this script with an environment that suits PyTorch on a small shared VM, so the
# comparison also has PyTorch at its best: glibc malloc keeps freed activation memory instead of returning it
# to the kernel (every fresh tensor otherwise costs page faults, which are expensive in a VM), and OpenMP
# threads sleep instead of spinning while OpenBLAS's own threads work. Both must be set before torch loads.
TUNED_ENV = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184",
    "OMP_WAIT_POLICY": "PASSIVE",
}
if "--tuned-env" in sys.argv and os.environ.get("CM_TORCH_TUNED_ENV") != "1":
    os.environ.update(TUNED_ENV, CM_TORCH_TUNED_ENV="1")
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, "test", "golden")

NP_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path):
    """name -> float32 torch tensor. F32 tensors are views of one read of the file; F16/BF16 are widened."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = np.fromfile(f, dtype=np.uint8)   # writable and aligned, so F32 tensors are views of it
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw = data[lo:hi]
        if info["dtype"] == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.view(np.dtype(NP_DTYPES[info["dtype"]]).newbyteorder("<")).astype(np.float32, copy=False)
        out[name] = torch.from_numpy(arr.reshape(info["shape"]))
    return out


def activation(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    if name in ("gelu_pytorch_tanh", "gelu_new"):
        return lambda x: F.gelu(x, approximate="tanh")
    raise ValueError(f"unsupported hidden_act {name}")


class Tower:
    """The weights of one transformer tower and its forward pass over [batch, tokens, width]."""

    def __init__(self, w, prefix, cfg):
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg.get("layer_norm_eps", 1e-5)
        self.act = activation(cfg.get("hidden_act", "quick_gelu"))
        self.width = cfg["hidden_size"]
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"{prefix}.encoder.layers.{i}."
            g = lambda k: w[p + k]
            # q, k, v fused into one [3*width, width] matrix: one GEMM instead of three
            qkv_w = torch.cat([g("self_attn.q_proj.weight"), g("self_attn.k_proj.weight"),
                               g("self_attn.v_proj.weight")], 0).contiguous()
            qkv_b = torch.cat([g("self_attn.q_proj.bias"), g("self_attn.k_proj.bias"),
                               g("self_attn.v_proj.bias")], 0).contiguous()
            self.layers.append(dict(
                ln1=(g("layer_norm1.weight"), g("layer_norm1.bias")), qkv=(qkv_w, qkv_b),
                out=(g("self_attn.out_proj.weight"), g("self_attn.out_proj.bias")),
                ln2=(g("layer_norm2.weight"), g("layer_norm2.bias")),
                fc1=(g("mlp.fc1.weight"), g("mlp.fc1.bias")), fc2=(g("mlp.fc2.weight"), g("mlp.fc2.bias"))))

    def ln(self, x, wb):
        return F.layer_norm(x, (self.width,), wb[0], wb[1], self.eps)

    def attention(self, x, layer, causal):
        b, t, d = x.shape
        h, hd = self.heads, d // self.heads
        qkv = F.linear(x, *layer["qkv"]).view(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)  # [3, b, h, t, hd]
        q, k, v = qkv[0] * (hd ** -0.5), qkv[1], qkv[2]
        scores = q @ k.transpose(-1, -2)                                              # [b, h, t, t]
        if causal:
            mask = torch.full((t, t), float("-inf")).triu_(1)
            scores = scores + mask
        ctx = scores.softmax(-1) @ v                                                  # [b, h, t, hd]
        return F.linear(ctx.transpose(1, 2).reshape(b, t, d), *layer["out"])

    def forward(self, x, causal):
        for layer in self.layers:
            x = x + self.attention(self.ln(x, layer["ln1"]), layer, causal)
            x = x + F.linear(self.act(F.linear(self.ln(x, layer["ln2"]), *layer["fc1"])), *layer["fc2"])
        return x


class Clip:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.tcfg, self.vcfg = cfg["text_config"], cfg["vision_config"]
        self.eos = self.tcfg["eos_token_id"]
        self.text = Tower(w, "text_model", self.tcfg)
        self.vision = Tower(w, "vision_model", self.vcfg)
        self.tok_emb = w["text_model.embeddings.token_embedding.weight"]
        self.tpos_emb = w["text_model.embeddings.position_embedding.weight"]
        self.final_ln = (w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"])
        self.text_proj = w["text_projection.weight"]
        self.patch_w = w["vision_model.embeddings.patch_embedding.weight"]
        self.cls = w["vision_model.embeddings.class_embedding"]
        self.vpos_emb = w["vision_model.embeddings.position_embedding.weight"]
        self.pre_ln = (w["vision_model.pre_layrnorm.weight"], w["vision_model.pre_layrnorm.bias"])
        self.post_ln = (w["vision_model.post_layernorm.weight"], w["vision_model.post_layernorm.bias"])
        self.visual_proj = w["visual_projection.weight"]
        self.patch = self.vcfg["patch_size"]

    def encode_text(self, ids):
        """ids: int64 [batch, tokens], all rows the same real length. Returns raw projected features."""
        t = ids.shape[1]
        x = self.tok_emb[ids] + self.tpos_emb[:t]
        x = self.text.ln(self.text.forward(x, causal=True), self.final_ln)
        if self.eos == 2:   # transformers' legacy rule for old configs: EOS is the highest id
            pos = ids.argmax(-1)
        else:               # first occurrence of the configured EOS id
            pos = (ids == self.eos).int().argmax(-1)
        pooled = x[torch.arange(ids.shape[0]), pos]
        return F.linear(pooled, self.text_proj)

    def encode_image(self, pixels):
        """pixels: float32 [batch, 3, S, S], already normalised. Returns raw projected features."""
        b = pixels.shape[0]
        x = F.conv2d(pixels, self.patch_w, stride=self.patch).flatten(2).transpose(1, 2)   # [b, n, d]
        x = torch.cat([self.cls.expand(b, 1, -1), x], 1) + self.vpos_emb
        x = self.vision.forward(self.vision.ln(x, self.pre_ln), causal=False)
        return F.linear(self.vision.ln(x[:, 0], self.post_ln), self.visual_proj)


class Siglip:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.tcfg, self.vcfg = cfg["text_config"], cfg["vision_config"]
        for c in (self.tcfg, self.vcfg):
            c.setdefault("hidden_act", "gelu_pytorch_tanh")
            c.setdefault("layer_norm_eps", 1e-6)
        self.eos = self.tcfg.get("eos_token_id", 1)
        self.pad = self.tcfg.get("pad_token_id", 1)
        self.text = Tower(w, "text_model", self.tcfg)
        self.vision = Tower(w, "vision_model", self.vcfg)
        self.tok_emb = w["text_model.embeddings.token_embedding.weight"]
        self.tpos_emb = w["text_model.embeddings.position_embedding.weight"]
        self.final_ln = (w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"])
        self.head = (w["text_model.head.weight"], w["text_model.head.bias"])
        self.patch_w = w["vision_model.embeddings.patch_embedding.weight"]
        self.patch_b = w["vision_model.embeddings.patch_embedding.bias"]
        self.vpos_emb = w["vision_model.embeddings.position_embedding.weight"]
        self.post_ln = (w["vision_model.post_layernorm.weight"], w["vision_model.post_layernorm.bias"])
        h = "vision_model.head."
        self.probe = w[h + "probe"]
        self.in_proj = (w[h + "attention.in_proj_weight"], w[h + "attention.in_proj_bias"])
        self.out_proj = (w[h + "attention.out_proj.weight"], w[h + "attention.out_proj.bias"])
        self.head_ln = (w[h + "layernorm.weight"], w[h + "layernorm.bias"])
        self.head_mlp = ((w[h + "mlp.fc1.weight"], w[h + "mlp.fc1.bias"]), (w[h + "mlp.fc2.weight"], w[h + "mlp.fc2.bias"]))
        self.patch = self.vcfg["patch_size"]

    def encode_text(self, ids):
        """ids: int64 [batch, 64] as SigLIP is fed (padded). Returns raw head features."""
        x = self.tok_emb[ids] + self.tpos_emb[:ids.shape[1]]
        x = self.text.ln(self.text.forward(x, causal=False), self.final_ln)
        return F.linear(x[:, -1], *self.head)

    def encode_image(self, pixels):
        b = pixels.shape[0]
        x = F.conv2d(pixels, self.patch_w, self.patch_b, stride=self.patch).flatten(2).transpose(1, 2)
        x = self.vision.ln(self.vision.forward(x + self.vpos_emb, causal=False), self.post_ln)
        # attention pooling: one probe query over every token, as nn.MultiheadAttention computes it
        d, heads = x.shape[-1], self.vision.heads
        hd = d // heads
        wq, wk, wv = self.in_proj[0].chunk(3)
        bq, bk, bv = self.in_proj[1].chunk(3)
        q = F.linear(self.probe.expand(b, 1, d), wq, bq).view(b, 1, heads, hd).transpose(1, 2)
        k = F.linear(x, wk, bk).view(b, -1, heads, hd).transpose(1, 2)
        v = F.linear(x, wv, bv).view(b, -1, heads, hd).transpose(1, 2)
        ctx = ((q * hd ** -0.5) @ k.transpose(-1, -2)).softmax(-1) @ v
        h = F.linear(ctx.transpose(1, 2).reshape(b, 1, d), *self.out_proj)
        h = h + F.linear(self.vision.act(F.linear(self.vision.ln(h, self.head_ln), *self.head_mlp[0])),
                         *self.head_mlp[1])
        return h[:, 0]


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        kind = json.load(f).get("model_type", "clip")
    return Siglip(model_dir) if kind == "siglip" else Clip(model_dir)


def check_golden2_siglip():
    """The SigLIP forward against test/golden2's tiny-siglip (token ids and pixel_values in, raw features)."""
    g2 = os.path.join(ROOT, "test", "golden2")
    with open(os.path.join(g2, "expected.json"), encoding="utf-8") as f:
        ref = json.load(f)["models"]["tiny-siglip"]
    pixels = read_safetensors(os.path.join(g2, "pixel_values.safetensors"))
    model = Siglip(os.path.join(g2, "tiny-siglip"))
    failures = 0
    with torch.inference_mode():
        for i, ids in enumerate(ref["token_ids"]):
            ok, line = compare(f"tiny-siglip text {i}", model.encode_text(torch.tensor([ids]))[0], ref["text_embeds"][i])
            failures += not ok
            print(line, file=sys.stderr)
        for image, want in ref["image_embeds"].items():
            got = model.encode_image(pixels[f"tiny-siglip/{image}"].unsqueeze(0))[0]
            ok, line = compare(f"tiny-siglip image {image}", got, want)
            failures += not ok
            print(line, file=sys.stderr)
    print(f"golden2 SigLIP check: {'PASS' if failures == 0 else f'{failures} FAILURES'}", file=sys.stderr)
    print(f"RESULT torch_golden_check {'pass' if failures == 0 else 'fail'}")
    return failures == 0


def compare(name, got, want):
    got, want = got.double(), torch.tensor(want, dtype=torch.float64)
    cos = float(F.cosine_similarity(got, want, dim=0))
    rel = float((got - want).abs().max() / want.abs().max())
    ok = cos > 0.99999 and rel < 1e-4
    return ok, f"{'ok  ' if ok else 'FAIL'} {name}: cosine {cos:.9f}, max|diff|/max|value| {rel:.2e}"


def check_golden():
    with open(os.path.join(GOLDEN, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    pixels = read_safetensors(os.path.join(GOLDEN, "pixel_values.safetensors"))
    failures, worst_cos, worst_rel = 0, 1.0, 0.0
    for model_name, ref in expected["models"].items():
        model = Clip(os.path.join(GOLDEN, model_name))
        with torch.inference_mode():
            for i, ids in enumerate(ref["token_ids"]["CLIPTokenizer"]):
                got = model.encode_text(torch.tensor([ids]))[0]
                ok, line = compare(f"{model_name} text {i}", got, ref["text_embeds"][i])
                failures += not ok
                print(line, file=sys.stderr)
            for image, want in ref["image_embeds"].items():
                got = model.encode_image(pixels[f"{model_name}/{image}"].unsqueeze(0))[0]
                ok, line = compare(f"{model_name} image {image}", got, want)
                failures += not ok
                print(line, file=sys.stderr)
    print(f"golden check: {'PASS' if failures == 0 else f'{failures} FAILURES'}", file=sys.stderr)
    print(f"RESULT torch_golden_check {'pass' if failures == 0 else 'fail'}")
    return failures == 0


def timed(fn, repeats, warmup, budget_s):
    """Median seconds of fn() after warm-up; fewer repeats if one call is slow (budget_s in total)."""
    for _ in range(warmup):
        fn()
    times = []
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s and len(times) >= 3:
            break
    return statistics.median(times), len(times)


def openblas_in_process():
    """The OpenBLAS that torch's matrix products call (Debian's torch links libblas.so.3 -> OpenBLAS).
    Its own thread pool ignores torch.set_num_threads, so the benchmark sets both."""
    with open("/proc/self/maps", encoding="utf-8") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line and line.split()[-1].startswith("/")})
    for path in paths:
        lib = ctypes.CDLL(path)
        if hasattr(lib, "openblas_set_num_threads"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib
    return None


def set_threads(n, openblas):
    torch.set_num_threads(n)
    if openblas is not None:
        openblas.openblas_set_num_threads(n)


def input_hash(i, seed):
    """The 32-bit integer hash of bench_encoders.c (input_hash), vectorised: same inputs on both sides."""
    x = (i.astype(np.uint64) * 2654435761 + seed) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x45D9F3B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def bench_inputs(model, caption_tokens, batch=32):
    """Pixels uniform in [-2, 2]; captions BOS, 8 ordinary ids, EOS, or (SigLIP, padded to every position)
    8 ordinary ids below the vocabulary size, EOS, padding; exactly as bench_encoders.c makes them."""
    size = model.vcfg["image_size"]
    n = batch * 3 * size * size
    pixels = (input_hash(np.arange(n, dtype=np.uint64), 1) % 4001).astype(np.float32) / np.float32(1000.0) \
        - np.float32(2.0)
    if isinstance(model, Siglip):
        t = model.tcfg["max_position_embeddings"]
        ids = np.full((batch, t), model.pad, dtype=np.int64)
        j = np.arange(batch)[:, None] * t + np.arange(0, 8)[None, :]
        ids[:, :8] = input_hash(j.astype(np.uint64), 2) % model.tcfg["vocab_size"]
        ids[:, 8] = model.eos
    else:
        bos, eos = model.tcfg["bos_token_id"], model.eos
        ids = np.empty((batch, caption_tokens), dtype=np.int64)
        ids[:, 0], ids[:, -1] = bos, eos
        j = np.arange(batch)[:, None] * caption_tokens + np.arange(1, caption_tokens - 1)[None, :]
        ids[:, 1:-1] = input_hash(j.astype(np.uint64), 2) % min(bos, eos)
    return torch.from_numpy(pixels.reshape(batch, 3, size, size)), torch.from_numpy(ids)


def compare_with_c(model, dump_path, caption_tokens):
    """Cosine and relative max error between bench_encoders --dump's raw features and this forward."""
    want = np.fromfile(dump_path, dtype="<f4")
    pixels, ids = bench_inputs(model, caption_tokens, batch=1)
    with torch.inference_mode():
        img = model.encode_image(pixels)[0]
        txt = model.encode_text(ids)[0]
    d = img.shape[0]
    ok = True
    for name, got, ref in (("image", img, want[:d]), ("caption", txt, want[d:2 * d])):
        good, line = compare(f"C runtime vs PyTorch, ViT-B/32 random, {name} 0", got, ref.tolist())
        cos = float(F.cosine_similarity(got.double(), torch.tensor(ref, dtype=torch.float64), dim=0))
        print(f"RESULT c_vs_torch_{name}_cosine {cos:.9f}")
        print(line, file=sys.stderr)
        ok = ok and good
    return ok


def bench(model, threads, repeats, caption_tokens, prefix="torch"):
    torch.set_num_interop_threads(1)
    openblas = openblas_in_process()
    if openblas is not None:
        print(f"RESULT {prefix}_blas {openblas.openblas_get_config().decode()}")
    else:
        print(f"RESULT {prefix}_blas not OpenBLAS (thread count set through torch only)")
    images32, ids32 = bench_inputs(model, caption_tokens)
    results = {}
    for n in threads:
        set_threads(n, openblas)
        with torch.inference_mode():
            cases = [
                ("image_b1", lambda: model.encode_image(images32[:1]), 1, 2, 30),
                ("image_b32", lambda: model.encode_image(images32), 32, 1, 60),
                ("text_b1", lambda: model.encode_text(ids32[:1]), 1, 3, 20),
                ("text_b32", lambda: model.encode_text(ids32), 32, 2, 30),
            ]
            for key, fn, batch, warmup, budget in cases:
                out = fn()
                if not torch.isfinite(out).all():
                    raise SystemExit(f"non-finite output in {key}")
                med, runs = timed(fn, repeats, warmup, budget)
                results[(key, n)] = med
                print(f"RESULT {prefix}_{key}_t{n}_ms {med * 1e3:.2f}")
                print(f"RESULT {prefix}_{key}_t{n}_per_s {batch / med:.3f}")
                print(f"{prefix} threads {n} {key}: median {med * 1e3:.1f} ms of {runs} runs, "
                      f"{batch / med:.2f} items/s", file=sys.stderr)
    for key, batch in (("image_b1", 1), ("image_b32", 32), ("text_b1", 1), ("text_b32", 32)):
        n_best = min(threads, key=lambda n: results[(key, n)])
        print(f"RESULT {prefix}_{key}_best_ms {results[(key, n_best)] * 1e3:.2f}")
        print(f"RESULT {prefix}_{key}_best_per_s {batch / results[(key, n_best)]:.3f}")
        print(f"RESULT {prefix}_{key}_best_threads {n_best}")


def main():
    ap = argparse.ArgumentParser(description="compact CLIP forward in PyTorch: golden check and benchmark")
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--check-golden", action="store_true", help="compare with test/golden/expected.json")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts (default 1,2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per case; the median is reported")
    ap.add_argument("--caption-tokens", type=int, default=10, help="caption length including BOS and EOS")
    ap.add_argument("--compare", metavar="FILE", help="raw features from bench_encoders --dump to check against")
    ap.add_argument("--no-timing", action="store_true", help="only the checks, no timed runs")
    ap.add_argument("--tuned-env", action="store_true",
                    help="run under TUNED_ENV (malloc keeps memory, passive OpenMP); results as torchtuned_*")
    args = ap.parse_args()
    print(f"RESULT torch_version {torch.__version__}")
    model = load_model(args.model_dir) if args.model_dir else None
    if args.check_golden and not (check_golden2_siglip() if isinstance(model, Siglip) else check_golden()):
        return 1
    if args.model_dir:
        if args.compare and not compare_with_c(model, args.compare, args.caption_tokens):
            return 1
        if not args.no_timing:
            bench(model, [int(t) for t in args.threads.split(",")], args.repeats, args.caption_tokens,
                  "torchtuned" if args.tuned_env else "torch")
    elif not args.check_golden:
        ap.error("give MODEL_DIR and/or --check-golden")
    return 0


if __name__ == "__main__":
    sys.exit(main())
