#!/usr/bin/python3
# report.py: turn the "RESULT key value" lines of one benchmark run into the results table (Markdown).
#
# usage: /usr/bin/python3 bench/encoders/report.py RESULTS_FILE
import sys


def load(path):
    r = {}
    prec_model = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("RESULT "):
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) != 3:
                    continue
                key, value = parts[1], parts[2]
                # bench_precision runs once per model: its figures are kept per model
                if key == "prec_model":
                    prec_model = value
                    r.setdefault("prec_models", [])
                    if value not in r["prec_models"]:
                        r["prec_models"].append(value)
                    continue
                if key.startswith(("fid_", "rank_", "prec_", "ab_")) and prec_model is not None:
                    key = f"{prec_model}:{key}"
                # sgemm_peak runs before and after the encoders: keep each figure's best
                if key.startswith(("sgemm_", "mem_read_")) and key in r:
                    try:
                        value = str(max(float(value), float(r[key])))
                    except ValueError:
                        pass
                r[key] = value
    return r


def num(r, key):
    try:
        return float(r[key])
    except (KeyError, ValueError):
        return None


def fmt(v, digits=1, suffix=""):
    return "n/a" if v is None else f"{v:.{digits}f}{suffix}"


def best(r, keys, lo=False):
    vals = [v for v in (num(r, k) for k in keys) if v is not None]
    return (min(vals) if lo else max(vals)) if vals else None


def issue21(r, threads, refs, peak, flops):
    """The targets of issue 21, each with its figure."""
    out = ["", "Targets (issue 21):"]
    for label, case, goal_f32, goal_bf16 in (("texts/s, batch 32", "text_b32", 2.0, None),
                                             ("images/s, batch 32", "image_b32", 2.0, 3.5)):
        torch = best(r, [f"{p}_{case}_t{t}_per_s" for p in refs for t in threads])
        for side, goal in (("c", goal_f32), ("cbf16", goal_bf16)):
            c = best(r, [f"{side}_{case}_t{t}_per_s" for t in threads])
            if c is None:
                continue
            line = f"- {label}, {'BF16' if side == 'cbf16' else 'F32'}: {c:.1f}"
            if torch:
                line += f" = {c / torch:.2f}x PyTorch's best {torch:.1f}"
                if goal:
                    line += f" (target {goal}x: {'met' if c / torch >= goal else 'missed'})"
            t1, t2 = num(r, f"{side}_{case}_t1_per_s"), num(r, f"{side}_{case}_t2_per_s")
            if t1 and t2:
                line += f"; 2 threads / 1 thread = {t2 / t1:.2f}"
            if case == "image_b32" and flops["image"]:
                bt = max(threads, key=lambda t: num(r, f"{side}_{case}_t{t}_per_s") or 0)
                g = (num(r, f"{side}_{case}_t{bt}_per_s") or 0) * flops["image"] / 1e9
                line += f"; {g:.0f} GFLOP/s on {bt} thread{'s' if bt > 1 else ''}"
                if peak.get(bt):
                    line += f" = {100 * g / peak[bt]:.0f}% of the sgemm peak"
            out.append(line)
    bw = num(r, "mem_read_file_t1_gbs") or num(r, "mem_read_t1_gbs")
    for side, name, mb in (("c", "F32", 151e6), ("cbf16", "BF16", 75.5e6)):
        cap = num(r, f"{side}_text_b1_t1_ms")
        if cap and bw:
            floor = mb / (bw * 1e9) * 1e3
            out.append(f"- one {r.get('c_caption_tokens', '10')}-token caption on one thread, {name}: {cap:.2f} ms "
                       f"= {cap / floor:.2f}x the weight-reading floor ({mb / 1e6:.1f} MB at {bw:.1f} GB/s = "
                       f"{floor:.2f} ms; target 1.3x: {'met' if cap / floor <= 1.3 else 'missed'})")
    for model in r.get("prec_models", []):
        ab = [(case, t, num(r, f"{model}:ab_{case}_t{t}_f32_ms"), num(r, f"{model}:ab_{case}_t{t}_bf16_ms"))
              for case in ("text_b1", "text_b32", "image_b32") for t in threads]
        ab = [a for a in ab if a[2] and a[3]]
        if ab:
            out.append(f"- BF16 against F32, interleaved in one process ({model}): "
                       + "; ".join(f"{case} {t}T {f:.2f} -> {b:.2f} ms ({f / b:.2f}x)" for case, t, f, b in ab))
    for m in (10, 320):
        f, b, i = (num(r, f"int8_probe_m{m}_{k}_cpu_ms") for k in ("f32", "bf16", "int8"))
        if f and b:
            out.append(f"- INT8 probe (int8_probe.c), the text tower's 72 products for {m} rows on one thread, CPU ms: "
                       f"F32 {f:.2f}, BF16 {b:.2f}" + (f", INT8 (naive VNNI kernel) {i:.2f}" if i else ", no VNNI"))
    if num(r, "int8_probe_fc1_cos_bf16") is not None:
        out.append(f"- one fc1 product's worst row cosine to double precision: BF16 {r['int8_probe_fc1_cos_bf16']}, "
                   f"INT8 {r.get('int8_probe_fc1_cos_int8', 'n/a')}")
    models = r.get("prec_models", [])
    if models:
        out.append("")
        out.append("BF16 against F32 (bench_precision: 256 hashed 10-token captions, 64 hashed images; retrieval over "
                   "that sample; 'F32 alone' is F32 one input at a time against F32 in batches, the rounding noise):")
        out.append("")
        out.append("| model | private weight bytes F32 / BF16 | cosine texts worst (mean) | cosine images worst (mean) "
                   "| text->image top-1 same | image->text top-1 same | text->text top-1 same | top-10 set overlap "
                   "t->i / i->t / t->t | F32 alone: top-1 same t->i / i->t / t->t |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for m in models:
            g = lambda k: r.get(f"{m}:{k}", "n/a")
            ranks = lambda lab, what: f"{g(f'rank_{lab}_{what}_top1_same')}/{g(f'rank_{lab}_{what}_queries')}"
            ov = lambda what: fmt(100 * num(r, f"{m}:rank_bf16_{what}_top10_overlap"), 1, "%") \
                if num(r, f"{m}:rank_bf16_{what}_top10_overlap") is not None else "n/a"
            out.append(f"| {m} | {g('prec_f32_private_weight_bytes')} / {g('prec_bf16_private_weight_bytes')} "
                       f"| {g('fid_bf16_texts_cos_min')} ({g('fid_bf16_texts_cos_mean')}) "
                       f"| {g('fid_bf16_images_cos_min')} ({g('fid_bf16_images_cos_mean')}) "
                       f"| {ranks('bf16', 'text2image')} | {ranks('bf16', 'image2text')} | {ranks('bf16', 'text2text')} "
                       f"| {ov('text2image')} / {ov('image2text')} / {ov('text2text')} "
                       f"| {ranks('f32alone', 'text2image')} / {ranks('f32alone', 'image2text')} / "
                       f"{ranks('f32alone', 'text2text')} |")
    if "rssbf16_child_vmrss_kb" in r:
        kb = lambda k: num(r, k)
        out.append("")
        out.append("A second process loading the model at BF16 while the first holds it: private "
                   f"{fmt(kb('rssbf16_child_private_kb') / 1024 if kb('rssbf16_child_private_kb') else None, 0)} MiB, "
                   f"Pss {fmt(kb('rssbf16_child_pss_kb') / 1024 if kb('rssbf16_child_pss_kb') else None, 0)} MiB "
                   f"(at F32: private {fmt(kb('rss_child_private_kb') / 1024 if kb('rss_child_private_kb') else None, 0)} MiB).")
    return out


def main():
    r = load(sys.argv[1])
    threads = (1, 2)
    siglip = r.get("model_kind") == "siglip"
    tokens = r.get("c_caption_tokens", "10")
    flops = {"image": num(r, "c_flops_per_image"), "text": num(r, "c_flops_per_caption")}
    peak = {t: num(r, f"sgemm_peak_t{t}_gflops") for t in threads}
    out = []
    out.append(f"Machine: {r.get('machine', '?')}; OpenBLAS: {r.get('openblas_config', '?')}; "
               f"PyTorch {r.get('torch_version', '?')} (golden check: {r.get('torch_golden_check', 'not run')})")
    out.append(f"Load before: {r.get('uptime_before', '?')}; after: {r.get('uptime_after', '?')}")
    out.append("")
    out.append("sgemm peak (best of square 2048 and the ViT-B/32 batch-32 GEMM shapes, measured before and after "
               "the encoders): "
               + ", ".join(f"{t} thread{'s' if t > 1 else ''} {fmt(peak[t])} GFLOP/s" for t in threads))
    bw = num(r, "mem_read_t1_gbs")
    bw_file = num(r, "mem_read_file_t1_gbs")
    if bw and not siglip:
        line = f"Read bandwidth, 1 thread: {bw:.1f} GB/s over a fresh buffer"
        if bw_file:
            line += f", {bw_file:.1f} GB/s over the model file's mapping"
        floor = bw_file or bw
        out.append(line + f"; so reading the text tower's 151 MB of F32 layer weights once (the floor for one "
                   f"short caption) takes {151e6 / (floor * 1e9) * 1e3:.1f} ms")
    if flops["image"]:
        out.append(f"FLOPs counted from the config: {flops['image'] / 1e9:.3f} GFLOP per image, "
                   f"{flops['text'] / 1e9:.3f} GFLOP per {r.get('c_caption_tokens', '10')}-token caption "
                   "(2mnk per GEMM + attention scores and mixing)")
    out.append("")
    sides = [("C", "c")] + [("C BF16", "cbf16")] * any(k.startswith("cbf16_image") for k in r) + [
        (name, prefix) for name, prefix in
                            (("PyTorch", "torch"), ("PyTorch tuned env", "torchtuned"))
                            if any(k.startswith(prefix + "_image") for k in r)]
    refs = [prefix for _, prefix in sides if prefix.startswith("torch")]
    out.append("| measure | " + " | ".join(f"{name} {t}T" for name, _ in sides for t in threads)
               + " | speed-up, C best vs PyTorch best |")
    out.append("|" + "---|" * (2 + len(sides) * len(threads)))
    rows = [
        ("images/s, batch 32", "image_b32", "per_s", 2, "image"),
        ("images/s, batch 1", "image_b1", "per_s", 2, "image"),
        ("ms per image (batch 1)", "image_b1", "ms", 1, None),
        ("texts/s, batch 32", "text_b32", "per_s", 1, "text"),
        ("texts/s, batch 1", "text_b1", "per_s", 1, "text"),
        (f"ms per {tokens}-token caption (batch 1)", "text_b1", "ms", 2, None),
    ]
    for label, case, unit, digits, kind in rows:
        vals = {prefix: [num(r, f"{prefix}_{case}_t{t}_{unit}") for t in threads] for _, prefix in sides}
        best_c = [v for v in vals["c"] if v is not None]
        best_t = [v for p in refs for v in vals[p] if v is not None]
        ratio = None
        if best_c and best_t:
            ratio = (max(best_c) / max(best_t)) if unit == "per_s" else (min(best_t) / min(best_c))
        out.append(f"| {label} | " + " | ".join(fmt(v, digits) for _, p in sides for v in vals[p])
                   + f" | {fmt(ratio, 2, 'x')} |")
        if kind and unit == "per_s" and flops[kind]:
            g = lambda v: None if v is None else v * flops[kind] / 1e9
            pct = lambda v, t: None if v is None or not peak[t] else 100 * g(v) / peak[t]
            out.append("| &nbsp;&nbsp;GFLOP/s (% of sgemm peak) | "
                       + " | ".join(f"{fmt(g(v))} ({fmt(pct(v, t), 0, '%')})"
                                    for _, p in sides for v, t in zip(vals[p], threads)) + " | |")
    for label, case, digits in (("ms per image from PNG bytes (decode + resize + forward)", "png_b1", 1),
                                ("ms per caption from a string (tokenize + forward, "
                                 f"{r.get('c_string_caption_tokens', '?')} tokens)", "string_b1", 2)):
        cs = [num(r, f"c_{case}_t{t}_ms") for t in threads]
        if any(v is not None for v in cs):
            out.append(f"| {label} | " + " | ".join(fmt(v, digits) for v in cs) + " | "
                       + " | ".join("-" for _ in range(len(threads) * (len(sides) - 1))) + " | |")
    out.append("")
    checks = []
    if "torch_golden_check" in r:
        checks.append(f"PyTorch forward vs {'test/golden2 tiny-siglip' if siglip else 'test/golden (both tiny models)'}: "
                      f"{r['torch_golden_check']}")
    for kind in ("image", "caption"):
        if f"c_vs_torch_{kind}_cosine" in r:
            checks.append(f"C vs PyTorch on this model, {kind} 0 raw features: cosine {r[f'c_vs_torch_{kind}_cosine']}")
    if checks:
        out.append("Checks: " + "; ".join(checks) + ".")
        out.append("")
    if siglip:
        out.append("Targets (issue 14): batch-32 images >= 1.5x PyTorch's best setting; one image (batch 1) >= 2x.")
    else:
        out.append("Targets (issue 3): batch-32 images >= 80% of sgemm peak and >= 1.3x PyTorch; one image in under "
                   "half of PyTorch's time; a 10-token caption < 10 ms on one thread.")
    c32 = max([v for v in (num(r, f"c_image_b32_t{t}_per_s") for t in threads) if v is not None], default=None)
    t32 = max([v for v in (num(r, f"{p}_image_b32_t{t}_per_s") for p in refs for t in threads)
               if v is not None], default=None)
    if c32 and flops["image"]:
        best_t = max(threads, key=lambda t: num(r, f"c_image_b32_t{t}_per_s") or 0)
        p = peak[best_t]
        pct = 100 * c32 * flops["image"] / 1e9 / p if p else None
        out.append(f"- batch-32 images: {c32:.2f}/s = {fmt(pct, 0, '%')} of the {best_t}-thread peak"
                   + (f", {c32 / t32:.2f}x PyTorch" if t32 else ""))
    c1 = min([v for v in (num(r, f"c_image_b1_t{t}_ms") for t in threads) if v is not None], default=None)
    t1 = min([v for v in (num(r, f"{p}_image_b1_t{t}_ms") for p in refs for t in threads)
              if v is not None], default=None)
    if c1 and t1:
        out.append(f"- one image: {c1:.1f} ms vs PyTorch {t1:.1f} ms ({c1 / t1:.2f} of PyTorch's time, "
                   f"{t1 / c1:.2f}x)")
    cap = num(r, "c_text_b1_t1_ms")
    if cap:
        out.append(f"- one {tokens}-token caption on one thread: {cap:.2f} ms")
    if "rss_child_vmrss_kb" in r:
        kb = lambda k: num(r, k)
        out.append("")
        out.append("Resident memory of a second process loading the same F32 model while the first holds it "
                   f"(model.safetensors {fmt(kb('rss_model_file_bytes') / 2**20 if kb('rss_model_file_bytes') else None, 0)} MiB):")
        out.append("")
        out.append("| process | VmRSS | RssFile | RssAnon | Pss | model.safetensors mapping: Rss | Pss | "
                   "Shared_Clean | private | load ms |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for who in ("first", "child"):
            m = lambda k: fmt(kb(f"rss_{who}_{k}_kb") / 1024 if kb(f"rss_{who}_{k}_kb") is not None else None, 0)
            load_ms = kb(f"rss_{who}_load_ms")
            out.append(f"| {who if who == 'first' else 'second'} | {m('vmrss')} | {m('rssfile')} | {m('rssanon')} | "
                       f"{m('pss')} | {m('model_map_rss')} | {m('model_map_pss')} | {m('model_map_shared_clean')} | "
                       f"{m('model_map_private')} | {fmt(load_ms if load_ms is not None and load_ms >= 0 else None, 1)} |")
        out.append("")
        out.append("(MiB; each process has loaded the model and encoded one image and one caption. The first "
                   "process's load time is in the line 'c_load_ms' of the raw results.)")
    if not siglip:
        out.extend(issue21(r, threads, refs, peak, flops))
    print("\n".join(out))


if __name__ == "__main__":
    main()
