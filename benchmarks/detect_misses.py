#!/usr/bin/env python3
"""Where a detector's AP50 goes: each ground-truth box found with its class, found with another class only, or
not found at all, overall and by the item's size.

    attnvision eval-detect --data data/scenes_test --write-results results.json
    /usr/bin/python3 benchmarks/detect_misses.py data/scenes_test/instances.json results.json [--score 0.3]

A box counts as found when a detection at or above --score (the `detect` default, 0.3) overlaps it at IoU >= 0.5;
"another class only" when every such detection names another category (the most confident one is tallied in the
confusion list). Size is the longer side of the box in pixels.

It also reports the class of each box's most confident overlapping detection at any score ("top-1"), the
detector's classification accuracy proper, and with --oracle-results FILE writes the results as a class oracle
would leave them: the top-1 detection of a random --oracle-fraction (default 1) of the boxes it names wrongly
given the box's class, and that box's other detections of the same class dropped. Scoring FILE with
`attnvision eval-detect --gt instances.json --results FILE` then says what AP50 a given classification accuracy
buys with the same boxes and scores. With --classifier CKPT (needs python3-torch) it splits the top-1 by whether
that Fashion-MNIST classifier names the item's source image right.
"""
import argparse
import collections
import json
import random


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
    ap.add_argument("--oracle-results", help="write the class oracle's results here")
    ap.add_argument("--oracle-fraction", type=float, default=1.0,
                    help="the share of wrongly named boxes the oracle corrects (drawn with seed 0)")
    ap.add_argument("--classifier", help="a Fashion-MNIST classifier checkpoint (e.g. "
                    "models/pretrained/fmnist_resnet.safetensors): top-1 split by whether it names the item's "
                    "source image right")
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
    top1_and_oracle(gt, results, args)


def top1_and_oracle(gt, results, args):
    """Top-1 class accuracy by size; the class oracle's results file when asked for."""
    boxes = collections.defaultdict(list)
    for a in gt["annotations"]:
        boxes[a["image_id"]].append(a)
    item_of = []  # per result: the box it overlaps most at IoU >= 0.5, or None
    for r in results:
        best = max(boxes[r["image_id"]], key=lambda a: iou(r["bbox"], a["bbox"]), default=None)
        item_of.append(best if best is not None and iou(r["bbox"], best["bbox"]) >= 0.5 else None)
    top = {}
    for i, (r, a) in enumerate(zip(results, item_of)):
        if a is not None and (a["id"] not in top or r["score"] > results[top[a["id"]]]["score"]):
            top[a["id"]] = i
    named_right = classifier_right(args.classifier, gt["info"]["source"]) if args.classifier else None
    bands = collections.defaultdict(collections.Counter)
    wrong = []
    for a in gt["annotations"]:
        i = top.get(a["id"])
        right = i is not None and results[i]["category_id"] == a["category_id"]
        if i is not None and not right:
            wrong.append(a["id"])
        bands["all"]["right" if right else "other"] += 1
        bands[size_band(a["bbox"])]["right" if right else "other"] += 1
        if named_right is not None:
            source_named = named_right[a["attributes"]["source_index"]]
            bands["classifier right" if source_named else "classifier wrong"]["right" if right else "other"] += 1
    print("top-1 class (the most confident detection at IoU >= 0.5, any score):")
    for band in ("all", "under 24 px", "24-39 px", "40 px and over", "classifier right", "classifier wrong"):
        n = sum(bands[band].values())
        if n:
            print(f"  {band:16s} {100.0 * bands[band]['right'] / n:5.1f}% of {n}")
    if not args.oracle_results:
        return
    rng = random.Random(0)
    corrected = {a for a in wrong if rng.random() < args.oracle_fraction}
    truth = {a["id"]: a["category_id"] for a in gt["annotations"]}
    out = []
    for i, (r, a) in enumerate(zip(results, item_of)):
        if a is not None and a["id"] in corrected:
            if top[a["id"]] != i and r["category_id"] == truth[a["id"]]:
                continue  # the oracle's corrected top-1 takes this one's place
            if top[a["id"]] == i:
                r = dict(r, category_id=truth[a["id"]])
        out.append(r)
    with open(args.oracle_results, "w") as f:
        json.dump(out, f)
    total = len(gt["annotations"])
    print(f"class oracle: {len(corrected)} of {len(wrong)} wrong top-1 classes corrected, top-1 now "
          f"{100.0 * (bands['all']['right'] + len(corrected)) / total:.1f}%; results in {args.oracle_results}")


def classifier_right(checkpoint, source):
    """Per image of the scenes' Fashion-MNIST split (`fashion-mnist:test` or `:train`, read from Debian's IDX files
    as benchmarks/py_train_peer.py reads them): whether the classifier names it right (that peer's ResNet, float32,
    the checkpoint's mean and std)."""
    import os
    import sys

    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from checkpoint_io import load_checkpoint
    from py_train_peer import FMNIST_DIR, ResNet, read_idx

    split = "t10k" if source.endswith(":test") else "train"
    root = os.environ.get("ATTNVISION_FASHION_MNIST_DIR", FMNIST_DIR)
    images = read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    state, cfg = load_checkpoint(checkpoint)
    model = ResNet(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    x = (torch.from_numpy(images.copy()).unsqueeze(1).float() / 255.0 - cfg["mean"][0]) / cfg["std"][0]
    with torch.inference_mode():
        named = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)]).numpy()
    right = named == labels
    print(f"classifier {checkpoint}: {100.0 * right.mean():.2f}% of {len(right)} {source} images")
    return right


if __name__ == "__main__":
    main()
