#!/usr/bin/env python3
"""Where a detector's AP50 goes: each ground-truth box found with its class, found with another class only, or
not found at all, overall and by the item's size.

    attnvision eval-detect --data data/scenes_test --write-results results.json
    /usr/bin/python3 benchmarks/detect_misses.py data/scenes_test/instances.json results.json [--score 0.3]

A box counts as found when a detection at or above --score (the `detect` default, 0.3) overlaps it at IoU >= 0.5;
"another class only" when every such detection names another category (the most confident one is tallied in the
confusion list). Size is the longer side of the box in pixels.
"""
import argparse
import collections
import json


def iou(a, b):
    iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def size_band(box):
    side = max(box[2], box[3])
    return "under 24 px" if side < 24 else ("24-39 px" if side < 40 else "40 px and over")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instances")
    ap.add_argument("results")
    ap.add_argument("--score", type=float, default=0.3)
    args = ap.parse_args()
    with open(args.instances) as f:
        gt = json.load(f)
    with open(args.results) as f:
        results = json.load(f)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    by_image = collections.defaultdict(list)
    for r in results:
        if r["score"] >= args.score:
            by_image[r["image_id"]].append(r)

    outcome = collections.Counter()
    bands = collections.defaultdict(collections.Counter)
    confusions = collections.Counter()
    for a in gt["annotations"]:
        hits = [d for d in by_image[a["image_id"]] if iou(d["bbox"], a["bbox"]) >= 0.5]
        if any(d["category_id"] == a["category_id"] for d in hits):
            kind = "found with its class"
        elif hits:
            kind = "found with another class only"
            best = max(hits, key=lambda d: d["score"])
            confusions[(names[a["category_id"]], names[best["category_id"]])] += 1
        else:
            kind = "not found"
        outcome[kind] += 1
        bands[size_band(a["bbox"])][kind] += 1

    total = len(gt["annotations"])
    print(f"{total} boxes, detections at score >= {args.score}, IoU >= 0.5:")
    for kind in ("found with its class", "found with another class only", "not found"):
        print(f"  {kind:32s} {outcome[kind]:6d}  {100.0 * outcome[kind] / total:5.1f}%")
    print("found with its class, by size:")
    for band in ("under 24 px", "24-39 px", "40 px and over"):
        n = sum(bands[band].values())
        if n:
            print(f"  {band:16s} {bands[band]['found with its class']:5d} of {n:5d}  "
                  f"{100.0 * bands[band]['found with its class'] / n:5.1f}%")
    print("most frequent confusions (true -> named):")
    for (truth, named), n in confusions.most_common(8):
        print(f"  {truth} -> {named}: {n}")


if __name__ == "__main__":
    main()
