#!/usr/bin/env python3
"""What a captioner that knew every item would score: each scene's ground truth written in one fixed pattern.

  /usr/bin/python3 benchmarks/caption_template_ceiling.py data/scenes_test [--attnvision BIN]
      [--detections RESULTS.json [--min-score S]] [--keep K]

For every image of a scenes folder (attnvision synth scenes) it writes one caption from instances.json alone,
with every item's kind and colour right, grouped by kind as the grammar groups them ("a red sneaker two blue
bags and a white top"; the groups in painting order, where the grammar shuffles them), the first noun of each
kind, in each of the grammar's list patterns that need no more than the items (the plain list, "there is/are
...", "an image of ...", "there is/are ... in the picture"); then scores each set of captions against
captions.json with `attnvision eval-caption --json` (the project's coco-caption metrics) and prints BLEU-4 and
CIDEr-D per pattern. These are not an upper bound on CIDEr-D (a captioner may choose its words per scene), but
they show how much of a score the items alone earn: a captioner must name nearly every item right to approach
them. The nouns mirror the grammar in datasets/synth/scene_captions.cpp. Needs only Python's standard library
and the attnvision binary.

With --detections (a COCO results file of the same images, e.g. `attnvision eval-detect --data DIR
--write-results R.json`, with or without the second stage) it also writes the captions a detector's naming
allows: each item named with the kind of the detection matched to it (detections scoring at least --min-score,
highest score first, each to the unmatched item it overlaps most at IoU >= 0.5, whatever their classes, as
COCO matches), items no detection matches left out, unmatched detections not listed, every colour taken from
the truth. That is what a captioner that listed every detected item, named it as the detector does and always
saw its colour right would score: an optimistic bound for a captioner that reads that detector's kinds.

With --keep K every list stops after each scene's first K items (in painting order): what leaving items out
costs when those named are right. With --ungrouped every item is named on its own, "a green coat and a yellow
coat" where the grammar says "two coats": what a captioner that cannot count could reach at best.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from detect_misses import iou  # noqa: E402  (the same box overlap as detect_misses' matching)

NOUNS = {  # instances.json's category name -> the grammar's first noun for it, singular and plural
    "T-shirt/top": ("top", "tops"), "Trouser": ("pair of trousers", "pairs of trousers"),
    "Pullover": ("pullover", "pullovers"), "Dress": ("dress", "dresses"), "Coat": ("coat", "coats"),
    "Sandal": ("sandal", "sandals"), "Shirt": ("shirt", "shirts"), "Sneaker": ("sneaker", "sneakers"),
    "Bag": ("bag", "bags"), "Ankle boot": ("ankle boot", "ankle boots"),
}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def with_article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def list_phrase(items, category_name, grouped=True):
    """The grammar's list of a scene's items (annotations in painting order): kinds grouped, groups in order of
    their first item; a colour for several items only when they share it (with grouped False every item a group
    of its own). Returns the text and whether the first group is plural."""
    groups = []
    for item in items:
        for group in groups if grouped else []:
            if group[0]["category_id"] == item["category_id"]:
                group.append(item)
                break
        else:
            groups.append([item])
    parts = []
    for i, group in enumerate(groups):
        if i and i + 1 == len(groups):
            parts.append("and")
        one, many = NOUNS[category_name[group[0]["category_id"]]]
        colour = group[0]["attributes"]["colour"]
        if len(group) == 1:
            parts.append(with_article(colour + " " + one))
        else:
            same = all(x["attributes"]["colour"] == colour for x in group)
            count = NUMBERS[len(group)] if len(group) < len(NUMBERS) else "many"
            parts.append(" ".join([count] + ([colour] if same else []) + [many]))
    return " ".join(parts), len(groups[0]) > 1


PATTERNS = {
    "list": lambda text, plural: text,
    "there is/are ...": lambda text, plural: f"there {'are' if plural else 'is'} {text}",
    "an image of ...": lambda text, plural: f"an image of {text}",
    "there is/are ... in the picture": lambda text, plural: f"there {'are' if plural else 'is'} {text} in the picture",
}


def named_by_detections(items, detections, min_score):
    """`items` (one image's annotations, in painting order) as the detections name them: the matched items, in
    their order, each with the category of its detection; and how many of them keep their own kind."""
    kind = {}
    for d in sorted((d for d in detections if d["score"] >= min_score), key=lambda d: -d["score"]):
        best, best_iou = None, 0.5
        for i, item in enumerate(items):
            if i not in kind and iou(d["bbox"], item["bbox"]) >= best_iou:
                best, best_iou = i, iou(d["bbox"], item["bbox"])
        if best is not None:
            kind[best] = d["category_id"]
    named = [dict(item, category_id=kind[i]) for i, item in enumerate(items) if i in kind]
    return named, sum(kind[i] == items[i]["category_id"] for i in kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a scenes folder: DIR/instances.json and DIR/captions.json")
    ap.add_argument("--attnvision", default="build/pipelines/cli/attnvision", help="the attnvision binary")
    ap.add_argument("--detections", help="a COCO results file of the same images: also score the items as its "
                    "detections name them (see above)")
    ap.add_argument("--min-score", type=float, default=0.3, help="with --detections: the lowest score of a "
                    "detection that names an item (default 0.3)")
    ap.add_argument("--keep", type=int, default=0, help="name only each scene's first K items (0: all)")
    ap.add_argument("--ungrouped", action="store_true", help="name every item on its own, never \"two coats\"")
    args = ap.parse_args()
    if args.keep < 0:
        sys.exit("--keep must be 0 (every item) or more")

    instances = json.load(open(os.path.join(args.data, "instances.json")))
    category_name = {c["id"]: c["name"] for c in instances["categories"]}
    items_of = {}
    for a in sorted(instances["annotations"], key=lambda a: a["id"]):
        items_of.setdefault(a["image_id"], []).append(a)
    if args.keep:
        items_of = {image: items[:args.keep] for image, items in items_of.items()}
    missing = [im["file_name"] for im in instances["images"] if im["id"] not in items_of]
    if missing:
        sys.exit(f"{args.data}/instances.json: {len(missing)} images without items, e.g. {missing[0]}")

    def score_all(listed):
        """Print BLEU-4 and CIDEr-D of every pattern over `listed` (image id -> its items to name)."""
        print(f"{'pattern':36s} {'BLEU-4':>8s} {'CIDEr-D':>8s}")
        with tempfile.TemporaryDirectory() as tmp:
            for name, pattern in PATTERNS.items():
                # A scene whose items were all missed still needs a result: an empty list says nothing.
                results = [{"image_id": im["id"],
                            "caption": pattern(*list_phrase(listed[im["id"]], category_name, not args.ungrouped))
                            if listed[im["id"]] else "there is nothing"} for im in instances["images"]]
                path = os.path.join(tmp, "results.json")
                json.dump(results, open(path, "w"))
                out = subprocess.run([args.attnvision, "eval-caption", "--gt", os.path.join(args.data, "captions.json"),
                                      "--results", path, "--json"], check=True, capture_output=True, text=True).stdout
                scores = json.loads(out)
                print(f"{name:36s} {scores['Bleu_4']:8.4f} {scores['CIDEr']:8.4f}")

    total = len(instances["annotations"])
    listed_items = sum(len(items) for items in items_of.values())
    print(f"{len(instances['images'])} scenes, {total} items, {listed_items} of them listed: "
          "every listed item's kind and colour right" + (", each named on its own" if args.ungrouped else ""))
    score_all(items_of)
    if args.detections:
        detections_of = {}
        for d in json.load(open(args.detections)):
            detections_of.setdefault(d["image_id"], []).append(d)
        listed, matched, right = {}, 0, 0
        for im in instances["images"]:
            listed[im["id"]], own_kind = named_by_detections(items_of[im["id"]], detections_of.get(im["id"], []),
                                                             args.min_score)
            matched += len(listed[im["id"]])
            right += own_kind
        print(f"\nnamed by {args.detections} (score >= {args.min_score}): {matched} of {total} items matched "
              f"({matched / total:.1%}), {right} of them with their own kind ({right / total:.1%} of all items); "
              f"colours from the truth")
        score_all(listed)


if __name__ == "__main__":
    main()
