#!/usr/bin/env python3
"""The detector's forward speed against the same CenterNet in plain PyTorch, measured in one run.

    /usr/bin/python3 benchmarks/detect_vs_peer.py [--rounds 3] [--batch 32] [--size 128] [--iters 10]
        [--second-stage [--crops-per-image 10]]

attnvision: `attnvision bench` on ResNet-18 + the CenterNet head (task detection, head width 64, stride 4, random
init). Peer: benchmarks/py_detect_peer.py, the same network on torchvision's resnet18, run in every
configuration PyTorch offers for CPU inference (NCHW or channels-last, BatchNorm folded or not, or
torch.jit.optimize_for_inference), with tcmalloc preloaded as attnvision links it (and the TorchScript model
also with glibc's heap in transparent huge pages, GLIBC_TUNABLES=glibc.malloc.hugetlb=1, as attnvision asks
tcmalloc for its heap) and torch threads = the machine's cores; its best configuration per round is the one compared. The sides alternate for --rounds rounds; the table shows the
medians and the ratio attnvision / best peer (the issue's target: at least 1.2).

--second-stage times the two-stage detector: both sides also decode each forward's peaks and classify the
--crops-per-image strongest of each image from their crops (`attnvision bench --second-stage` with a
random-init crop classifier of configs/train/scenes_crop_classifier.yaml's shape, written by `attnvision convert
--random-init`; the peer's own copy of that network), about what the shipped detector crops on a test scene.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# (name, flags, allocator): "tcmalloc" preloaded, or "thp": glibc's heap in transparent huge pages.
PEER_CONFIGS = [("NCHW", [], "tcmalloc"), ("channels-last", ["--channels-last"], "tcmalloc"),
                ("folded", ["--fold"], "tcmalloc"), ("folded channels-last", ["--fold", "--channels-last"], "tcmalloc"),
                ("TorchScript optimized", ["--jit"], "tcmalloc"),
                ("TorchScript optimized, channels-last", ["--jit", "--channels-last"], "tcmalloc"),
                ("TorchScript optimized, THP", ["--jit"], "thp")]
THP_ENV = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1", "MALLOC_MMAP_THRESHOLD_": "17179869184",
           "MALLOC_TRIM_THRESHOLD_": "17179869184"}


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/pipelines/cli/attnvision"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--second-stage", action="store_true")
    ap.add_argument("--crops-per-image", type=int, default=10)
    args = ap.parse_args()
    threads = os.cpu_count()
    ours_cmd = [args.binary, "bench", "--model", "resnet18", "--set", "task=detection", "--set", "num_classes=10",
                "--set", "head_width=64", "--set", "output_stride=4", "--size", str(args.size), "--batch",
                str(args.batch), "--iters", str(args.iters), "--warmup", "2", "--json"]
    stage_flags = []
    if args.second_stage:
        tmp = tempfile.mkdtemp()
        crop_classifier = os.path.join(tmp, "crop_classifier.safetensors")
        subprocess.run([args.binary, "convert", "--model", "resnet18", "--random-init", "--out", crop_classifier,
                        "--set", "layers=[1, 1, 1, 1]", "--set", "channels=[16, 32, 64, 128]", "--set",
                        "stem_type=cifar", "--set", "stem_width=16", "--set", "attn=eca", "--set", "num_classes=10",
                        "--set", "input_size=[3, 32, 32]", "--set", "crop_pct=1.0"], check=True,
                       stdout=subprocess.DEVNULL)
        ours_cmd += ["--second-stage", crop_classifier, "--crops-per-image", str(args.crops_per_image)]
        stage_flags = ["--second-stage", "--crops-per-image", str(args.crops_per_image)]
    plain = {k: v for k, v in os.environ.items()
             if k not in ("LD_PRELOAD", "GLIBC_TUNABLES") and not k.startswith("MALLOC_")}
    peer_envs = {"tcmalloc": dict(plain), "thp": {**plain, **THP_ENV}}
    if os.path.exists(TCMALLOC):
        peer_envs["tcmalloc"]["LD_PRELOAD"] = TCMALLOC
    ours, peers = [], {name: [] for name, _, _ in PEER_CONFIGS}
    for r in range(args.rounds):
        ours.append(run_json(ours_cmd)["images_per_s"])
        for name, flags, allocator in PEER_CONFIGS:
            cmd = [sys.executable, os.path.join(HERE, "py_detect_peer.py"), "--arch", "resnet18", "--size",
                   str(args.size), "--batch", str(args.batch), "--iters", str(args.iters), "--threads",
                   str(threads)] + flags + stage_flags
            peers[name].append(run_json(cmd, peer_envs[allocator])["images_per_s"])
        best = max(peers[name][-1] for name in peers)
        print(f"round {r + 1}: attnvision {ours[-1]:.1f} images/s, best peer {best:.1f} images/s", file=sys.stderr)
    what = f" + second stage ({args.crops_per_image} crops an image)" if args.second_stage else ""
    print(f"ResNet-18 + CenterNet{what}, {args.size}x{args.size}, batch {args.batch}, {threads} threads, "
          f"median of {args.rounds} rounds (images/s)")
    print(f"  attnvision            {statistics.median(ours):8.1f}")
    for name in peers:
        print(f"  peer {name:<20} {statistics.median(peers[name]):8.1f}")
    best_peer = max(statistics.median(v) for v in peers.values())
    print(f"ratio attnvision / best peer: {statistics.median(ours) / best_peer:.2f}x")


if __name__ == "__main__":
    main()
