"""References for tests/golden/test_parity_cnn.cpp's dilated ResNets (timm's output_stride, attnvision's
model key feature_stride), from an implementation independent of the C++ code.

A functional ResNet written here from timm's resnet.py (BasicBlock / Bottleneck, the plain 7x7 stem, conv
downsampling, optional SE), in float64. It is first checked against two timm parity fixtures at stride 32
(resnet_basic_none, resnet_bottleneck_se: logits and last feature map within 1e-5 of their scale) before anything is written. Then, for each
case below, random weights with timm's names (two blocks per stage, so that a stage's later blocks, which start
from the stage's own dilation, are exercised too), a random 2 x 3 x 72 x 88 input and the outputs at the
dilated stride are stored in one file per case:
  basic_none_os16, basic_none_os8, bottleneck_se_os8:
    weights.<name>  input  logits  last_feature_map
timm's make_blocks: a stage whose stride would take the network past output_stride keeps stride 1 and
multiplies the dilation by the stride it gave up; the stage's first block dilates its strided conv by the
previous dilation, every later 3x3 conv by the stage's own.

Run from anywhere:  /usr/bin/python3 tests/data/resnet/make_dilated_ref.py [--fixtures DIR]
(DIR defaults to <repo>/../shared/fixtures/parity, as CMake's ATTNVISION_SHARED_DIR does.)
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
EPS = 1e-5


def make_divisible(v, divisor=8, min_value=None, round_limit=0.9):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def bn(sd, p, x):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, EPS)


def conv(sd, p, x, stride=1, dilation=1):
    w = sd[p + ".weight"]
    k = w.shape[-1]
    return F.conv2d(x, w, sd.get(p + ".bias"), stride, dilation * (k // 2), dilation)


def se(sd, p, x):
    s = x.mean((2, 3), keepdim=True)
    s = F.relu(conv(sd, p + ".fc1", s))
    return x * torch.sigmoid(conv(sd, p + ".fc2", s))


def stage_plans(output_stride):
    """(stride, first_dilation, dilation) per stage after the 4x stem, as timm's make_blocks."""
    plans, net_stride, dilation = [], 4, 1
    for s in range(4):
        first, stride = dilation, (1 if s == 0 else 2)
        if net_stride >= output_stride:
            dilation *= stride
            stride = 1
        else:
            net_stride *= stride
        plans.append((stride, first, dilation))
    return plans


def resnet(sd, x, bottleneck, layers, attn, output_stride):
    x = F.relu(bn(sd, "bn1", conv(sd, "conv1", x, 2)))
    x = F.max_pool2d(x, 3, 2, 1)
    for s, (stride, first_dilation, dilation) in enumerate(stage_plans(output_stride)):
        for b in range(layers[s]):
            p = f"layer{s + 1}.{b}"
            st, d0 = (stride, first_dilation) if b == 0 else (1, dilation)
            if bottleneck:
                y = F.relu(bn(sd, p + ".bn1", conv(sd, p + ".conv1", x)))
                y = F.relu(bn(sd, p + ".bn2", conv(sd, p + ".conv2", y, st, d0)))
                y = bn(sd, p + ".bn3", conv(sd, p + ".conv3", y))
            else:
                y = F.relu(bn(sd, p + ".bn1", conv(sd, p + ".conv1", x, st, d0)))
                y = bn(sd, p + ".bn2", conv(sd, p + ".conv2", y, 1, dilation))
            if attn == "se":
                y = se(sd, p + ".se", y)
            shortcut = x
            if p + ".downsample.0.weight" in sd:
                shortcut = bn(sd, p + ".downsample.1", conv(sd, p + ".downsample.0", x, st))
            x = F.relu(y + shortcut)
    fmap = x
    logits = F.linear(x.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])
    return logits, fmap


def random_weights(gen, bottleneck, layers, channels, attn, classes=10):
    sd = {}

    def conv_w(name, cout, cin, k, bias=False):
        sd[name + ".weight"] = torch.randn(cout, cin, k, k, generator=gen, dtype=torch.float64) * (2.0 / (cin * k * k)) ** 0.5
        if bias:
            sd[name + ".bias"] = torch.randn(cout, generator=gen, dtype=torch.float64) * 0.1

    def bn_w(name, c):
        sd[name + ".weight"] = 1 + 0.2 * torch.randn(c, generator=gen, dtype=torch.float64)
        sd[name + ".bias"] = 0.1 * torch.randn(c, generator=gen, dtype=torch.float64)
        sd[name + ".running_mean"] = 0.1 * torch.randn(c, generator=gen, dtype=torch.float64)
        sd[name + ".running_var"] = 0.5 + torch.rand(c, generator=gen, dtype=torch.float64)

    conv_w("conv1", 64, 3, 7)
    bn_w("bn1", 64)
    inplanes = 64
    for s in range(4):
        planes = channels[s]
        out = planes * 4 if bottleneck else planes
        for b in range(layers[s]):
            p = f"layer{s + 1}.{b}"
            cin = inplanes if b == 0 else out
            if bottleneck:
                conv_w(p + ".conv1", planes, cin, 1), bn_w(p + ".bn1", planes)
                conv_w(p + ".conv2", planes, planes, 3), bn_w(p + ".bn2", planes)
                conv_w(p + ".conv3", out, planes, 1), bn_w(p + ".bn3", out)
            else:
                conv_w(p + ".conv1", planes, cin, 3), bn_w(p + ".bn1", planes)
                conv_w(p + ".conv2", out, planes, 3), bn_w(p + ".bn2", out)
            if attn == "se":
                rd = make_divisible(out / 16.0, 8, round_limit=0.0)
                conv_w(p + ".se.fc1", rd, out, 1, bias=True)
                conv_w(p + ".se.fc2", out, rd, 1, bias=True)
            if b == 0 and (s > 0 or cin != out):
                conv_w(p + ".downsample.0", out, cin, 1), bn_w(p + ".downsample.1", out)
        inplanes = out
    sd["fc.weight"] = torch.randn(classes, inplanes, generator=gen, dtype=torch.float64) * inplanes ** -0.5
    sd["fc.bias"] = torch.zeros(classes, dtype=torch.float64)
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(REPO, "..", "shared", "fixtures", "parity"))
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    sys.path.insert(0, args.fixtures)
    import safetensors_io  # noqa: E402  (the fixtures' own reader/writer)

    # The reference is checked against timm itself first, at stride 32.
    for name, bottleneck, attn in (("resnet_basic_none", False, "none"), ("resnet_bottleneck_se", True, "se")):
        fixture = os.path.join(args.fixtures, "public", name)
        sd = {k: v.double() for k, v in safetensors_io.load_file(os.path.join(fixture, "weights.safetensors"))[0].items()}
        x = safetensors_io.load_file(os.path.join(fixture, "input.safetensors"))[0]["input"].double()
        expected = safetensors_io.load_file(os.path.join(fixture, "expected.safetensors"))[0]
        logits, fmap = resnet(sd, x, bottleneck, [1, 1, 1, 1], attn, 32)
        err = 0.0
        for got, key in ((logits, "logits"), (fmap, "last_feature_map")):
            ref = expected[key].double()  # timm ran in float32: compare relative to the output's scale
            err = max(err, (got - ref).abs().max().item() / max(1.0, ref.abs().max().item()))
        assert err < 1e-5, f"{name}: the functional ResNet is {err} of the scale from timm"
        print(f"{name}: functional ResNet within {err:.2e} of timm's scale", file=sys.stderr)

    gen = torch.Generator().manual_seed(20261204)
    channels = [8, 16, 24, 32]
    for case, bottleneck, layers, attn, output_stride in (("basic_none_os16", False, [2, 2, 2, 2], "none", 16),
                                                          ("basic_none_os8", False, [2, 2, 2, 2], "none", 8),
                                                          ("bottleneck_se_os8", True, [2, 1, 2, 2], "se", 8)):
        sd = random_weights(gen, bottleneck, layers, channels, attn)
        x = torch.randn(2, 3, 72, 88, generator=gen, dtype=torch.float64)
        logits, fmap = resnet(sd, x, bottleneck, layers, attn, output_stride)
        out = {"weights." + k: v.float() for k, v in sd.items()}
        out.update(input=x.float(), logits=logits.float(), last_feature_map=fmap.float())
        path = os.path.join(args.out, f"dilated_{case}.safetensors")
        safetensors_io.save_file(out, path, metadata={"source": "tests/data/resnet/make_dilated_ref.py",
                                                      "block": "bottleneck" if bottleneck else "basic",
                                                      "layers": str(layers), "attn": attn,
                                                      "feature_stride": str(output_stride)})
        print(f"{path}: feature map {tuple(fmap.shape)}", file=sys.stderr)


if __name__ == "__main__":
    main()
