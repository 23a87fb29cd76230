#!/usr/bin/env python3
"""The Python peer for the detector's forward speed: the same CenterNet as attnvision's
(models/heads/centernet.cpp) on a torchvision ResNet trunk, written plainly in PyTorch, random init. Prints one
JSON line: images_per_s and the settings it ran with.

    /usr/bin/python3 benchmarks/py_detect_peer.py --arch resnet18 --size 128 --batch 32 --iters 10 \
        --threads 2 [--channels-last] [--fold] [--jit] [--second-stage --crops-per-image 10]

--second-stage also runs what `attnvision detect` does after the network, as `attnvision bench --second-stage`
times it: the peaks decoded (3x3 max pooling, top 100), the --crops-per-image strongest of each image cut as
models/box_crops.cpp cuts them (the square of the box's longer side x 1.15, sampled bilinearly at twice the
crop size with edges replicated, then averaged 2 x 2), classified by the crop classifier of
configs/train/scenes_crop_classifier.yaml (a CIFAR-stem ResNet, one basic block with ECA per stage,
16/32/64/128), and each score replaced by sqrt(score x p(class)), rows sorted.

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

from py_box_crops import square_crops
from py_train_peer import EcaModule  # timm's ECA, as the training peer writes it


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


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.se = EcaModule(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class CropClassifier(nn.Module):
    """configs/train/scenes_crop_classifier.yaml's network: CIFAR stem, stages 16/32/64/128 at strides 1/2/2/2."""

    def __init__(self, classes, channels=(16, 32, 64, 128)):
        super().__init__()
        self.stem = conv_bn_relu(3, channels[0], 3)
        blocks, cin = [], channels[0]
        for i, c in enumerate(channels):
            blocks.append(BasicBlock(cin, c, 1 if i == 0 else 2))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


def decode(heat, size, offset, stride, top):
    """models::centernet_decode: N x top x 6 rows [x, y, w, h, score, class], by descending score."""
    n, c, h, w = heat.shape
    heat = heat.sigmoid()
    heat = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    score, index = heat.reshape(n, -1).topk(top)
    cls, cell = index // (h * w), index % (h * w)
    gather = lambda t: t.reshape(n, 2, -1).gather(2, cell.unsqueeze(1).expand(-1, 2, -1))
    off, wh = gather(offset), gather(size).clamp_min(0) * stride
    cx = ((cell % w).float() + off[:, 0]) * stride
    cy = ((cell // w).float() + off[:, 1]) * stride
    return torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, wh[:, 0], wh[:, 1], score, cls.float()], 2)


def second_stage(classifier, outputs, x, crops, stride, channels_last, crop_size=32):
    peaks = decode(*outputs, stride, 100)[:, :crops]
    n, k = peaks.shape[:2]
    cut = square_crops(x, peaks[..., :4], crop_size)
    if channels_last:
        cut = cut.contiguous(memory_format=torch.channels_last)
    p = classifier(cut).softmax(1)
    p = p.gather(1, peaks[..., 5].reshape(-1, 1).long()).view(n, k)
    peaks = peaks.clone()
    peaks[..., 4] = (peaks[..., 4] * p).sqrt()
    return peaks.gather(1, peaks[..., 4].argsort(1, descending=True).unsqueeze(2).expand(-1, -1, 6))


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
    ap.add_argument("--second-stage", action="store_true")
    ap.add_argument("--crops-per-image", type=int, default=10)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    crop = torch.randn(args.batch * args.crops_per_image, 3, 32, 32)

    def prepared(model, example):
        """The model as the flags ask: BatchNorm folded, channels-last, TorchScript-optimized."""
        if args.fold:
            from torch.fx.experimental.optimization import fuse
            model = fuse(model)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
            example = example.contiguous(memory_format=torch.channels_last)
        if args.jit:
            with torch.no_grad():
                model = torch.jit.optimize_for_inference(torch.jit.trace(model, example))
        return model

    model = prepared(CenterNet(args.arch, args.classes, args.width).eval(), x)
    classifier = prepared(CropClassifier(args.classes).eval(), crop) if args.second_stage else None
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    stride = 4  # the head's output stride: three 2x steps up from the trunk's 32

    def run():
        outputs = model(x)
        if classifier is not None:
            second_stage(classifier, outputs, x, args.crops_per_image, stride, args.channels_last)

    with torch.inference_mode():
        for _ in range(args.warmup):
            run()
        start = time.perf_counter()
        for _ in range(args.iters):
            run()
        seconds = time.perf_counter() - start
    print(json.dumps({"images_per_s": args.batch * args.iters / seconds, "arch": args.arch, "size": args.size,
                      "batch": args.batch, "threads": torch.get_num_threads(),
                      "channels_last": args.channels_last, "fold": args.fold, "jit": args.jit,
                      "second_stage": args.second_stage, "crops_per_image": args.crops_per_image if args.second_stage else 0,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
