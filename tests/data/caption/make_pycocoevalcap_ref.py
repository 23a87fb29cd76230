#!/usr/bin/env python3
"""Writes pycocoevalcap_ref.json: a small captioning corpus and the scores coco-caption's own scorers give it,
for tests/pipelines/test_caption_scores.cpp (CaptionScores.AgreesWithPycocoevalcap).

    PYTHONPATH=DIR /usr/bin/python3 tests/data/caption/make_pycocoevalcap_ref.py [--scenes data/scenes_test]

DIR holds a checkout of https://github.com/salaniz/pycocoevalcap (the pip package's source, pure Python for
BLEU, ROUGE-L and CIDEr-D) under the name `pycocoevalcap`; nothing of it is copied into this project.
The corpus: the first 40 images of a scenes test set's captions.json (`attnvision synth scenes --out
data/scenes_test --images 1000 --seed 2 --split test`) with their five references, each answered by a candidate
made from its references by a fixed-seed rule that exercises every part of the scores: a reference verbatim,
one with words dropped (brevity), one with words swapped in from another image (idf, clipping), a single word,
two references run together (length penalty), and a reference of another image. Captions are already in
coco-caption's tokenised form (lower-case words, single spaces), so no tokenizer is involved.
"""
import argparse
import json
import os
import random

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", default="data/scenes_test")
    ap.add_argument("--images", type=int, default=40)
    args = ap.parse_args()
    captions = json.load(open(os.path.join(args.scenes, "captions.json")))
    ids = [im["id"] for im in captions["images"]][: args.images]
    refs = {i: [] for i in ids}
    for a in captions["annotations"]:
        if a["image_id"] in refs:
            refs[a["image_id"]].append(a["caption"])
    rng = random.Random(7)
    cands = {}
    for k, i in enumerate(ids):
        own = refs[i]
        other = refs[ids[(k + 1) % len(ids)]]
        words = rng.choice(own).split()
        rule = k % 6
        if rule == 0:
            cand = rng.choice(own)
        elif rule == 1:
            cand = " ".join(w for w in words if rng.random() > 0.4) or words[0]
        elif rule == 2:
            pool = rng.choice(other).split()
            cand = " ".join(rng.choice(pool) if rng.random() < 0.3 else w for w in words)
        elif rule == 3:
            cand = rng.choice(words)
        elif rule == 4:
            cand = own[0] + " " + own[1]
        else:
            cand = rng.choice(other)
        cands[i] = [cand]
    bleu, bleu_per_image = Bleu(4).compute_score(refs, cands, verbose=0)
    rouge, rouge_per_image = Rouge().compute_score(refs, cands)
    cider, cider_per_image = Cider().compute_score(refs, cands)
    out = {
        "generated_by": "tests/data/caption/make_pycocoevalcap_ref.py with salaniz/pycocoevalcap",
        "images": [{"id": i, "references": refs[i], "candidate": cands[i][0]} for i in ids],
        "scores": {"Bleu_1": bleu[0], "Bleu_2": bleu[1], "Bleu_3": bleu[2], "Bleu_4": bleu[3],
                   "ROUGE_L": rouge, "CIDEr": cider},
        "rouge_l_per_image": [float(v) for v in rouge_per_image],
        "cider_d_per_image": [float(v) for v in cider_per_image],
    }
    with open(os.path.join(HERE, "pycocoevalcap_ref.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out["scores"]))


if __name__ == "__main__":
    main()
