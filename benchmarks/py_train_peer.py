#!/usr/bin/python3
"""Python peer of `attnvision train`: the same model, data, batch size, optimiser, schedule and loss in a plain
PyTorch training loop, timed the way attnvision times its epochs.

    /usr/bin/python3 benchmarks/py_train_peer.py --config RUN_DIR/config.json [--threads T] [--epochs E]
        [--limit N] [--batch-size B] [--steps S] [--warmup-steps W] [--check-weights RUN_DIR/last.safetensors]

--config is the resolved recipe `attnvision train` writes into its output folder (config.json). The peer takes
from it the model section, batch_size, optim, schedule, label_smoothing, clip_grad_norm, augment, precision,
data.limit and seed; --epochs / --limit / --batch-size override them. Needs only Debian's python3-torch, python3-torchvision
and python3-numpy (torch 1.13).

Model (model.arch):
  resnet  timm-style ResNet with attnvision's module names (models/resnet.cpp): stems 'cifar' (3x3 stride-1
          conv1 of stem_width channels, bn1, relu, no max-pool), '' (7x7/2 conv, max-pool) and 'deep*';
          BasicBlock or Bottleneck, stride 2 from stage 2 on (below feature_stride 32 the later stages dilate
          instead), 1x1 conv + BN downsample (or avg_down), the
          attention module `se` after the block's last BN: se / eca / cbam exactly as models/layers/attn_se.cpp,
          attn_eca.cpp, attn_cbam.cpp (same ops and widths), global average pool, fc. Init as timm.
  vit     torchvision.models.vision_transformer.VisionTransformer with the recipe's img_size, patch_size,
          embed_dim, depth, num_heads, mlp_ratio (mlp_dim = int(embed_dim * mlp_ratio)) and num_classes;
          conv_proj replaced for in_chans != 3. Same parameter count as attnvision's timm-style ViT
          (torchvision's attention always has a qkv bias, so qkv_bias false is refused).
--check-weights FILE compares against a checkpoint attnvision wrote: for the ResNet every tensor name and
shape must match; for both the parameter count (tensors less BatchNorm buffers) must be equal.

Data: the first N images of Fashion-MNIST's training set (N = --limit, else data.limit, else 60000 less
data.val_count), read from the gzip IDX files with gzip + numpy into one uint8 N x 1 x 28 x 28 tensor, as
attnvision holds its data in memory. Each epoch: torch.randperm order, the last partial batch dropped.
Augmentation, batch-wise on tensors after the batch is gathered (the order attnvision uses): random crop with
zero padding (F.pad, then one advanced-indexing gather with per-image offsets, the horizontal flip folded into
the column index), normalisation in float32, then RandomErasing in timm's 'pixel' mode (probability
augment.random_erasing per image, area 0.02..1/3, log-uniform aspect 0.3..1/0.3, up to 10 tries, N(0, 1) noise)
vectorised over the batch with torch.where. No validation pass (not timed by attnvision either).

Training step: model.train(), the forward pass under torch.autocast("cpu", dtype=torch.bfloat16) when the recipe's
precision is bf16 (as attnvision's AutocastScope), CrossEntropyLoss(label_smoothing) on float32 logits, zero_grad,
backward, clip_grad_norm_ when
clip_grad_norm > 0, optimizer.step(), LambdaLR stepped per step (linear warm-up from warmup_lr over
warmup_epochs, then cosine to min_lr: pipelines/trainer.cpp scheduled_lr); loss.item() and the batch accuracy
each step, as attnvision's progress line does. Optimiser: torch.optim.SGD (momentum, nesterov) or AdamW
(betas, eps) with two param groups, no weight decay on 1-D parameters; torch's default (for-loop)
implementation unless --foreach.

Threads: torch.set_num_threads(T) and, as attnvision's apply_threads does, openblas_set_num_threads(T) on
the process's libblas.so.3 when it is OpenBLAS.

Timing, on stdout as one JSON line:
  images_per_s         the last epoch: images trained / wall time from the epoch's start (order draw) to the
                       end of its last step, batch gathering and augmentation included; the same figure as
                       attnvision's per-epoch "img/s" and its JSON images_per_s (its last epoch).
  epoch_images_per_s   that figure for every epoch.
  steady_images_per_s  all steps after the first --warmup-steps (default 3), timed step by step.
--steps S stops after S steps in total (smoke tests); an epoch cut short is timed over the steps it ran.
"""
import argparse
import ctypes
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


# ----------------------------------------------------------------------------------------------- model: ResNet
def make_divisible(v, divisor, round_limit=0.0):
    """timm.layers.helpers.make_divisible with min_value = divisor (models/attention.cpp)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SEModule(nn.Module):
    """Squeeze-and-Excitation: 1x1-conv MLP (with biases) on the spatial mean, width make_divisible(C/16, 8)."""

    def __init__(self, channels):
        super().__init__()
        rd = make_divisible(channels / 16.0, 8, 0.0)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=True)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class EcaModule(nn.Module):
    """Efficient Channel Attention: a 1-D conv (no bias) across the channel means, kernel adapted to C."""

    def __init__(self, channels):
        super().__init__()
        t = int(abs(math.log(channels, 2) + 1) / 2)
        k = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False)

    def forward(self, x):
        y = x.mean((2, 3)).view(x.size(0), 1, -1)
        return x * torch.sigmoid(self.conv(y)).view(x.size(0), -1, 1, 1)


class ChannelGate(nn.Module):
    def __init__(self, channels):
        super().__init__()
        rd = make_divisible(channels / 16.0, 1, 0.0)
        self.fc1 = nn.Conv2d(channels, rd, 1, bias=False)
        self.fc2 = nn.Conv2d(rd, channels, 1, bias=False)

    def forward(self, x):
        mean = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        peak = self.fc2(F.relu(self.fc1(x.amax((2, 3), keepdim=True))))
        return x * torch.sigmoid(mean + peak)


class ConvBn(nn.Module):
    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class SpatialGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = ConvBn(2, 1, 7)

    def forward(self, x):
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(pooled))


class CbamModule(nn.Module):
    """CBAM: channel gate (shared MLP, no biases, width make_divisible(C/16, 1) over mean and max), then a
    spatial gate (7x7 conv + BN over the channel mean and max)."""

    def __init__(self, channels):
        super().__init__()
        self.channel = ChannelGate(channels)
        self.spatial = SpatialGate()

    def forward(self, x):
        return self.spatial(self.channel(x))


ATTENTION = {"none": None, "se": SEModule, "eca": EcaModule, "cbam": CbamModule}


def conv(cin, cout, kernel, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=False)


class Block(nn.Module):
    """BasicBlock (two 3x3) or Bottleneck (1x1, 3x3 with the stride, 1x1 to 4x planes); attention `se` after the
    last BN, then the residual add and ReLU."""

    def __init__(self, bottleneck, cin, planes, stride, downsample, attn, first_dilation=1, dilation=1):
        super().__init__()
        out = planes * 4 if bottleneck else planes
        if bottleneck:
            specs = [(cin, planes, 1, 1, 1), (planes, planes, 3, stride, first_dilation), (planes, out, 1, 1, 1)]
        else:
            specs = [(cin, planes, 3, stride, first_dilation), (planes, out, 3, 1, dilation)]
        self.n = len(specs)
        for i, (a, b, k, s, d) in enumerate(specs, 1):
            setattr(self, f"conv{i}", conv(a, b, k, s, d))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
        self.se = ATTENTION[attn](out) if ATTENTION[attn] else None
        self.downsample = downsample

    def forward(self, x):
        y = x
        for i in range(1, self.n + 1):
            y = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y))
            if i < self.n:
                y = F.relu(y, inplace=True)
        if self.se is not None:
            y = self.se(y)
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.relu(y + shortcut, inplace=True)


def make_downsample(cin, cout, stride, avg_down):
    if not avg_down:
        return nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
    pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
    return nn.Sequential(pool, conv(cin, cout, 1), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    def __init__(self, m):
        super().__init__()
        a = m["resnet"]
        bottleneck = a["block"] == "bottleneck"
        stem, width = a.get("stem_type", ""), a.get("stem_width", 64)
        deep, cifar = stem.startswith("deep"), stem == "cifar"
        inplanes = width * 2 if deep else width if cifar else 64
        if deep:
            s0 = 3 * (width // 4) if stem == "deep_tiered" else width
            self.conv1 = nn.Sequential(conv(m["in_chans"], s0, 3, 2), nn.BatchNorm2d(s0), nn.ReLU(),
                                       conv(s0, width, 3), nn.BatchNorm2d(width), nn.ReLU(), conv(width, inplanes, 3))
        elif cifar:
            self.conv1 = conv(m["in_chans"], inplanes, 3)
        else:
            self.conv1 = nn.Conv2d(m["in_chans"], 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, 2, 1)
        # feature_stride below 32: the stages past it keep their input's resolution and dilate their 3x3
        # convolutions instead (timm's output_stride; models/backbones/resnet.cpp resnet_stage_plans).
        net_stride, dilation = (1 if cifar else 4), 1
        for s in range(4):
            planes = a["channels"][s]
            out = planes * 4 if bottleneck else planes
            stride, first_dilation = (1 if s == 0 else 2), dilation
            if net_stride >= a.get("feature_stride", 32):
                dilation, stride = dilation * stride, 1
            else:
                net_stride *= stride
            blocks = []
            for b in range(a["layers"][s]):
                down = None
                if b == 0 and (stride != 1 or inplanes != out):
                    down = make_downsample(inplanes, out, stride, a.get("avg_down", False))
                blocks.append(Block(bottleneck, inplanes if b == 0 else out, planes, stride if b == 0 else 1, down,
                                    a.get("attn", "none"), first_dilation if b == 0 else dilation, dilation))
            inplanes = out
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, m["num_classes"])
        self._init_weights()

    def _init_weights(self):  # timm: kaiming-normal convs, unit BN, last BN of each block zeroed
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        for mod in self.modules():
            if isinstance(mod, Block):
                nn.init.zeros_(getattr(mod, f"bn{mod.n}").weight)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean((2, 3)))


# -------------------------------------------------------------------------------------------------- model: ViT
def build_vit(m):
    from torchvision.models.vision_transformer import VisionTransformer

    a = m["vit"]
    if not a.get("qkv_bias", True):
        sys.exit("py_train_peer: torchvision's VisionTransformer always has a qkv bias; qkv_bias false is not supported")
    dim, patch = a["embed_dim"], a["patch_size"]
    model = VisionTransformer(image_size=a["img_size"], patch_size=patch, num_layers=a["depth"],
                              num_heads=a["num_heads"], hidden_dim=dim, mlp_dim=int(dim * a["mlp_ratio"]),
                              num_classes=m["num_classes"])
    if m["in_chans"] != 3:
        model.conv_proj = nn.Conv2d(m["in_chans"], dim, kernel_size=patch, stride=patch)
    return model


def build_model(m):
    if m["arch"] == "resnet":
        return ResNet(m)
    if m["arch"] == "vit":
        return build_vit(m)
    sys.exit(f"py_train_peer: unknown model.arch '{m['arch']}'")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def check_weights(model, arch, path):
    """Tensor names/shapes (ResNet) and the parameter count against an attnvision checkpoint (safetensors)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    theirs = {k: v["shape"] for k, v in header.items()}
    their_params = sum(math.prod(s) for k, s in theirs.items() if not k.endswith(buffers))
    result = {"attnvision_parameters": their_params, "peer_parameters": count_parameters(model)}
    if arch == "resnet":
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        result["tensor_names_and_shapes_match"] = ours == theirs
        if ours != theirs:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            result["mismatched_tensors"] = diff[:20]
    result["parameters_match"] = result["attnvision_parameters"] == result["peer_parameters"]
    return result


# ------------------------------------------------------------------------------------------------------- data
def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"py_train_peer: {path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(n, root=FMNIST_DIR):
    images = read_idx(os.path.join(root, "train-images-idx3-ubyte.gz"))[:n]
    labels = read_idx(os.path.join(root, "train-labels-idx1-ubyte.gz"))[:n]
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------------------------- augmentation
class BatchAugment:
    """Random crop with zero padding + horizontal flip on the uint8 batch, normalisation, then random erasing
    ('pixel' mode) on the normalised float batch; all batch-wise tensor ops."""

    def __init__(self, aug, mean, std, generator):
        self.pad = int(aug.get("crop_padding", 0))
        self.hflip = bool(aug.get("hflip", False))
        self.erase = float(aug.get("random_erasing", 0.0))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.g = generator

    def __call__(self, x):
        n, c, h, w = x.shape
        if self.pad or self.hflip:
            p = self.pad
            xp = F.pad(x, (p, p, p, p)) if p else x
            dy = torch.randint(0, 2 * p + 1, (n,), generator=self.g)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=self.g)
            cols = torch.arange(w).expand(n, w)
            if self.hflip:
                flip = torch.rand(n, generator=self.g) < 0.5
                cols = torch.where(flip[:, None], cols.flip(1), cols)
            rows = torch.arange(h)[None] + dy[:, None]
            cols = cols + dx[:, None]
            x = xp[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
        x = (x.float().div_(255.0) - self.mean).div_(self.std)
        if self.erase > 0:
            x = self.random_erase(x)
        return x

    def random_erase(self, x, tries=10, min_area=0.02, max_area=1 / 3, min_aspect=0.3):
        n, c, h, w = x.shape
        g = self.g
        apply = torch.rand(n, generator=g) < self.erase
        area = (min_area + (max_area - min_area) * torch.rand(n, tries, generator=g, dtype=torch.float64)) * (h * w)
        log_r = math.log(min_aspect), math.log(1 / min_aspect)
        aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * torch.rand(n, tries, generator=g, dtype=torch.float64))
        eh = torch.sqrt(area * aspect).round().long()  # round half to even, as Python's round()
        ew = torch.sqrt(area / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = torch.where(fits.any(1), fits.int().argmax(1), torch.full((n,), -1))
        apply &= first >= 0
        pick = first.clamp(min=0)[:, None]
        eh, ew = eh.gather(1, pick).squeeze(1), ew.gather(1, pick).squeeze(1)
        top = (torch.rand(n, generator=g, dtype=torch.float64) * (h - eh + 1)).long()
        left = (torch.rand(n, generator=g, dtype=torch.float64) * (w - ew + 1)).long()
        ys, xs = torch.arange(h)[None], torch.arange(w)[None]
        inside_y = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
        inside_x = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
        mask = (inside_y[:, :, None] & inside_x[:, None, :] & apply[:, None, None])[:, None]
        noise = torch.randn(x.shape, generator=g)
        return torch.where(mask, noise, x)


# --------------------------------------------------------------------------------------------------- training
def make_optimizer(model, o, foreach):
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    kw = {"foreach": True} if foreach else {}
    if o["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], **kw)
    if o["name"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"], **kw)
    sys.exit(f"py_train_peer: unknown optim.name '{o['name']}'")


def lr_factor(sched, base_lr, epochs, steps_per_epoch):
    """pipelines/trainer.cpp scheduled_lr(step) / base_lr: linear warm-up, then cosine to min_lr."""
    total = epochs * steps_per_epoch
    warmup = min(total, sched["warmup_epochs"] * steps_per_epoch)
    lo, hi = sched.get("warmup_lr", 0.0), sched.get("min_lr", 0.0)

    def f(step):
        if step < warmup:
            return (lo + (base_lr - lo) * step / warmup) / base_lr
        progress = (step - warmup) / (total - warmup) if total > warmup else 1.0
        return (hi + 0.5 * (base_lr - hi) * (1 + math.cos(math.pi * progress))) / base_lr

    return f


def set_blas_threads(n):
    try:
        blas = ctypes.CDLL("libblas.so.3")
        blas.openblas_set_num_threads(n)
        return blas.openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="config.json from an `attnvision train` output folder")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch (and OpenBLAS) threads")
    ap.add_argument("--epochs", type=int, help="override schedule.epochs")
    ap.add_argument("--limit", type=int, help="first N training images (default data.limit, else 60000 - val_count)")
    ap.add_argument("--batch-size", type=int, help="override batch_size")
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps in total (0: all epochs)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="steps left out of steady_images_per_s")
    ap.add_argument("--foreach", action="store_true", help="the optimiser's multi-tensor (foreach) implementation")
    ap.add_argument("--check-weights", metavar="SAFETENSORS", help="compare the model with an attnvision checkpoint")
    ap.add_argument("--data", default=FMNIST_DIR, help="folder of Fashion-MNIST's gzip IDX files")
    args = ap.parse_args()

    with open(args.config) as f:
        cfg = json.load(f)
    m = cfg["model"]
    torch.set_num_threads(args.threads)
    blas_threads = set_blas_threads(args.threads)
    torch.manual_seed(cfg.get("seed", 0))

    limit = args.limit if args.limit is not None else cfg["data"].get("limit", 0)
    n = limit if limit > 0 else 60000 - cfg["data"].get("val_count", 0)
    batch = args.batch_size or cfg["batch_size"]
    epochs = args.epochs or cfg["schedule"]["epochs"]
    images, labels = load_fmnist(n, args.data)
    n = images.shape[0]
    if tuple(images.shape[1:]) != tuple(m["input_size"]):
        sys.exit(f"py_train_peer: images are {tuple(images.shape[1:])}, the model takes {m['input_size']}")
    steps_per_epoch = n // batch
    if steps_per_epoch < 1:
        sys.exit(f"py_train_peer: {n} images, fewer than one batch of {batch}")

    model = build_model(m)
    check = check_weights(model, m["arch"], args.check_weights) if args.check_weights else None
    opt = make_optimizer(model, cfg["optim"], args.foreach)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg["schedule"], cfg["optim"]["lr"], epochs,
                                                             steps_per_epoch))
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.get("label_smoothing", 0.0))
    clip = cfg.get("clip_grad_norm", 0.0)
    bf16 = cfg.get("precision", "fp32") == "bf16"
    g = torch.Generator().manual_seed(cfg.get("seed", 0))
    augment = BatchAugment(cfg.get("augment", {}), m["mean"], m["std"], g)
    print(f"py_train_peer: {m['name']} ({m['arch']}), {count_parameters(model) / 1e6:.2f}M parameters "
          f"({count_parameters(model)}); {n} train images, batch {batch}, {steps_per_epoch} steps/epoch; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, OpenBLAS {blas_threads}, "
          f"{'bf16 autocast' if bf16 else 'fp32'}", file=sys.stderr)

    epoch_rates, step_times, step = [], [], 0
    model.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=g)
        seen = loss_sum = correct = 0
        for s in range(steps_per_epoch):
            ts = time.perf_counter()
            idx = order[s * batch:(s + 1) * batch]
            x = augment(images.index_select(0, idx))
            y = labels.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            logits = logits.float()
            loss = criterion(logits, y)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * batch
            correct += (logits.argmax(1) == y).sum().item()
            seen += batch
            step += 1
            step_times.append(time.perf_counter() - ts)
            if args.steps and step >= args.steps:
                break
        dt = time.perf_counter() - t0
        epoch_rates.append(seen / dt)
        print(f"epoch {epoch + 1}/{epochs}  train loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}%  "
              f"{seen / dt:.0f} img/s  {dt:.1f} s", file=sys.stderr)
        if args.steps and step >= args.steps:
            break

    steady = step_times[args.warmup_steps:]
    result = {
        "images_per_s": epoch_rates[-1],
        "epoch_images_per_s": epoch_rates,
        "steady_images_per_s": batch * len(steady) / sum(steady) if steady else None,
        "steps": step, "batch_size": batch, "train_images": n, "epochs_run": len(epoch_rates),
        "model": m["name"], "arch": m["arch"], "attn": m.get("resnet", {}).get("attn"),
        "parameters": count_parameters(model), "threads": torch.get_num_threads(), "blas_threads": blas_threads,
        "torch": torch.__version__, "foreach": args.foreach, "precision": "bf16" if bf16 else "fp32",
    }
    if check is not None:
        result["check_weights"] = check
    print(json.dumps(result))


if __name__ == "__main__":
    main()
