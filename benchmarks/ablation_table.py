#!/usr/bin/env python3
"""The README's ablation table from the run folders that benchmarks/ablation.sh leaves.

    /usr/bin/python3 benchmarks/ablation_table.py runs/ablation

Per run: test accuracy (test.json, best-on-validation checkpoint, 10,000 images), best validation accuracy,
parameters and GFLOPs per image (the trainer's first log line), train time (sum of the epochs' wall time,
validation included) and training images/s (mean over epochs, log.csv).
"""
import csv
import json
import os
import re
import sys


def row(folder, name):
    run = os.path.join(folder, name)
    with open(os.path.join(run, "log.csv")) as f:
        epochs = list(csv.DictReader(f))
    test = json.load(open(os.path.join(run, "test.json")))
    head = open(os.path.join(folder, name + ".log")).readline()
    m = re.search(r"([\d.]+)M parameters, ([\d.]+) GFLOPs/image", head)
    return {
        "name": name,
        "test": 100 * test["accuracy"],
        "val": 100 * max(float(e["val_acc"]) for e in epochs),
        "params": float(m.group(1)),
        "gflops": float(m.group(2)),
        "minutes": sum(float(e["epoch_seconds"]) for e in epochs) / 60,
        "ips": sum(float(e["images_per_s"]) for e in epochs) / len(epochs),
        "epochs": len(epochs),
    }


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "runs/ablation"
    names = [n for n in ("none", "se", "eca", "cbam", "vit") if os.path.exists(os.path.join(folder, n, "test.json"))]
    print("| model | test accuracy | best val accuracy | parameters | GFLOPs/image | train time | train images/s |")
    print("|---|---|---|---|---|---|---|")
    for r in map(lambda n: row(folder, n), names):
        label = "ViT (fmnist_vit.yaml)" if r["name"] == "vit" else f"ResNet, attn {r['name']}"
        print(f"| {label} | {r['test']:.2f}% | {r['val']:.2f}% | {r['params']:.2f}M | {r['gflops']:.4f} | "
              f"{r['minutes']:.1f} min ({r['epochs']} epochs) | {r['ips']:.0f} |")


if __name__ == "__main__":
    main()
