"""References for tests/models/test_vit.cpp, from an implementation independent of the C++ code.

Loads the vit_custom_p4_d64 parity fixture (timm VisionTransformer(img 32, patch 4, dim 64, depth 2,
heads 2, 10 classes)), runs it with a functional ViT written here from timm's definition (checked against the
fixture's timm outputs before anything is written), and stores:
  rollout_{mean,max,min}   attention rollout (Abnar & Zuidema 2020) of the fixture input, 2 x 8 x 8
  grad_rollout_cls3        gradient-weighted rollout (Chefer et al. 2021 style) for class 3, 2 x 8 x 8
  pos_embed_{12x12,6x10}_aa{0,1}  the fixture's pos_embed resampled as timm's resample_abs_pos_embed does
                           (class position kept, bicubic grid, align_corners False, antialias off/on)
  logits_48, tokens_cls_48 the model on the fixture input bilinearly resized to 48 x 48, position grid
                           resampled as timm v1.0.28's VisionTransformer does at a new size (antialias on)
Everything is computed in float64.

Run from anywhere:  /usr/bin/python3 tests/data/vit/make_rollout_ref.py [--fixtures DIR]
(DIR defaults to <repo>/../shared/fixtures/parity, as CMake's ATTNVISION_SHARED_DIR does.)
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))


def resample_pos_embed(pos, new_hw, antialias):
    """Class position kept; the square grid part resampled bicubically to new_hw."""
    old = int(math.isqrt(pos.shape[1] - 1))
    dim = pos.shape[2]
    grid = pos[:, 1:].reshape(1, old, old, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_hw, mode="bicubic", align_corners=False, antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_hw[0] * new_hw[1], dim)
    return torch.cat([pos[:, :1], grid], dim=1)


def vit_forward(sd, x, heads, keep_attn=False):
    """timm VisionTransformer defaults: returns (logits, tokens after the final norm, [attention probs])."""
    w = sd["patch_embed.proj.weight"]
    patch = w.shape[-1]
    t = F.conv2d(x, w, sd["patch_embed.proj.bias"], stride=patch)
    n, dim, gh, gw = t.shape
    t = t.flatten(2).transpose(1, 2)
    pos = sd["pos_embed"]
    if pos.shape[1] != 1 + gh * gw or gh != gw:
        pos = resample_pos_embed(pos, (gh, gw), antialias=True)
    t = torch.cat([sd["cls_token"].expand(n, -1, -1), t], dim=1) + pos
    tokens = t.shape[1]
    hd = dim // heads
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    attns = []
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(t, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(n, tokens, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        if keep_attn:
            if a.requires_grad:
                a.retain_grad()
            attns.append(a)
        o = (a @ v).transpose(1, 2).reshape(n, tokens, dim)
        t = t + F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(t, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                     sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        t = t + h
    t = F.layer_norm(t, (dim,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    logits = F.linear(t[:, 0], sd["head.weight"], sd["head.bias"])
    return logits, t, attns, (gh, gw)


def rollout(mats, grid):
    """mats: per layer n x T x T (heads fused). Residual identity, row normalisation, product, cls row."""
    n, tokens, _ = mats[0].shape
    eye = torch.eye(tokens, dtype=mats[0].dtype)
    joint = eye.repeat(n, 1, 1)
    for a in mats:
        a = a + eye
        a = a / a.sum(dim=-1, keepdim=True)
        joint = a @ joint
    maps = joint[:, 0, 1:].reshape(n, *grid)
    lo = maps.flatten(1).min(dim=1).values.view(n, 1, 1)
    hi = maps.flatten(1).max(dim=1).values.view(n, 1, 1)
    return (maps - lo) / (hi - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(REPO, "..", "shared", "fixtures", "parity"))
    ap.add_argument("--out", default=os.path.join(HERE, "rollout_ref.safetensors"))
    args = ap.parse_args()
    sys.path.insert(0, args.fixtures)
    import safetensors_io  # noqa: E402  (the fixtures' own reader/writer)

    fixture = os.path.join(args.fixtures, "public", "vit_custom_p4_d64")
    weights, _ = safetensors_io.load_file(os.path.join(fixture, "weights.safetensors"))
    inputs, _ = safetensors_io.load_file(os.path.join(fixture, "input.safetensors"))
    expected, _ = safetensors_io.load_file(os.path.join(fixture, "expected.safetensors"))
    heads = 2
    sd = {k: v.double() for k, v in weights.items()}
    x = inputs["input"].double()

    # The functional model must reproduce timm's own outputs before it may serve as a reference.
    logits, tokens, _, _ = vit_forward(sd, x, heads)
    for name, got in (("logits", logits), ("tokens", tokens)):
        diff = (got.float() - expected[name]).abs().max().item()
        assert diff < 1e-5, f"{name}: functional ViT differs from timm by {diff}"

    out = {}
    with torch.no_grad():
        _, _, attns, grid = vit_forward(sd, x, heads, keep_attn=True)
    out["rollout_mean"] = rollout([a.mean(dim=1) for a in attns], grid)
    out["rollout_max"] = rollout([a.amax(dim=1) for a in attns], grid)
    out["rollout_min"] = rollout([a.amin(dim=1) for a in attns], grid)

    xg = x.clone().requires_grad_(True)  # so that every attention matrix is part of the graph
    logits, _, attns, grid = vit_forward(sd, xg, heads, keep_attn=True)
    logits[:, 3].sum().backward()
    out["grad_rollout_cls3"] = rollout([(a.grad * a.detach()).clamp(min=0).mean(dim=1) for a in attns], grid)

    for hw in ((12, 12), (6, 10)):
        for aa in (False, True):
            out[f"pos_embed_{hw[0]}x{hw[1]}_aa{int(aa)}"] = resample_pos_embed(sd["pos_embed"], hw, aa)

    x48 = F.interpolate(inputs["input"], size=(48, 48), mode="bilinear", align_corners=False).double()
    with torch.no_grad():
        logits48, tokens48, _, grid48 = vit_forward(sd, x48, heads)
    assert grid48 == (12, 12)
    out["logits_48"] = logits48
    out["tokens_cls_48"] = tokens48[:, 0]

    out = {k: v.detach().float().contiguous() for k, v in out.items()}
    safetensors_io.save_file(out, args.out, metadata={"source": "tests/data/vit/make_rollout_ref.py",
                                                      "fixture": "vit_custom_p4_d64"})
    for k, v in sorted(out.items()):
        print(k, tuple(v.shape))


if __name__ == "__main__":
    main()
