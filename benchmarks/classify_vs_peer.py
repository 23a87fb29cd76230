#!/usr/bin/env python3
"""End-to-end `attnvision classify` against the Python peer (torchvision + PIL), same weights, same run.

    /usr/bin/python3 benchmarks/classify_vs_peer.py [--model resnet50] [--n 200] [--batch 16]
    /usr/bin/python3 benchmarks/classify_vs_peer.py --vit --only-vit [--vit-model vit_small_patch16_224]

Steps: make N JPEGs (640x480..1280x960) with ../shared/peers/make_images.py; write one random-init
torchvision checkpoint (timm and torchvision share resnet names) that both sides load; classify the folder
with the peer and with attnvision; compare their top-5 predictions; time forward-only at the batch size
(peer: --bench-forward, attnvision: `bench`) and report achieved GFLOP/s against the matmul peak.
With --vit, also time a ViT forward-only (default vit_small_patch16_224, ViT-S/16; --vit-model
vit_base_patch16_224 for ViT-B/16): `attnvision bench --threads 1 --blas-threads T` against an
equivalent torchvision VisionTransformer (pre-norm, LayerNorm eps 1e-6, exact GELU, class token; dims in
VIT_DIMS), random init, timed in a /usr/bin/python3 subprocess with torch.set_num_threads(1) and
OPENBLAS_NUM_THREADS=T, inference_mode, the same batch, warm-up and timed iterations. GFLOP/s of both
sides use attnvision's gflops_per_image. --vit-rounds R alternates the two sides R times and reports medians.
--only-vit skips the ResNet folder run (no images, no weights).
Prints a table and the ratios; writes everything under --work (default build/bench).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# attnvision ViT name -> torchvision VisionTransformer dims (timm's ViT-S/16 and torchvision's vit_b_16).
VIT_DIMS = {
    "vit_small_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=6, hidden_dim=384,
                                  mlp_dim=1536),
    "vit_base_patch16_224": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                                 mlp_dim=3072),
}

# The peer's forward timing, run in its own /usr/bin/python3 so that OPENBLAS_NUM_THREADS is read at load.
VIT_PEER = r"""
import ctypes, json, sys, time
import torch
from torchvision.models.vision_transformer import VisionTransformer
dims, batch, warmup, iters = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
try:
    blas = ctypes.CDLL("libblas.so.3").openblas_get_num_threads()
except Exception:
    blas = None
torch.manual_seed(0)
model = VisionTransformer(**dims).eval()
x = torch.randn(batch, 3, dims["image_size"], dims["image_size"])
with torch.inference_mode():
    for _ in range(warmup):
        model(x)
    t0 = time.perf_counter()
    for _ in range(iters):
        model(x)
    dt = time.perf_counter() - t0
print(json.dumps({"images_per_s": batch * iters / dt, "torch_threads": torch.get_num_threads(),
                  "blas_threads": blas, "torch": torch.__version__}))
"""


def run(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50", help="a name both torchvision and attnvision know")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="peer threads; OpenBLAS threads T for --vit")
    ap.add_argument("--forward-iters", type=int, default=5)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "pipelines", "cli", "attnvision"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--vit", action="store_true", help="also compare a ViT forward-only (see --vit-model)")
    ap.add_argument("--only-vit", action="store_true", help="run only the ViT comparison (implies --vit)")
    ap.add_argument("--vit-model", default="vit_small_patch16_224", choices=sorted(VIT_DIMS))
    ap.add_argument("--warmup", type=int, default=2, help="untimed ViT forwards before the timed ones")
    ap.add_argument("--vit-rounds", type=int, default=1, help="ViT peer/ours pairs, alternating order")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the ViT peer")
    args = ap.parse_args()

    if args.only_vit:
        print(f"machine: {os.cpu_count()} cores; batch {args.batch}")
        vit_compare(args)
        return

    peers = os.path.join(args.shared, "peers")
    sys.path.insert(0, os.path.join(args.shared, "fixtures", "parity"))
    import torch
    import torchvision
    from safetensors_io import save_file

    os.makedirs(args.work, exist_ok=True)
    images = os.path.join(args.work, f"images_{args.n}")
    if not os.path.isdir(images) or len(os.listdir(images)) < args.n:
        run([sys.executable, os.path.join(peers, "make_images.py"), images, "--n", str(args.n), "--seed", "0"])
    weights = os.path.join(args.work, f"{args.model}_random.safetensors")
    if not os.path.exists(weights):
        torch.manual_seed(0)
        model = getattr(torchvision.models, args.model)(weights=None).eval()
        save_file(model.state_dict(), weights)

    threads = str(args.threads)
    peer_out = os.path.join(args.work, "peer.jsonl")
    peer_summary = os.path.join(args.work, "peer_summary.json")
    run([sys.executable, os.path.join(peers, "py_classify_folder.py"), images, "--model", args.model, "--weights",
         weights, "--batch-size", str(args.batch), "--threads", threads, "--out", peer_out, "--summary", peer_summary,
         "--bench-forward", str(args.forward_iters)])
    peer = json.load(open(peer_summary))

    ours, wall = run([args.binary, "classify", images, "--model", args.model, "--weights", weights, "--batch",
                      str(args.batch), "--json", "--topk", "5"])
    rate_line = [l for l in ours.stderr.splitlines() if l.startswith("classified")][-1]
    ours_ips = float(rate_line.split("(")[1].split()[0])
    bench, _ = run([args.binary, "bench", "--model", args.model, "--batch", str(args.batch), "--iters",
                    str(args.forward_iters), "--json"])
    fwd = json.loads(bench.stdout)

    # Same weights and PIL-exact preprocessing: the predictions must agree.
    peer_rows = {json.loads(l)["file"]: json.loads(l) for l in open(peer_out)}
    same_top1 = same_top5 = 0
    max_dscore = 0.0
    for line in ours.stdout.splitlines():
        row = json.loads(line)
        ref = peer_rows[os.path.basename(row["path"])]
        idx = [t["index"] for t in row["topk"]]
        same_top1 += idx[0] == ref["top5"][0]
        same_top5 += idx == ref["top5"]
        max_dscore = max(max_dscore, max(abs(t["score"] - s) for t, s in zip(row["topk"], ref["scores"])))

    peer_fwd = peer["bench_forward"]["images_per_s"]
    print(f"machine: {os.cpu_count()} cores; torch {torch.__version__}; model {args.model}; {args.n} JPEGs; "
          f"batch {args.batch}")
    print(f"{'':26}{'attnvision':>12}{'python peer':>13}{'ratio':>8}")
    print(f"{'end to end (images/s)':26}{ours_ips:12.2f}{peer['images_per_s']:13.2f}{ours_ips / peer['images_per_s']:8.2f}")
    print(f"{'forward only (images/s)':26}{fwd['images_per_s']:12.2f}{peer_fwd:13.2f}{fwd['images_per_s'] / peer_fwd:8.2f}")
    print(f"forward GFLOP/s: attnvision {fwd['achieved_gflop_s']:.1f}, peer {peer_fwd * fwd['gflops_per_image']:.1f}, "
          f"matmul peak {fwd['matmul_peak_gflop_s']:.1f} ({fwd['gflops_per_image']:.2f} GFLOPs/image)")
    if args.vit:
        vit_compare(args)
    print(f"agreement: top-1 {same_top1}/{len(peer_rows)}, identical top-5 {same_top5}/{len(peer_rows)}, "
          f"max |score diff| {max_dscore:.2e}; attnvision wall incl. start-up {wall:.2f}s")


def vit_compare(args):
    """ViT forward-only, both sides on torch 1 thread and OpenBLAS --threads threads. With --vit-rounds R the
    two sides alternate (peer, ours, ours, peer, ...) so that a change in load hits both; each round's ratio
    is printed and the table shows the medians."""
    threads = str(args.threads)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=threads)

    def peer_run():
        p, _ = run([args.python, "-c", VIT_PEER, json.dumps(VIT_DIMS[args.vit_model]), str(args.batch),
                    str(args.warmup), str(args.forward_iters)], env=env)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def ours_run():
        vb, _ = run([args.binary, "bench", "--model", args.vit_model, "--batch", str(args.batch), "--iters",
                     str(args.forward_iters), "--warmup", str(args.warmup), "--threads", "1", "--blas-threads",
                     threads, "--json"])
        return json.loads(vb.stdout)

    rounds = []
    for r in range(max(1, args.vit_rounds)):
        if r % 2 == 0:
            peer = peer_run()
            vit = ours_run()
        else:
            vit = ours_run()
            peer = peer_run()
        rounds.append((vit, peer))
    print(f"{args.vit_model} forward, batch {args.batch}, {args.warmup} warm-up + {args.forward_iters} timed; "
          f"peer: torchvision VisionTransformer (torch {peer['torch']}, {peer['torch_threads']} thread, "
          f"OpenBLAS {peer['blas_threads']}); attnvision: torch {vit['torch_threads']} thread, OpenBLAS {threads}")
    if len(rounds) > 1:
        for r, (v, p) in enumerate(rounds):
            print(f"  round {r + 1} ({'peer first' if r % 2 == 0 else 'ours first'}): attnvision "
                  f"{v['images_per_s']:.2f}, peer {p['images_per_s']:.2f} images/s, ratio "
                  f"{v['images_per_s'] / p['images_per_s']:.2f}")
    ours_ips = statistics.median(v["images_per_s"] for v, _ in rounds)
    peer_ips = statistics.median(p["images_per_s"] for _, p in rounds)
    ratio = statistics.median(v["images_per_s"] / p["images_per_s"] for v, p in rounds)
    gflops = vit["gflops_per_image"]
    peak = statistics.median(v["matmul_peak_gflop_s"] for v, _ in rounds)
    print(f"{'':26}{'attnvision':>12}{'python peer':>13}{'ratio':>8}")
    print(f"{'ViT forward (images/s)':26}{ours_ips:12.2f}{peer_ips:13.2f}{ratio:8.2f}")
    print(f"{'ViT forward (GFLOP/s)':26}{ours_ips * gflops:12.1f}{peer_ips * gflops:13.1f}"
          f"   ({gflops:.2f} GFLOPs/image; matmul peak {peak:.1f})")


if __name__ == "__main__":
    main()
