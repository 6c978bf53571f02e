#!/usr/bin/python3
# make_vitb32_random.py: write a random-weight CLIP model with exactly openai/clip-vit-base-patch32's shapes.
#
# The model directory has the Hugging Face layout (config.json, model.safetensors in float32, vocab.json,
# merges.txt, tokenizer_config.json, preprocessor_config.json) and the tensor names of transformers' CLIPModel,
# so the runtime loads it exactly as it would load the real checkpoint. Weights are drawn from a fixed seed at
# scales that keep activations finite through 12 layers (normal, std 0.02; layer-norm gains 1 +/- noise).
# The tokenizer files are the golden test vocabulary (2,014 tokens); vocab_size stays 49408 as in the real
# model, and bos/eos are that vocabulary's own special-token ids, so every produced id is a valid row.
#
# usage: /usr/bin/python3 bench/encoders/make_vitb32_random.py [OUT_DIR] [--seed N]
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, "test", "golden", "tiny-clip-quickgelu-f32")

# openai/clip-vit-base-patch32
TEXT = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
            num_attention_heads=8, max_position_embeddings=77)
VISION = dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
              num_hidden_layers=12, num_attention_heads=12, num_channels=3)
PROJECTION_DIM = 512


def special_ids():
    with open(os.path.join(GOLDEN, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    return vocab["<|startoftext|>"], vocab["<|endoftext|>"], len(vocab)


def make_config(bos, eos):
    text = {
        "attention_dropout": 0.0, "bos_token_id": bos, "eos_token_id": eos, "hidden_act": "quick_gelu",
        "hidden_size": TEXT["hidden_size"], "initializer_factor": 1.0, "initializer_range": 0.02,
        "intermediate_size": TEXT["intermediate_size"], "layer_norm_eps": 1e-05,
        "max_position_embeddings": TEXT["max_position_embeddings"], "model_type": "clip_text_model",
        "num_attention_heads": TEXT["num_attention_heads"], "num_hidden_layers": TEXT["num_hidden_layers"],
        "pad_token_id": eos, "projection_dim": PROJECTION_DIM, "vocab_size": TEXT["vocab_size"],
    }
    vision = {
        "attention_dropout": 0.0, "hidden_act": "quick_gelu", "hidden_size": VISION["hidden_size"],
        "image_size": VISION["image_size"], "initializer_factor": 1.0, "initializer_range": 0.02,
        "intermediate_size": VISION["intermediate_size"], "layer_norm_eps": 1e-05,
        "model_type": "clip_vision_model", "num_attention_heads": VISION["num_attention_heads"],
        "num_channels": VISION["num_channels"], "num_hidden_layers": VISION["num_hidden_layers"],
        "patch_size": VISION["patch_size"], "projection_dim": PROJECTION_DIM,
    }
    return {
        "architectures": ["CLIPModel"], "dtype": "float32", "initializer_factor": 1.0,
        "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": PROJECTION_DIM,
        "text_config": text, "vision_config": vision,
    }


def tensor_specs():
    """(name, shape, kind) for every tensor of CLIPModel, in the order it is written."""
    specs = [("logit_scale", (), "logit_scale")]

    def encoder(prefix, d, f, n):
        for i in range(n):
            p = f"{prefix}.encoder.layers.{i}."
            specs.extend([
                (p + "layer_norm1.weight", (d,), "ln_w"), (p + "layer_norm1.bias", (d,), "ln_b"),
                (p + "self_attn.q_proj.weight", (d, d), "w"), (p + "self_attn.q_proj.bias", (d,), "b"),
                (p + "self_attn.k_proj.weight", (d, d), "w"), (p + "self_attn.k_proj.bias", (d,), "b"),
                (p + "self_attn.v_proj.weight", (d, d), "w"), (p + "self_attn.v_proj.bias", (d,), "b"),
                (p + "self_attn.out_proj.weight", (d, d), "w"), (p + "self_attn.out_proj.bias", (d,), "b"),
                (p + "layer_norm2.weight", (d,), "ln_w"), (p + "layer_norm2.bias", (d,), "ln_b"),
                (p + "mlp.fc1.weight", (f, d), "w"), (p + "mlp.fc1.bias", (f,), "b"),
                (p + "mlp.fc2.weight", (d, f), "w"), (p + "mlp.fc2.bias", (d,), "b"),
            ])

    dt, ft = TEXT["hidden_size"], TEXT["intermediate_size"]
    specs.append(("text_model.embeddings.token_embedding.weight", (TEXT["vocab_size"], dt), "w"))
    specs.append(("text_model.embeddings.position_embedding.weight", (TEXT["max_position_embeddings"], dt), "pos"))
    encoder("text_model", dt, ft, TEXT["num_hidden_layers"])
    specs.append(("text_model.final_layer_norm.weight", (dt,), "ln_w"))
    specs.append(("text_model.final_layer_norm.bias", (dt,), "ln_b"))

    dv, fv, ps = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    n_pos = (VISION["image_size"] // ps) ** 2 + 1
    specs.append(("vision_model.embeddings.class_embedding", (dv,), "w"))
    specs.append(("vision_model.embeddings.patch_embedding.weight", (dv, VISION["num_channels"], ps, ps), "w"))
    specs.append(("vision_model.embeddings.position_embedding.weight", (n_pos, dv), "pos"))
    specs.append(("vision_model.pre_layrnorm.weight", (dv,), "ln_w"))
    specs.append(("vision_model.pre_layrnorm.bias", (dv,), "ln_b"))
    encoder("vision_model", dv, fv, VISION["num_hidden_layers"])
    specs.append(("vision_model.post_layernorm.weight", (dv,), "ln_w"))
    specs.append(("vision_model.post_layernorm.bias", (dv,), "ln_b"))

    specs.append(("text_projection.weight", (PROJECTION_DIM, dt), "w"))
    specs.append(("visual_projection.weight", (PROJECTION_DIM, dv), "w"))
    return specs


def draw(rng, shape, kind):
    if kind == "logit_scale":
        return np.array(2.6592, dtype=np.float32)
    if kind == "ln_w":
        return (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "ln_b":
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "b":
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    if kind == "pos":
        return (0.01 * rng.standard_normal(shape)).astype(np.float32)
    return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32, copy=False)


def write_safetensors(path, specs, seed):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in specs:
        size = 4 * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)   # data starts 8-byte aligned, as the safetensors writer does
    rng = np.random.default_rng(seed)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, shape, kind in specs:   # one tensor at a time: peak memory is the largest tensor
            f.write(np.ascontiguousarray(draw(rng, shape, kind), dtype="<f4").tobytes())
    os.replace(tmp, path)
    return 8 + len(blob) + offset


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", nargs="?", default=os.path.join(HERE, "work", "clip-vit-b32-random"))
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()

    bos, eos, n_vocab = special_ids()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "preprocessor_config.json"):
        shutil.copyfile(os.path.join(GOLDEN, name), os.path.join(args.out_dir, name))
    specs = tensor_specs()
    size = write_safetensors(os.path.join(args.out_dir, "model.safetensors"), specs, args.seed)
    # config.json last: its presence marks a complete directory for run.sh
    with open(os.path.join(args.out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(make_config(bos, eos), f, indent=2, sort_keys=True)
        f.write("\n")
    n_params = sum(int(np.prod(s, dtype=np.int64)) for _, s, _ in specs)
    print(f"wrote {args.out_dir}: {len(specs)} tensors, {n_params} parameters, {size} bytes; "
          f"vocab {n_vocab} tokens (bos {bos}, eos {eos}), seed {args.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
