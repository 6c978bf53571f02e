#!/usr/bin/python3
# report.py: turn the "RESULT key value" lines of one benchmark run into the results table (Markdown).
#
# usage: /usr/bin/python3 bench/encoders/report.py RESULTS_FILE
import sys


def load(path):
    r = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("RESULT "):
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) != 3:
                    continue
                key, value = parts[1], parts[2]
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
    sides = [("C", "c")] + [(name, prefix) for name, prefix in
                            (("PyTorch", "torch"), ("PyTorch tuned env", "torchtuned"))
                            if any(k.startswith(prefix + "_image") for k in r)]
    refs = [prefix for _, prefix in sides[1:]]
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
    print("\n".join(out))


if __name__ == "__main__":
    main()
