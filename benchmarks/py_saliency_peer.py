#!/usr/bin/python3
"""The Python peer of `attnvision saliency --method gradcam`: the same CT anomaly model (an attnvision checkpoint),
the same CT input and the same Grad-CAM, per DICOM slice, in plain PyTorch + pydicom + OpenCV.

    /usr/bin/python3 benchmarks/py_saliency_peer.py SLICE.dcm|FOLDER... --weights CKPT.safetensors \
        [--threads T] [--batch 8] [--channels-last] [--fold] [--limit N] [--maps DIR] [--quiet]

Prints one JSON line per slice (path, frame, score = p(lesion), method, peak_px [x, y] of the map on the source
grid, and `map` when --maps is given), then one summary line: slices_per_s (in-process, from the first file read
to the last map: DICOM read, preprocessing, Grad-CAM and the way back to the source grid; start-up, imports and
model load excluded), the time in each step and the settings. Folders are searched for *.dcm, sorted.

Model: the checkpoint's __metadata__ "attnvision.model_cfg" (models/model_cfg.cpp): a timm-style ResNet with
attnvision's names, built by benchmarks/py_train_peer.py's ResNet (CBAM as models/layers/attn_cbam.cpp), weights
loaded strictly, eval mode, float32; an anomaly model's lesion_map head (models/heads/lesion_map.cpp: a 1x1
convolution per cell of the last feature map, or with anomaly.lesion_map_stride of its upsampling neck, slice
logits [0, the largest cell's]) stands in for fc.

Input (vision/ct_input.cpp, datasets/preprocess.cpp, datasets/augment.cpp), per slice:
  HU = stored * RescaleSlope + RescaleIntercept (float64, stored as float32, as DCMTK gives it);
  resized to round(columns * column spacing / anomaly.ct_spacing_mm) x round(rows * row spacing / ...)
  with cv2.INTER_AREA when either side shrinks, else cv2.INTER_LINEAR (OpenCV, the library attnvision uses);
  pasted with its top-left corner at (size - resized) / 2 (C++ integer division) on a size x size canvas of
  -1000 HU (size = input_size[1]); each anomaly.ct_windows window (preset or "C,W") maps it to 8 bits with the
  DICOM LINEAR VOI function as vision/dicom_window.cpp computes it (DCMTK's offset + x * gradient, floor,
  clamp); normalised through a float32 table (v * (1/255) - mean[c]) / std[c].
Grad-CAM (models/saliency/saliency.cpp), the batch at once: the network up to the explained stage
(anomaly.saliency_stage, default layer2; act1 | layer1..layer4, '' = the last feature map) under torch.no_grad;
the rest with autograd from the stage's activations A (a leaf; parameters do not require grad); score, summed
over the batch = the lesion_map head's largest cell logit plus its cell logits above 0 (attnvision's
lesion_evidence_score, pipelines/tasks/saliency/slice_findings.h), the lesion logit (class 1) for an fc head; w = spatial mean of dscore/dA; map = relu(sum_c w_c A_c);
p(lesion) = softmax(logits)[1]. The map goes to the model grid with cv2.resize INTER_LINEAR (pixel centres
aligned, as pipelines/tasks/saliency/slice_findings.cpp map_on_model_grid) and back to the source grid as
vision::map_to_source does (the overlap of the placed slice cut out, outside = 0, cv2.resize INTER_LINEAR to
rows x columns).

Tuning (PyTorch's CPU performance guide): --threads for torch (and OpenCV), run it with tcmalloc preloaded
(LD_PRELOAD=libtcmalloc_minimal.so.4, as attnvision links it); --channels-last puts model and batches in
channels-last; --fold folds every BatchNorm into the convolution before it (as attnvision prepares networks
for inference). --float64 runs the model and its inputs in float64: not a tuning but the reference the
agreement check (benchmarks/saliency_vs_peer.py) measures both float32 sides against, to tell which side a
disagreement between them comes from. torch.inference_mode is not usable (Grad-CAM needs autograd),
torch.no_grad is used wherever no gradient is needed. Needs Debian's python3-torch, python3-pydicom,
python3-numpy, python3-opencv.
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import pydicom
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from py_train_peer import ResNet  # noqa: E402  (the timm-style ResNet with attnvision's names, CBAM included)
from checkpoint_io import load_checkpoint  # noqa: E402

# vision/dicom_window.cpp kPresets: (center, width) in HU.
PRESETS = {"lung": (-600.0, 1500.0), "mediastinum": (50.0, 350.0), "bone": (400.0, 1800.0),
           "brain": (40.0, 80.0), "abdomen": (50.0, 400.0)}
def fold_batchnorms(model):
    """Every (conv, BatchNorm) pair folded: conv weight * gamma / sqrt(var + eps), bias beta - mean * scale."""
    def fold(conv, bn):
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        bias = conv.bias * scale if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias + bn.bias - bn.running_mean * scale, requires_grad=False)

    with torch.no_grad():
        pairs = []
        for mod in model.modules():
            names = dict(mod.named_children())
            for cname, child in names.items():  # convN / bnN, conv / bn (ConvBn), Sequential(conv, bn)
                if isinstance(child, nn.Conv2d):
                    bname = "bn" + cname[4:] if cname.startswith("conv") else None
                    if bname in names and isinstance(names[bname], nn.BatchNorm2d):
                        pairs.append((mod, cname, bname))
            if isinstance(mod, nn.Sequential):
                kids = list(mod)
                for i in range(len(kids) - 1):
                    if isinstance(kids[i], nn.Conv2d) and isinstance(kids[i + 1], nn.BatchNorm2d):
                        pairs.append((mod, str(i), str(i + 1)))
        for mod, cname, bname in pairs:
            fold(getattr(mod, cname), getattr(mod, bname))
            setattr(mod, bname, nn.Identity())
    return len(pairs)


class UpsamplingNeck:
    """models/heads/upsampling_neck.cpp on the peer's ResNet, for an anomaly head with lesion_map_stride: the
    last feature map reduced (1x1 conv + BN + ReLU) to lesion_map_width, then per 2x step a bilinear upsampling
    (align_corners false), plus a 1x1 conv + BN + ReLU of the deepest stage at that stride, then a 3x3 conv +
    BN + ReLU. Its modules hang on the model as attnvision names them at the network's root (neck_reduce,
    neck_up.<i>, neck_lateral.<stage>)."""

    @staticmethod
    def attach(model, cfg):
        an = cfg.get("anomaly", {})
        out_stride, width = an.get("lesion_map_stride", 0), an.get("lesion_map_width", 64)
        a = cfg["resnet"]
        expansion = 4 if a["block"] == "bottleneck" else 1
        fs = a.get("feature_stride", 32)
        # feature_info of models/backbones/resnet.cpp: layer1 at 4, then x2 per stage up to feature_stride
        stages, stride = [], 4
        for s in range(4):
            if s > 0 and stride < fs:
                stride *= 2
            stages.append((f"layer{s + 1}", a["channels"][s] * expansion, stride))
        if not out_stride or out_stride >= fs:
            return []

        def cbr(i, o, k):
            return nn.Sequential(nn.Conv2d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(True))

        model.neck_reduce = cbr(stages[-1][1], width, 1)
        model.neck_up = nn.ModuleList()
        model.neck_lateral = nn.ModuleDict()
        steps, stride = [], fs
        while stride > out_stride:
            lateral = [(n, c) for n, c, st in stages if st == stride // 2]
            if lateral:
                name, channels = lateral[-1]
                model.neck_lateral[name] = cbr(channels, width, 1)
                steps.append(name)
            else:
                steps.append("")
            model.neck_up.append(cbr(width, width, 3))
            stride //= 2
        return steps

    @staticmethod
    def forward(model, steps, y, outputs):
        y = model.neck_reduce(y)
        for i, name in enumerate(steps):
            y = nn.functional.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            if name:
                y = y + model.neck_lateral[name](outputs[name])
            y = model.neck_up[i](y)
        return y


class GradCam:
    """ResNet split at the explained stage: head(x) -> A without autograd; tail(A) -> logits with it."""

    STAGES = ["act1", "layer1", "layer2", "layer3", "layer4"]

    def __init__(self, model, stage, neck_steps=()):
        self.m = model
        self.neck_steps = list(neck_steps)
        stage = stage or "layer4"
        if stage not in self.STAGES:
            sys.exit(f"py_saliency_peer: stage '{stage}' is not one of {', '.join(self.STAGES)}")
        self.k = self.STAGES.index(stage)  # 0: after the stem's ReLU (before the max-pool)

    def head(self, x, outputs):
        m = self.m
        y = torch.relu_(m.bn1(m.conv1(x)))
        for s in range(1, self.k + 1):
            if s == 1:
                y = m.maxpool(y)
            y = getattr(m, f"layer{s}")(y)
            outputs[f"layer{s}"] = y
        return y

    def tail(self, a, outputs):
        m = self.m
        y = a
        for s in range(self.k + 1, 5):
            if s == 1:
                y = m.maxpool(y)
            y = getattr(m, f"layer{s}")(y)
            outputs[f"layer{s}"] = y
        if isinstance(m.fc, nn.Conv2d):  # the lesion_map head: slice logits [0, the largest cell's]
            if self.neck_steps:
                y = UpsamplingNeck.forward(m, self.neck_steps, y, outputs)
            cells = m.fc(y).flatten(1)
            top = cells.max(1, keepdim=True).values
            # what attnvision explains (lesion_evidence_score): the top cell plus every cell called a lesion
            return torch.cat([torch.zeros_like(top), top], 1), top[:, 0] + torch.relu(cells).sum(1)
        logits = m.fc(y.mean((2, 3)))
        return logits, logits[:, 1]

    def __call__(self, x):
        outputs = {}
        with torch.no_grad():
            a = self.head(x, outputs)
        a.requires_grad_(True)
        outputs[self.STAGES[self.k]] = a
        with torch.enable_grad():
            logits, score = self.tail(a, outputs)
            (grad,) = torch.autograd.grad(score.sum(), a)
        with torch.no_grad():
            cam = torch.relu((grad.mean((2, 3), keepdim=True) * a).sum(1))
            p = torch.softmax(logits.float(), 1)[:, 1]
        return cam.contiguous(), p


def window_of(spec):
    if spec.lower() in PRESETS:
        return PRESETS[spec.lower()]
    try:
        c, w = (float(v) for v in spec.split(","))
    except ValueError:
        sys.exit(f"py_saliency_peer: ct_windows: '{spec}' is neither a preset nor CENTER,WIDTH")
    return c, w


class WindowTo8Bit:
    """vision/dicom_window.cpp Mapper, LINEAR function, not inverted: floor(clamp(...)) to uint8."""

    def __init__(self, center, width):
        width_1 = max(width, 1.0) - 1.0
        self.left = center - 0.5 - width_1 / 2
        self.right = center - 0.5 + width_1 / 2
        self.offset = 0.0 if width_1 == 0 else 255.0 - ((center - 0.5) / width_1 + 0.5) * 255.0
        self.gradient = 0.0 if width_1 == 0 else 255.0 / width_1

    def __call__(self, v64):
        y = self.offset + v64 * self.gradient
        y = np.where(v64 <= self.left, 0.0, np.where(v64 > self.right, 255.0, y))
        return np.clip(np.floor(y), 0.0, 255.0).astype(np.uint8)


class Placement:
    """vision::CtPlacement: the source slice resized to `resized` (w, h) and pasted at `offset` (x, y)."""

    def __init__(self, rows, cols, spacing, spec_mm, size):
        sx, sy = spacing[1] / spec_mm, spacing[0] / spec_mm
        lround = lambda v: int(math.floor(v + 0.5))  # std::lround for positive values
        self.source = (cols, rows)
        self.resized = (max(1, lround(cols * sx)), max(1, lround(rows * sy)))
        self.offset = (int((size - self.resized[0]) / 2), int((size - self.resized[1]) / 2))  # C++ truncation
        self.size = size
        # The overlap of the placed slice with the grid, in grid and in resized coordinates.
        gx0, gy0 = max(0, self.offset[0]), max(0, self.offset[1])
        gx1 = min(size, self.offset[0] + self.resized[0])
        gy1 = min(size, self.offset[1] + self.resized[1])
        self.grid = (slice(gy0, gy1), slice(gx0, gx1))
        ox, oy = self.offset
        self.res = (slice(gy0 - oy, gy1 - oy), slice(gx0 - ox, gx1 - ox))


class CtPreprocess:
    def __init__(self, cfg):
        an = cfg.get("anomaly", {})
        self.spacing = float(an.get("ct_spacing_mm", 1.5))
        self.size = int(cfg["input_size"][1])
        self.windows = [WindowTo8Bit(*window_of(w)) for w in an.get("ct_windows", ["lung", "abdomen"])]
        mean, std = cfg["mean"], cfg["std"]
        if not (len(mean) == len(std) == len(self.windows) == cfg["in_chans"]):
            sys.exit("py_saliency_peer: in_chans, mean, std and ct_windows disagree")
        v = np.arange(256, dtype=np.float32)
        scale = np.float32(1.0 / 255.0)
        self.lut = np.stack([(v * scale - np.float32(m)) / np.float32(s) for m, s in zip(mean, std)])  # C x 256

    def __call__(self, hu, spacing):
        """hu: rows x cols float32 -> (C x size x size float32 normalised, Placement)."""
        rows, cols = hu.shape
        p = Placement(rows, cols, spacing, self.spacing, self.size)
        shrinking = p.resized[0] < cols or p.resized[1] < rows
        resized = cv2.resize(hu, p.resized, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        canvas = np.full((self.size, self.size), -1000.0, dtype=np.float32)
        canvas[p.grid] = resized[p.res]
        v64 = canvas.astype(np.float64)
        out = np.empty((len(self.windows), self.size, self.size), dtype=np.float32)
        for c, w in enumerate(self.windows):
            out[c] = self.lut[c][w(v64)]
        return out, p


def map_to_source(model_map, p):
    """vision::map_to_source: model-grid map (size x size) -> source rows x cols, outside = 0."""
    resized = np.zeros((p.resized[1], p.resized[0]), dtype=model_map.dtype)
    resized[p.res] = model_map[p.grid]
    return cv2.resize(resized, p.source, interpolation=cv2.INTER_LINEAR)


def list_inputs(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = []
            for root, _, names in os.walk(path):
                found += [os.path.join(root, n) for n in names if n.lower().endswith(".dcm")]
            files += sorted(found)
        else:
            files.append(path)
    return files


def read_slices(path, default_spacing):
    """[(frame, HU float32 rows x cols, (row spacing, column spacing))] of one DICOM file."""
    ds = pydicom.dcmread(path)
    if ds.get("Modality", "") != "CT" and ds.get("RescaleType", "") != "HU":
        raise ValueError(f"{path}: not a CT image in Hounsfield units (Modality '{ds.get('Modality', '')}')")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ValueError(f"{path}: a colour CT object, expected monochrome HU values")
    stored = ds.pixel_array
    slope, intercept = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
    spacing = [float(v) for v in ds.PixelSpacing] if "PixelSpacing" in ds else [default_spacing] * 2
    frames = stored if stored.ndim == 3 else stored[None]
    return [(i, (f.astype(np.float64) * slope + intercept).astype(np.float32), spacing) for i, f in enumerate(frames)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="DICOM files or folders (searched for *.dcm)")
    ap.add_argument("--weights", required=True, help="attnvision anomaly checkpoint (.safetensors)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch and OpenCV threads")
    ap.add_argument("--batch", type=int, default=8, help="slices per Grad-CAM pass")
    ap.add_argument("--stage", default=None, help="override anomaly.saliency_stage")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--fold", action="store_true", help="fold BatchNorms into the convolutions")
    ap.add_argument("--limit", type=int, default=0, help="only the first N files")
    ap.add_argument("--maps", help="write each slice's raw map (source grid; float32, float64 with --float64) as DIR/NNNNN.npy")
    ap.add_argument("--float64", action="store_true", help="model and inputs in float64 (the agreement check's reference)")
    ap.add_argument("--quiet", action="store_true", help="only the summary line")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    state, cfg = load_checkpoint(args.weights)
    if cfg.get("arch") != "resnet" or cfg.get("task") != "anomaly":
        sys.exit(f"py_saliency_peer: {args.weights}: a ResNet anomaly model expected "
                 f"(arch {cfg.get('arch')}, task {cfg.get('task')})")
    model = ResNet(cfg)
    neck_steps = UpsamplingNeck.attach(model, cfg)
    if "lesion_head.weight" in state:  # models/heads/lesion_map.cpp: a 1x1 convolution scores each cell
        width = cfg.get("anomaly", {}).get("lesion_map_width", 64) if neck_steps else model.fc.in_features
        model.fc = nn.Conv2d(width, 1, 1)
        state = {("fc" + k[len("lesion_head"):] if k.startswith("lesion_head.") else k): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    if args.float64:
        model = model.double()
    folded = fold_batchnorms(model) if args.fold else 0
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    stage = args.stage if args.stage is not None else cfg.get("anomaly", {}).get("saliency_stage", "layer2")
    cam = GradCam(model, stage, neck_steps)
    pre = CtPreprocess(cfg)
    files = list_inputs(args.paths)
    if args.limit:
        files = files[:args.limit]
    if args.maps:
        os.makedirs(args.maps, exist_ok=True)

    t = {"read_s": 0.0, "preprocess_s": 0.0, "gradcam_s": 0.0, "map_s": 0.0}
    done = errors = 0
    out_lines = []
    start = time.perf_counter()
    pending = []  # (path, frame, input, placement)

    def flush():
        nonlocal done
        t0 = time.perf_counter()
        x = torch.from_numpy(np.stack([q[2] for q in pending]))
        if args.float64:
            x = x.double()
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        maps, p = cam(x)
        maps, p = maps.numpy(), p.tolist()
        t1 = time.perf_counter()
        for (path, frame, _, placement), m, score in zip(pending, maps, p):
            model_map = cv2.resize(m, (pre.size, pre.size), interpolation=cv2.INTER_LINEAR) \
                if m.shape != (pre.size, pre.size) else m
            source = map_to_source(model_map, placement)
            k = int(np.argmax(source))
            row = {"path": path, "frame": frame, "score": score, "method": "gradcam",
                   "peak_px": [k % source.shape[1], k // source.shape[1]], "peak": float(source.flat[k])}
            if args.maps:
                name = f"{done:05d}.npy"
                np.save(os.path.join(args.maps, name), source)
                row["map"] = name
            out_lines.append(row)
            done += 1
        t["gradcam_s"] += t1 - t0
        t["map_s"] += time.perf_counter() - t1
        pending.clear()

    for path in files:
        t0 = time.perf_counter()
        try:
            slices = read_slices(path, pre.spacing)
        except Exception as e:  # noqa: BLE001 (reported per file, as attnvision does)
            errors += 1
            out_lines.append({"path": path, "error": str(e)})
            continue
        t1 = time.perf_counter()
        t["read_s"] += t1 - t0
        for frame, hu, spacing in slices:
            x, placement = pre(hu, spacing)
            pending.append((path, frame, x, placement))
        t["preprocess_s"] += time.perf_counter() - t1
        while len(pending) >= args.batch:
            rest = pending[args.batch:]
            del pending[args.batch:]
            flush()
            pending.extend(rest)
    if pending:
        flush()
    seconds = time.perf_counter() - start
    if not args.quiet:
        for row in out_lines:
            print(json.dumps(row))
    print(json.dumps({"summary": True, "slices": done, "errors": errors, "seconds": seconds,
                      "slices_per_s": done / seconds if seconds > 0 else None, **t, "batch": args.batch,
                      "stage": stage, "threads": torch.get_num_threads(), "channels_last": args.channels_last,
                      "fold": args.fold, "folded_pairs": folded, "torch": torch.__version__,
                      "opencv": cv2.__version__, "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", "")}))


if __name__ == "__main__":
    main()
