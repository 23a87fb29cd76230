#!/usr/bin/env python3
"""The README's ablation tables from the run folders that benchmarks/ablation.sh leaves.

    /usr/bin/python3 benchmarks/ablation_table.py runs/ablation          # Fashion-MNIST classifiers
    /usr/bin/python3 benchmarks/ablation_table.py runs/ablation_scenes   # scenes detectors

Per run: the test score of the best-on-validation checkpoint (test.json: accuracy on the 10,000 Fashion-MNIST
test images, or COCO AP / AP50 / AP75 on the test scenes), the best validation score, parameters and GFLOPs per
image (the trainer's first log line), train time (sum of the epochs' wall time, validation included) and
training images/s (mean over epochs, log.csv, whose val_acc column holds the task's score).
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
    head = open(os.path.join(folder, name + ".log")).readline()
    m = re.search(r"([\d.]+)M parameters, ([\d.]+) GFLOPs/image", head)
    return {
        "name": name,
        "test": json.load(open(os.path.join(run, "test.json"))),
        "val": max(float(e["val_acc"]) for e in epochs if e["val_acc"]),
        "params": float(m.group(1)),
        "gflops": float(m.group(2)),
        "minutes": sum(float(e["epoch_seconds"]) for e in epochs) / 60,
        "ips": sum(float(e["images_per_s"]) for e in epochs) / len(epochs),
        "epochs": len(epochs),
    }


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "runs/ablation"
    names = [n for n in ("none", "se", "eca", "cbam", "vit") if os.path.exists(os.path.join(folder, n, "test.json"))]
    rows = [row(folder, n) for n in names]
    detection = any("AP" in r["test"] for r in rows)
    if detection:
        print("| backbone | test AP | AP50 | AP75 | best val AP | parameters | GFLOPs/image | train time | train images/s |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print("| model | test accuracy | best val accuracy | parameters | GFLOPs/image | train time | train images/s |")
        print("|---|---|---|---|---|---|---|")
    for r in rows:
        label = "ViT" if r["name"] == "vit" else f"ResNet, attn {r['name']}"
        cost = (f"{r['params']:.2f}M | {r['gflops']:.4f} | {r['minutes']:.1f} min ({r['epochs']} epochs) | "
                f"{r['ips']:.0f} |")
        t = r["test"]
        if detection:
            print(f"| {label} | {t['AP']:.3f} | {t['AP50']:.3f} | {t['AP75']:.3f} | {r['val']:.3f} | {cost}")
        else:
            print(f"| {label} | {100 * t['accuracy']:.2f}% | {100 * r['val']:.2f}% | {cost}")


if __name__ == "__main__":
    main()
