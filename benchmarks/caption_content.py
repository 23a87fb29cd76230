#!/usr/bin/env python3
"""What a captioner's list captions say about a scenes folder's items, against its instances.json.

  attnvision eval-caption --data data/scenes_test --beam 3 --write-results R.json
  /usr/bin/python3 benchmarks/caption_content.py data/scenes_test/instances.json R.json

A list caption ("there are a red sneaker two bags and a blue top on a plain background") names every item it
means with a count, a colour and a kind; the grammar's other patterns (relations between two items) name only
two and are counted apart. For each number of items in a scene it prints how many items the captions name, and
over all items: the share named with the right kind, and with the right kind and colour (matched as multisets
per scene), and the scenes whose caption names exactly their items with kinds and colours. The nouns, numbers and
openers mirror the grammar in datasets/synth/scene_captions.cpp. Needs only Python's standard library.
"""
import argparse
import collections
import json
import re
import sys

KINDS = {  # the grammar's nouns (singular) -> Fashion-MNIST class name, as instances.json's categories
    "top": "T-shirt/top", "tshirt": "T-shirt/top", "pair of trousers": "Trouser", "pair of pants": "Trouser",
    "pullover": "Pullover", "sweater": "Pullover", "jumper": "Pullover", "dress": "Dress", "coat": "Coat",
    "jacket": "Coat", "sandal": "Sandal", "shirt": "Shirt", "blouse": "Shirt", "sneaker": "Sneaker",
    "trainer": "Sneaker", "bag": "Bag", "handbag": "Bag", "ankle boot": "Ankle boot", "boot": "Ankle boot",
}
PLURALS = {
    "tops": "top", "tshirts": "tshirt", "pairs of trousers": "pair of trousers", "pairs of pants": "pair of pants",
    "pullovers": "pullover", "sweaters": "sweater", "jumpers": "jumper", "dresses": "dress", "coats": "coat",
    "jackets": "jacket", "sandals": "sandal", "shirts": "shirt", "blouses": "blouse", "sneakers": "sneaker",
    "trainers": "trainer", "bags": "bag", "handbags": "handbag", "ankle boots": "ankle boot", "boots": "boot",
}
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
OPENERS = r"^(there (is|are)|an image of|a picture of|a photo of|a picture showing|an image showing) "
CLOSERS = r" (in the picture|in the image|on an? \w+ background)$"
# Longest phrases first, so that "ankle boot" wins over "boot".
PHRASES = sorted([(p.split(), KINDS[PLURALS.get(p, p)]) for p in list(KINDS) + list(PLURALS)], key=lambda x: -len(x[0]))


def list_items(caption, colours):
    """The (colour, kind) of every item a list caption names, or None for a caption of another pattern."""
    words = re.sub(CLOSERS, "", re.sub(OPENERS, "", caption)).split()
    items, i = [], 0
    while i < len(words):
        if words[i] == "and" and items:
            i += 1
        count = 1
        if i < len(words) and words[i] in ("a", "an"):
            i += 1
        elif i < len(words) and words[i] in NUMBERS:
            count, i = NUMBERS[words[i]], i + 1
        else:
            return None
        colour = None
        if i < len(words) and words[i] in colours:
            colour, i = words[i], i + 1
        for phrase, kind in PHRASES:
            if words[i:i + len(phrase)] == phrase:
                items += [(colour, kind)] * count
                i += len(phrase)
                break
        else:
            return None
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("instances", help="the scenes folder's instances.json")
    ap.add_argument("results", help="a COCO caption results file (image_id, caption)")
    args = ap.parse_args()
    inst = json.load(open(args.instances))
    captions = {r["image_id"]: r["caption"] for r in json.load(open(args.results))}
    names = {c["id"]: c["name"] for c in inst["categories"]}
    colours = {a["attributes"]["colour"] for a in inst["annotations"]}
    truth = collections.defaultdict(list)
    for a in inst["annotations"]:
        truth[a["image_id"]].append((a["attributes"]["colour"], names[a["category_id"]]))

    named = collections.defaultdict(collections.Counter)  # items in the scene -> {items named: scenes}
    other = items = kind_right = both_right = exact = 0
    for image in inst["images"]:
        if image["id"] not in captions:
            sys.exit(f"{args.results}: no caption for image {image['id']} ({image['file_name']})")
        said = list_items(captions[image["id"]], colours)
        true = truth[image["id"]]
        if said is None:
            other += 1
            continue
        named[len(true)][len(said)] += 1
        items += len(true)
        kind_right += sum((collections.Counter(k for _, k in true) & collections.Counter(k for _, k in said)).values())
        both_right += sum((collections.Counter(true) & collections.Counter(said)).values())
        exact += collections.Counter(true) == collections.Counter(said)
    scenes = len(inst["images"]) - other
    print(f"{scenes} list captions ({other} of other patterns, not counted)")
    for n in sorted(named):
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(named[n].items()))
        print(f"  scenes of {n} item{'s' if n > 1 else ''} ({sum(named[n].values())}): items named {spread}")
    print(f"items named with the right kind: {kind_right / items:.3f}; with kind and colour: {both_right / items:.3f} "
          f"(of {items} items)")
    print(f"scenes whose caption names exactly their items, kinds and colours: {exact / scenes:.3f}")


if __name__ == "__main__":
    main()
