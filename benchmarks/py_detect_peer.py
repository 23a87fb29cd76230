#!/usr/bin/env python3
"""The Python peer for the detector's forward speed: the same CenterNet as attnvision's
(models/heads/centernet.cpp) on a torchvision ResNet trunk, written plainly in PyTorch, random init. Prints one
JSON line: images_per_s and the settings it ran with.

    /usr/bin/python3 benchmarks/py_detect_peer.py --arch resnet18 --size 128 --batch 32 --iters 10 \
        --threads 2 [--channels-last] [--fold] [--jit]

--channels-last: model and inputs in channels-last (PyTorch's CPU guide for CNNs); --fold: BatchNorms folded
into the convolutions (torch.fx.experimental.optimization.fuse), as attnvision prepares its networks; --jit:
torch.jit.optimize_for_inference on the traced model (frozen, conv-BN folded, weights prepacked for oneDNN).
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def conv_bn_relu(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


def branch(width, outputs, bias):
    last = nn.Conv2d(width, outputs, 1)
    nn.init.constant_(last.bias, bias)
    return nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(True), last)


class CenterNet(nn.Module):
    """ResNet trunk (stride 32) -> 1x1 reduce -> three 2x bilinear steps, each adding a 1x1 lateral of the stage
    at that stride (layer3, layer2, layer1) before a 3x3 conv -> heatmap, size and offset branches."""

    def __init__(self, arch, classes, width):
        super().__init__()
        r = getattr(torchvision.models, arch)(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layers = nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])
        chans = [m[-1].conv3.out_channels if hasattr(m[-1], "conv3") else m[-1].conv2.out_channels
                 for m in self.layers]
        self.reduce = conv_bn_relu(chans[3], width, 1)
        self.laterals = nn.ModuleList([conv_bn_relu(chans[i], width, 1) for i in (2, 1, 0)])
        self.ups = nn.ModuleList([conv_bn_relu(width, width, 3) for _ in range(3)])
        self.heatmap = branch(width, classes, -2.19)
        self.size = branch(width, 2, 0.0)
        self.offset = branch(width, 2, 0.0)

    def forward(self, x):
        x = self.stem(x)
        stages = []
        for layer in self.layers:
            x = layer(x)
            stages.append(x)
        y = self.reduce(stages[3])
        for lateral, up, stage in zip(self.laterals, self.ups, (stages[2], stages[1], stages[0])):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False) + lateral(stage)
            y = up(y)
        return self.heatmap(y), self.size(y), self.offset(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--fold", action="store_true")
    ap.add_argument("--jit", action="store_true")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CenterNet(args.arch, args.classes, args.width).eval()
    if args.fold:
        from torch.fx.experimental.optimization import fuse
        model = fuse(model)
    x = torch.randn(args.batch, 3, args.size, args.size)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if args.jit:
        with torch.no_grad():
            model = torch.jit.optimize_for_inference(torch.jit.trace(model, x))
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(x)
        start = time.perf_counter()
        for _ in range(args.iters):
            model(x)
        seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": args.batch * args.iters / seconds, "arch": args.arch, "size": args.size,
                      "batch": args.batch, "threads": torch.get_num_threads(),
                      "channels_last": args.channels_last, "fold": args.fold, "jit": args.jit,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
