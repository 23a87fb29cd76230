#!/usr/bin/env python3
"""End-to-end `attnvision classify` against the Python peer (torchvision + PIL), same weights, same run.

    /usr/bin/python3 benchmarks/classify_vs_peer.py [--model resnet50] [--n 200] [--batch 16]

Steps: make N JPEGs (640x480..1280x960) with ../shared/peers/make_images.py; write one random-init
torchvision checkpoint (timm and torchvision share resnet names) that both sides load; classify the folder
with the peer and with attnvision; compare their top-5 predictions; time forward-only at the batch size
(peer: --bench-forward, attnvision: `bench`) and report achieved GFLOP/s against the matmul peak.
With --vit, also time ViT-B/16 forward-only: attnvision's vit_base_patch16_224 against torchvision's
vit_b_16 (the same architecture), both with torch on 1 thread and OpenBLAS on all cores.
Prints a table and the ratios; writes everything under --work (default build/bench).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


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
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--forward-iters", type=int, default=5)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "pipelines", "cli", "attnvision"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--vit", action="store_true", help="also compare ViT-B/16 forward-only")
    args = ap.parse_args()

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
        vit_summary = os.path.join(args.work, "peer_vit.json")
        run([sys.executable, os.path.join(peers, "py_classify_folder.py"), images, "--model", "vit_b_16", "--limit",
             str(args.batch), "--batch-size", str(args.batch), "--threads", "1", "--blas-threads", threads,
             "--out", os.devnull, "--summary", vit_summary, "--bench-forward", str(args.forward_iters)])
        peer_vit = json.load(open(vit_summary))["bench_forward"]["images_per_s"]
        vb, _ = run([args.binary, "bench", "--model", "vit_base_patch16_224", "--batch", str(args.batch), "--iters",
                     str(args.forward_iters), "--threads", "1", "--blas-threads", threads, "--json"])
        vit = json.loads(vb.stdout)
        print(f"{'ViT-B/16 forward (img/s)':26}{vit['images_per_s']:12.2f}{peer_vit:13.2f}"
              f"{vit['images_per_s'] / peer_vit:8.2f}   ({vit['achieved_gflop_s']:.1f} vs "
              f"{peer_vit * vit['gflops_per_image']:.1f} GFLOP/s)")
    print(f"agreement: top-1 {same_top1}/{len(peer_rows)}, identical top-5 {same_top5}/{len(peer_rows)}, "
          f"max |score diff| {max_dscore:.2e}; attnvision wall incl. start-up {wall:.2f}s")


if __name__ == "__main__":
    main()
