#!/usr/bin/python3
"""Training throughput of `attnvision train` against its Python peer (benchmarks/py_train_peer.py), same run.

    /usr/bin/python3 benchmarks/train_vs_peer.py [--attn none|se|eca|cbam] [--threads T] [--rounds R]
    /usr/bin/python3 benchmarks/train_vs_peer.py --vit [--threads T] [--rounds R]
        [--limit N] [--epochs E] [--batch B] [--precision fp32|bf16] [--val-count V] [--foreach] [--work DIR]

Both sides train the same recipe (configs/train/fmnist_resnet.yaml with model.attn = --attn, or
configs/train/fmnist_vit.yaml with --vit) on the same number of Fashion-MNIST images (--limit; default 7680:
30 batches of 256 for the ResNet, 60 of 128 for the ViT), at the same batch size (the recipe's unless
--batch) and precision (the recipe's unless --precision; the peer runs bf16 under torch.autocast), for --epochs
epochs (default 2; the figure compared is the last epoch's, so start-up costs fall in the first), with T
threads (default: all cores): `attnvision train --threads T`, and the peer with torch.set_num_threads(T) plus
openblas_set_num_threads(T), as attnvision does. Validation is off
(--val-count 0); neither side times it anyway.

The peer reads the resolved recipe (config.json) that attnvision wrote into its output folder, so the model,
optimiser, schedule, loss and augmentation come from one source, and checks its model against attnvision's
checkpoint (last.safetensors): the parameter counts, and for the ResNet every tensor name and shape.
Throughput on both sides: images of the last epoch / wall time of its training steps (batch gathering and
augmentation included, validation excluded): attnvision's JSON images_per_s, the peer's images_per_s.

Rounds alternate the order (round 1: attnvision then the peer, which needs its config.json; round 2: the peer
first; ...), so that a change in the machine's load hits both; with R > 1 the table adds the medians. The
defaults take about 2-3 minutes a round on an idle 2-core machine (~250 img/s for the CBAM ResNet, ~30 img/s
for the ViT). Each run writes to a fresh folder under --work (default build/bench/train).
"""
import argparse
import csv
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr[-3000:]}")
    return p, time.perf_counter() - t0


def last_json(stdout):
    return json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attn", default="cbam", choices=["none", "se", "eca", "cbam"], help="ResNet attention module")
    ap.add_argument("--vit", action="store_true", help="the ViT recipe instead of the ResNet")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--limit", type=int, help="training images (default 7680)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, help="batch size (default: the recipe's)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], help="both sides' precision (default: the recipe's)")
    ap.add_argument("--val-count", type=int, default=0, help="images held out for attnvision's validation")
    ap.add_argument("--foreach", action="store_true", help="the peer's optimiser uses foreach=True")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "pipelines", "cli", "attnvision"))
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter for the peer")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench", "train"))
    args = ap.parse_args()

    recipe = os.path.join(ROOT, "configs", "train", "fmnist_vit.yaml" if args.vit else "fmnist_resnet.yaml")
    limit = args.limit or 7680
    what = "fmnist_vit" if args.vit else f"fmnist_resnet attn={args.attn}"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.work, exist_ok=True)
    load_before = os.getloadavg()

    config = None  # the config.json of the first attnvision run: what the peer trains
    ours_cmds, peer_cmds, rounds = [], [], []

    def ours_run(r):
        out = os.path.join(args.work, f"{stamp}_{'vit' if args.vit else args.attn}_r{r + 1}_attnvision")
        cmd = [args.binary, "train", recipe, "--threads", str(args.threads), "--set", f"data.limit={limit}",
               "--set", f"data.val_count={args.val_count}", "--set", f"schedule.epochs={args.epochs}",
               "--set", 'data.test=""', "--set", f"output={out}"]
        if not args.vit:
            cmd += ["--set", f"model.attn={args.attn}"]
        if args.batch:
            cmd += ["--set", f"batch_size={args.batch}"]
        if args.precision:
            cmd += ["--set", f"precision={args.precision}"]
        p, wall = run(cmd)
        ours_cmds.append(cmd)
        m = re.search(r"([\d.]+)M parameters", p.stderr)
        with open(os.path.join(out, "log.csv")) as f:
            epochs = [float(row["images_per_s"]) for row in csv.DictReader(f)]
        return {"images_per_s": last_json(p.stdout)["images_per_s"], "epoch_images_per_s": epochs,
                "parameters_m": float(m.group(1)) if m else None, "wall_s": wall, "dir": out}

    def peer_run():
        cmd = [args.python, os.path.join(HERE, "py_train_peer.py"), "--config", os.path.join(config, "config.json"),
               "--threads", str(args.threads), "--check-weights", os.path.join(config, "last.safetensors")]
        if args.foreach:
            cmd.append("--foreach")
        p, wall = run(cmd)
        peer_cmds.append(cmd)
        return dict(last_json(p.stdout), wall_s=wall)

    for r in range(max(1, args.rounds)):
        if r % 2 == 0:
            ours = ours_run(r)
            config = config or ours["dir"]
            peer = peer_run()
        else:
            peer = peer_run()
            ours = ours_run(r)
        rounds.append((ours, peer))
        print(f"round {r + 1}/{args.rounds}: attnvision {ours['images_per_s']:.1f} img/s ({ours['wall_s']:.0f} s), "
              f"peer {peer['images_per_s']:.1f} img/s ({peer['wall_s']:.0f} s)", file=sys.stderr, flush=True)

    peer = rounds[0][1]
    check = peer.get("check_weights", {})
    batch = peer["batch_size"]
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), load average before {load_before[0]:.2f}, "
          f"after {os.getloadavg()[0]:.2f}; torch {peer['torch']} (Debian; attnvision links the same libtorch)")
    print(f"model: {what}, {check.get('peer_parameters', peer['parameters'])} parameters in the peer, "
          f"{check.get('attnvision_parameters', '?')} in attnvision's checkpoint"
          + (f", tensor names and shapes {'identical' if check['tensor_names_and_shapes_match'] else 'DIFFER'}"
             if "tensor_names_and_shapes_match" in check else "")
          + ("" if check.get("parameters_match") else "  ** PARAMETER COUNTS DIFFER **"))
    print(f"data: {peer['train_images']} Fashion-MNIST images, batch {batch}, {peer['steps'] // peer['epochs_run']} "
          f"steps/epoch, {args.epochs} epochs; {args.threads} threads (peer: torch {peer['threads']}, OpenBLAS "
          f"{peer['blas_threads']}); {peer['precision']}; images/s = last epoch's training steps")
    print(f"{'':12}{'attnvision':>12}{'python peer':>13}{'ratio':>8}   per-epoch img/s (attnvision | peer)")
    for r, (o, p) in enumerate(rounds):
        order = "ours first" if r % 2 == 0 else "peer first"
        per_epoch = (" ".join(f"{v:.0f}" for v in o["epoch_images_per_s"]) + " | "
                     + " ".join(f"{v:.0f}" for v in p["epoch_images_per_s"]))
        print(f"{'round ' + str(r + 1):12}{o['images_per_s']:12.1f}{p['images_per_s']:13.1f}"
              f"{o['images_per_s'] / p['images_per_s']:8.2f}   {per_epoch}  ({order})")
    if len(rounds) > 1:
        print(f"{'median':12}{statistics.median(o['images_per_s'] for o, _ in rounds):12.1f}"
              f"{statistics.median(p['images_per_s'] for _, p in rounds):13.1f}"
              f"{statistics.median(o['images_per_s'] / p['images_per_s'] for o, p in rounds):8.2f}")
    print("commands (first round):")
    print("  attnvision: " + shlex.join(ours_cmds[0]))
    print("  peer:       " + shlex.join(peer_cmds[0]))


if __name__ == "__main__":
    main()
