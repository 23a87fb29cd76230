#!/usr/bin/env python3
"""What a captioner that knew every item would score: each scene's ground truth written in one fixed pattern.

  /usr/bin/python3 benchmarks/caption_template_ceiling.py data/scenes_test [--attnvision BIN]

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
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

NOUNS = {  # instances.json's category name -> the grammar's first noun for it, singular and plural
    "T-shirt/top": ("top", "tops"), "Trouser": ("pair of trousers", "pairs of trousers"),
    "Pullover": ("pullover", "pullovers"), "Dress": ("dress", "dresses"), "Coat": ("coat", "coats"),
    "Sandal": ("sandal", "sandals"), "Shirt": ("shirt", "shirts"), "Sneaker": ("sneaker", "sneakers"),
    "Bag": ("bag", "bags"), "Ankle boot": ("ankle boot", "ankle boots"),
}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def with_article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def list_phrase(items, category_name):
    """The grammar's list of a scene's items (annotations in painting order): kinds grouped, groups in order of
    their first item; a colour for several items only when they share it. Returns the text and whether the first
    group is plural."""
    groups = []
    for item in items:
        for group in groups:
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a scenes folder: DIR/instances.json and DIR/captions.json")
    ap.add_argument("--attnvision", default="build/pipelines/cli/attnvision", help="the attnvision binary")
    args = ap.parse_args()

    instances = json.load(open(os.path.join(args.data, "instances.json")))
    category_name = {c["id"]: c["name"] for c in instances["categories"]}
    items_of = {}
    for a in sorted(instances["annotations"], key=lambda a: a["id"]):
        items_of.setdefault(a["image_id"], []).append(a)
    missing = [im["file_name"] for im in instances["images"] if im["id"] not in items_of]
    if missing:
        sys.exit(f"{args.data}/instances.json: {len(missing)} images without items, e.g. {missing[0]}")

    print(f"{len(instances['images'])} scenes, {len(instances['annotations'])} items: every item's kind and colour right")
    print(f"{'pattern':36s} {'BLEU-4':>8s} {'CIDEr-D':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, pattern in PATTERNS.items():
            results = [{"image_id": im["id"], "caption": pattern(*list_phrase(items_of[im["id"]], category_name))}
                       for im in instances["images"]]
            path = os.path.join(tmp, "results.json")
            json.dump(results, open(path, "w"))
            out = subprocess.run([args.attnvision, "eval-caption", "--gt", os.path.join(args.data, "captions.json"),
                                  "--results", path, "--json"], check=True, capture_output=True, text=True).stdout
            scores = json.loads(out)
            print(f"{name:36s} {scores['Bleu_4']:8.4f} {scores['CIDEr']:8.4f}")


if __name__ == "__main__":
    main()
