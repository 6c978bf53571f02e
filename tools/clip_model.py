#!/usr/bin/python3
# clip_model.py - a compact PyTorch CLIP (pre-LN transformers) with Hugging Face CLIPModel tensor names.
#
# The module tree mirrors transformers' CLIPModel so that state_dict() keys are exactly the names that
# CLIPModel.save_pretrained writes; save_model()/load_model() read and write that directory layout
# (config.json, model.safetensors, preprocessor_config.json) with a small safetensors writer of our own.
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def activation(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    raise ValueError("unsupported hidden_act %r" % name)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, d = x.shape
        h = self.heads
        hd = d // h
        q = self.q_proj(x).view(b, n, h, hd).transpose(1, 2) * (hd ** -0.5)
        k = self.k_proj(x).view(b, n, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, hd).transpose(1, 2)
        att = q @ k.transpose(-1, -2)
        if mask is not None:
            att = att + mask
        att = att.softmax(dim=-1)
        out = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out)


class MLP(nn.Module):
    def __init__(self, dim, inner, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, inner)
        self.fc2 = nn.Linear(inner, dim)
        self.act = activation(act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.layer_norm1 = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.self_attn = Attention(d, cfg["num_attention_heads"])
        self.layer_norm2 = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.mlp = MLP(d, cfg["intermediate_size"], cfg["hidden_act"])

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.ModuleList([Layer(cfg) for _ in range(cfg["num_hidden_layers"])])

    def forward(self, x, mask=None):
        for layer in self.layers:
            x = layer(x, mask)
        return x


class TextEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.token_embedding = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], cfg["hidden_size"])


class TextTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embeddings = TextEmbeddings(cfg)
        self.encoder = Encoder(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg["hidden_size"], eps=cfg["layer_norm_eps"])

    def forward(self, ids):
        n = ids.shape[1]
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[:n]
        mask = torch.full((n, n), float("-inf"), device=ids.device).triu(1)
        x = self.final_layer_norm(self.encoder(x, mask))
        # Pool at the first end-of-text token, as CLIPTextTransformer does for a real eos id.
        eos_pos = (ids == self.cfg["eos_token_id"]).int().argmax(dim=-1)
        return x[torch.arange(ids.shape[0], device=ids.device), eos_pos]


class VisionEmbeddings(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        p = cfg["patch_size"]
        n = (cfg["image_size"] // p) ** 2 + 1
        self.class_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.patch_embedding = nn.Conv2d(cfg["num_channels"], d, p, stride=p, bias=False)
        self.position_embedding = nn.Embedding(n, d)


class VisionTransformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.embeddings = VisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])  # sic: HF's name
        self.encoder = Encoder(cfg)
        self.post_layernorm = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])

    def forward(self, pixels):
        x = self.embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.embeddings.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.embeddings.position_embedding.weight
        x = self.encoder(self.pre_layrnorm(x))
        return self.post_layernorm(x[:, 0])


class CLIP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.text_model = TextTransformer(config["text_config"])
        self.vision_model = VisionTransformer(config["vision_config"])
        p = config["projection_dim"]
        self.text_projection = nn.Linear(config["text_config"]["hidden_size"], p, bias=False)
        self.visual_projection = nn.Linear(config["vision_config"]["hidden_size"], p, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config["logit_scale_init_value"])))
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def encode_text(self, ids):
        """Raw (unnormalised) text_embeds, as CLIPModel.get_text_features returns."""
        return self.text_projection(self.text_model(ids))

    def encode_image(self, pixels):
        return self.visual_projection(self.vision_model(pixels))


def make_config(vocab_size, bos, eos, text_width=256, text_layers=4, text_heads=4, text_positions=32,
                image_size=64, patch=8, vision_width=256, vision_layers=6, vision_heads=4, projection=256,
                act="quick_gelu"):
    text = {"attention_dropout": 0.0, "bos_token_id": bos, "eos_token_id": eos, "hidden_act": act,
            "hidden_size": text_width, "initializer_factor": 1.0, "initializer_range": 0.02,
            "intermediate_size": 4 * text_width, "layer_norm_eps": 1e-05,
            "max_position_embeddings": text_positions, "model_type": "clip_text_model",
            "num_attention_heads": text_heads, "num_hidden_layers": text_layers, "pad_token_id": eos,
            "projection_dim": projection, "vocab_size": vocab_size}
    vision = {"attention_dropout": 0.0, "hidden_act": act, "hidden_size": vision_width,
              "image_size": image_size, "initializer_factor": 1.0, "initializer_range": 0.02,
              "intermediate_size": 4 * vision_width, "layer_norm_eps": 1e-05,
              "model_type": "clip_vision_model", "num_attention_heads": vision_heads, "num_channels": 3,
              "num_hidden_layers": vision_layers, "patch_size": patch, "projection_dim": projection}
    return {"architectures": ["CLIPModel"], "dtype": "float32", "initializer_factor": 1.0,
            "logit_scale_init_value": 2.6592, "model_type": "clip", "projection_dim": projection,
            "text_config": text, "vision_config": vision}


def preprocessor_config(image_size):
    return {"do_resize": True, "size": {"shortest_edge": image_size}, "resample": 3,
            "do_center_crop": True, "crop_size": {"height": image_size, "width": image_size},
            "do_rescale": True, "rescale_factor": 1.0 / 255.0, "do_normalize": True,
            "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
            "image_processor_type": "CLIPImageProcessor"}


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name].detach().cpu().float().numpy().astype("<f4"))
        data = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": "<f4", "F16": "<f2"}[meta["dtype"]]
        a, b = meta["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=dt).reshape(meta["shape"]).astype(np.float32)
        out[name] = torch.from_numpy(arr.copy())
    return out


def save_model(model, folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(model.config, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(model.config["vision_config"]["image_size"]), f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(folder, "model.safetensors"), model.state_dict())


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    model = CLIP(config)
    model.load_state_dict(read_safetensors(os.path.join(folder, "model.safetensors")))
    return model.eval()


def pixels_from_rgb(rgb_uint8):
    """[N,H,W,3] uint8 (already at the model size) -> normalised [N,3,H,W] float32, like CLIPImageProcessor."""
    x = torch.from_numpy(np.asarray(rgb_uint8)).float().permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_preprocess(image, size):
    """A PIL image -> [3,size,size] float32 exactly as CLIPImageProcessor (PIL backend) computes it."""
    from PIL import Image
    im = image.convert("RGB")
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    return pixels_from_rgb(np.asarray(im)[None])[0]


def check_golden():
    """Our forward against the golden HF embeddings (text from token ids, images from pixel_values)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "golden")
    with open(os.path.join(root, "expected.json")) as f:
        exp = json.load(f)
    pix = read_safetensors(os.path.join(root, "pixel_values.safetensors"))
    worst = 1.0
    for name, m in exp["models"].items():
        model = load_model(os.path.join(root, name))
        with torch.no_grad():
            for ids, want in zip(m["token_ids"]["CLIPTokenizer"], m["text_embeds"]):
                got = model.encode_text(torch.tensor([ids]))[0]
                worst = min(worst, F.cosine_similarity(got, torch.tensor(want), dim=0).item())
            for img, want in m["image_embeds"].items():
                got = model.encode_image(pix[name + "/" + img][None])[0]
                worst = min(worst, F.cosine_similarity(got, torch.tensor(want), dim=0).item())
        ls = math.exp(model.logit_scale.item())
        print("%s: logit_scale %.5f (want %.5f)" % (name, ls, m["logit_scale"]))
    print("worst cosine against golden embeddings: %.7f" % worst)
    return worst > 0.99999


if __name__ == "__main__":
    import sys
    sys.exit(0 if check_golden() else 1)
