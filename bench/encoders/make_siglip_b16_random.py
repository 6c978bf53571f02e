#!/usr/bin/python3
# make_siglip_b16_random.py: write a random-weight SigLIP model with exactly google/siglip-base-patch16-224's
# shapes, for the encoder benchmark (run.sh with MODEL_KIND=siglip).
#
# The directory has SiglipModel.save_pretrained's layout and tensor names (config.json with model_type siglip,
# model.safetensors in float32, preprocessor_config.json of SiglipImageProcessor: 224 x 224, no crop, mean and
# std 0.5), so the runtime loads it as it would the real checkpoint. The tokenizer is test/golden2's 1,800-piece
# spiece.model (vocab_size stays 32000). Weights use make_vitb32_random.py's writer and scales; the attention-
# pooling head's probe and fused in_proj are drawn like any other weight.
#
# usage: /usr/bin/python3 bench/encoders/make_siglip_b16_random.py [OUT_DIR] [--seed N]
import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_vitb32_random import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN2 = os.path.join(ROOT, "test", "golden2", "tiny-siglip")

# google/siglip-base-patch16-224
TEXT = dict(vocab_size=32000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=64)
VISION = dict(image_size=224, patch_size=16, hidden_size=768, intermediate_size=3072,
              num_hidden_layers=12, num_attention_heads=12, num_channels=3)


def make_config():
    common = dict(hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-06, attention_dropout=0.0)
    text = dict(common, model_type="siglip_text_model", projection_size=TEXT["hidden_size"],
                pad_token_id=1, eos_token_id=1, bos_token_id=49406, **TEXT)
    vision = dict(common, model_type="siglip_vision_model", **VISION)
    return {"architectures": ["SiglipModel"], "model_type": "siglip", "initializer_factor": 1.0,
            "text_config": text, "vision_config": vision}


def tensor_specs():
    specs = [("logit_scale", (1,), "logit_scale"), ("logit_bias", (1,), "b")]

    def encoder(prefix, d, f, n):
        for i in range(n):
            p = f"{prefix}.encoder.layers.{i}."
            for ln in ("layer_norm1", "layer_norm2"):
                specs.extend([(p + ln + ".weight", (d,), "ln_w"), (p + ln + ".bias", (d,), "ln_b")])
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                specs.extend([(p + f"self_attn.{proj}.weight", (d, d), "w"), (p + f"self_attn.{proj}.bias", (d,), "b")])
            specs.extend([(p + "mlp.fc1.weight", (f, d), "w"), (p + "mlp.fc1.bias", (f,), "b"),
                          (p + "mlp.fc2.weight", (d, f), "w"), (p + "mlp.fc2.bias", (d,), "b")])

    dt, ft = TEXT["hidden_size"], TEXT["intermediate_size"]
    specs.append(("text_model.embeddings.token_embedding.weight", (TEXT["vocab_size"], dt), "w"))
    specs.append(("text_model.embeddings.position_embedding.weight", (TEXT["max_position_embeddings"], dt), "pos"))
    encoder("text_model", dt, ft, TEXT["num_hidden_layers"])
    specs.extend([("text_model.final_layer_norm.weight", (dt,), "ln_w"),
                  ("text_model.final_layer_norm.bias", (dt,), "ln_b"),
                  ("text_model.head.weight", (dt, dt), "w"), ("text_model.head.bias", (dt,), "b")])

    dv, fv, ps = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    n_pos = (VISION["image_size"] // ps) ** 2
    specs.extend([("vision_model.embeddings.patch_embedding.weight", (dv, 3, ps, ps), "w"),
                  ("vision_model.embeddings.patch_embedding.bias", (dv,), "b"),
                  ("vision_model.embeddings.position_embedding.weight", (n_pos, dv), "pos")])
    encoder("vision_model", dv, fv, VISION["num_hidden_layers"])
    specs.extend([("vision_model.post_layernorm.weight", (dv,), "ln_w"),
                  ("vision_model.post_layernorm.bias", (dv,), "ln_b"),
                  ("vision_model.head.probe", (1, 1, dv), "w"),
                  ("vision_model.head.attention.in_proj_weight", (3 * dv, dv), "w"),
                  ("vision_model.head.attention.in_proj_bias", (3 * dv,), "b"),
                  ("vision_model.head.attention.out_proj.weight", (dv, dv), "w"),
                  ("vision_model.head.attention.out_proj.bias", (dv,), "b"),
                  ("vision_model.head.layernorm.weight", (dv,), "ln_w"),
                  ("vision_model.head.layernorm.bias", (dv,), "ln_b"),
                  ("vision_model.head.mlp.fc1.weight", (fv, dv), "w"),
                  ("vision_model.head.mlp.fc1.bias", (fv,), "b"),
                  ("vision_model.head.mlp.fc2.weight", (dv, fv), "w"),
                  ("vision_model.head.mlp.fc2.bias", (dv,), "b")])
    return specs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", nargs="?", default=os.path.join(HERE, "work", "siglip-b16-224-random"))
    ap.add_argument("--seed", type=int, default=20240602)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in ("spiece.model", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(GOLDEN2, name), os.path.join(args.out_dir, name))
    with open(os.path.join(args.out_dir, "preprocessor_config.json"), encoding="utf-8") as f:
        pp = json.load(f)
    pp["size"] = {"height": VISION["image_size"], "width": VISION["image_size"]}
    with open(os.path.join(args.out_dir, "preprocessor_config.json"), "w", encoding="utf-8") as f:
        json.dump(pp, f, indent=2)
    specs = tensor_specs()
    size = write_safetensors(os.path.join(args.out_dir, "model.safetensors"), specs, args.seed)
    with open(os.path.join(args.out_dir, "config.json"), "w", encoding="utf-8") as f:   # last: marks completion
        json.dump(make_config(), f, indent=2, sort_keys=True)
        f.write("\n")
    n_params = sum(int(np.prod(s, dtype=np.int64)) for _, s, _ in specs)
    print(f"wrote {args.out_dir}: {len(specs)} tensors, {n_params} parameters, {size} bytes, seed {args.seed}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
