#!/usr/bin/python3
"""The Python peer of `attnvision bench`: the same architecture with the same weights, forward only, in plain
PyTorch, at every thread plan, layout and inference preparation PyTorch offers for the CPU, reporting its best.

    /usr/bin/python3 benchmarks/py_forward_peer.py --model resnet50 --write-weights W.safetensors
    /usr/bin/python3 benchmarks/py_forward_peer.py --model resnet50 --weights W.safetensors --batch 16 \
        [--precision fp32|bf16] [--iters 3] [--warmup 1] [--plans all|T,B,LAYOUT]

--write-weights makes the model with a fixed seed (the ResNets with timm's init, then BatchNorm statistics and
affines drawn at random so no branch is switched off; the ViT with PyTorch's default Linear init) and saves its state dict under timm's names: `attnvision bench --model NAME
--weights W.safetensors` loads the same file, checking every tensor's name and shape against its own
architecture, so both sides run one network.

Models (timm's definitions, attnvision's models/registry.cpp names):
  resnet50, seresnet50, cbam_resnet50   the ResNet of benchmarks/py_train_peer.py (timm's module names, SE / CBAM
                                        as models/layers/), Bottleneck 3-4-6-3, 7x7 stem, 1000 classes
  vit_tiny/small/base_patch16_224       a timm-style VisionTransformer written here: patch conv, class token,
                                        position embedding, pre-norm blocks (qkv Linear, softmax(q k^T / sqrt(d)) v,
                                        proj; LayerNorm eps 1e-6; fc1, exact GELU, fc2), final norm, head on the
                                        class token. (torchvision's ViT measured no faster in fp32 here and its
                                        fused attention refuses bfloat16 autocast in torch 1.13.)
Timing: torch.inference_mode(), a random N x 3 x 224 x 224 batch; bf16 runs under
torch.autocast("cpu", dtype=torch.bfloat16), as attnvision's --precision bf16 does. Plans: torch threads 1 and 2
with OpenBLAS (which runs Debian torch's fp32 Linear/matmul; torch.set_num_threads does not reach it) at 2, and
torch 2 with OpenBLAS 1; each in NCHW and, for the CNNs, channels-last (model and input). In fp32, with torch on
2 threads (OpenBLAS 1 and 2), also the model prepared for inference the ways PyTorch provides:
  folded-cl  BatchNorms folded into the convolutions (torch.fx.experimental.optimization.fuse), channels-last (CNNs)
  mkldnn     torch.utils.mkldnn.to_mkldnn: convolution and Linear weights packed once for oneDNN, the CNNs folded
             first and run on MKLDNN tensors (a model with ops oneDNN lacks fails and is reported so)
  jit        torch.jit.optimize_for_inference(torch.jit.trace(model)): frozen, conv-BN folded, weights prepacked
A plan that fails is listed with its error and left out of the best. Run it with the
allocator tuned (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_, as benchmarks/inference_vs_peer.py does).
Prints one JSON line: the best plan's images/s and every plan's figure.
"""
import argparse
import copy
import ctypes
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checkpoint_io import read_safetensors, save_safetensors  # noqa: E402
from py_train_peer import ResNet  # noqa: E402

RESNETS = {"resnet50": "none", "seresnet50": "se", "cbam_resnet50": "cbam"}
VITS = {"vit_tiny_patch16_224": (192, 3), "vit_small_patch16_224": (384, 6), "vit_base_patch16_224": (768, 12)}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, dim, heads, depth=12, patch=16, size=224, classes=1000):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(0, 1e-6))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + (size // patch) ** 2, dim).normal_(0, 0.02))
        self.patch_embed = PatchEmbed(dim, patch)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def build(name):
    if name in RESNETS:
        cfg = {"in_chans": 3, "num_classes": 1000,
               "resnet": {"block": "bottleneck", "layers": [3, 4, 6, 3], "channels": [64, 128, 256, 512],
                          "stem_type": "", "attn": RESNETS[name]}}
        return ResNet(cfg)
    if name in VITS:
        return VisionTransformer(*VITS[name])
    sys.exit(f"py_forward_peer: unknown model '{name}' (known: {', '.join(list(RESNETS) + list(VITS))})")


def randomise_norms(model):
    """BatchNorm statistics and affines at random (timm zeroes each block's last BN scale, which would turn every
    residual branch off and make the network trivially cheap to get right)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def load(model, path):
    model.load_state_dict(read_safetensors(path)[0], strict=True)


def set_threads(torch_threads, blas_threads):
    torch.set_num_threads(torch_threads)
    try:
        ctypes.CDLL("libblas.so.3").openblas_set_num_threads(blas_threads)
    except (OSError, AttributeError):
        pass


def prepared(model, x, layout, cnn):
    """(callable, input) for one layout; the model itself is left as it is."""
    if layout in ("nchw", "cl"):
        fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
        return model.to(memory_format=fmt), x.contiguous(memory_format=fmt)
    from torch.fx.experimental.optimization import fuse
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        if layout == "folded-cl":
            return fuse(m).to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        if layout == "mkldnn":
            from torch.utils import mkldnn
            mm = mkldnn.to_mkldnn(fuse(m) if cnn else m)
            if cnn:
                return (lambda inp: mm(inp.to_mkldnn()).to_dense()), x
            return mm, x
        if layout == "jit":
            return torch.jit.optimize_for_inference(torch.jit.trace(m, x)), x
    raise ValueError(f"unknown layout '{layout}'")


def time_forward(model, x, precision, iters, warmup):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for _ in range(warmup):
            model(x)
        t0 = time.perf_counter()
        for _ in range(iters):
            model(x)
        return x.size(0) * iters / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--weights", help="safetensors written by --write-weights")
    ap.add_argument("--write-weights", help="make the model (seed 0) and save its weights here, then exit")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--plans", default="all",
                    help="'all', or one plan as TORCH_THREADS,BLAS_THREADS,nchw|cl|folded-cl|mkldnn|jit")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = build(args.model).eval()
    if args.write_weights:
        randomise_norms(model)
        save_safetensors(args.write_weights, model.state_dict())
        return
    if not args.weights:
        sys.exit("py_forward_peer: --weights (or --write-weights) is required")
    load(model, args.weights)

    cnn = args.model in RESNETS
    if args.plans == "all":
        plans = [(t, b, layout) for t, b in ((1, 2), (2, 2), (2, 1)) for layout in (("nchw", "cl") if cnn else ("nchw",))]
        if args.precision == "fp32":
            plans += [(2, b, layout) for b in (1, 2) for layout in (("folded-cl", "mkldnn", "jit") if cnn else ("mkldnn", "jit"))]
    else:
        t, b, layout = args.plans.split(",")
        plans = [(int(t), int(b), layout)]
    x = torch.randn(args.batch, 3, 224, 224)
    results = []
    for t, b, layout in plans:
        set_threads(t, b)
        plan = {"torch_threads": t, "blas_threads": b, "layout": layout}
        try:
            m, xin = prepared(model, x, layout, cnn)
            plan["images_per_s"] = time_forward(m, xin, args.precision, args.iters, args.warmup)
        except Exception as e:  # noqa: BLE001 -- an unsupported preparation is a result, not a crash
            plan["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        results.append(plan)
    timed = [r for r in results if "images_per_s" in r]
    if not timed:
        sys.exit(f"py_forward_peer: every plan failed: {results}")
    best = max(timed, key=lambda r: r["images_per_s"])
    print(json.dumps({"model": args.model, "batch": args.batch, "precision": args.precision,
                      "images_per_s": best["images_per_s"], "best_plan": best, "plans": results,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
