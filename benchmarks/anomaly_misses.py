#!/usr/bin/env python3
"""Where an anomaly model's slice AUROC goes: the AUROC of each kind of lesion slice against every clean slice,
by the size of the slice's largest lesion and by its organ, and the lesion slices the model doubts most.

    attnvision saliency data/phantoms_test --no-outputs --json > scores.jsonl
    /usr/bin/python3 benchmarks/anomaly_misses.py data/phantoms_test scores.jsonl [--list 20] [--against other.jsonl]
        [--bootstrap 1000]

A slice's score is its p(lesion) from the saliency JSON lines (one per slice; the first method's line is read).
Each band's AUROC ranks that band's lesion slices against all clean slices (ties count one half), so a band
whose AUROC is low is where the overall figure is lost. "Doubted" lesion slices are those scored below the 95th
percentile of the clean slices' scores: at that threshold 5% of clean slices are called anomalous.

With --against, a second model's scores on the same slices: its AUROC, the AUROC of the two averaged (their
logits summed: a two-model ensemble), and how many doubted lesion slices the two share. Shared doubts mean the
slices are hard for this recipe, not one run's bad luck; an ensemble cannot lift those.

With --bootstrap N, how precisely the set measures the slice AUROC: N resamples of its series with replacement
(a series' slices stay together, as they share a scan's noise and anatomy; fixed seed), and the 2.5th and 97.5th
percentiles of their AUROC, with the share of resamples at or above 0.99.
"""
import argparse
import bisect
import collections
import json
import math
import os
import random


def auroc(positives, negatives):
    negatives = sorted(negatives)
    if not positives or not negatives:
        return float("nan")
    wins = 0.0
    for x in positives:
        lo = bisect.bisect_left(negatives, x)
        hi = bisect.bisect_right(negatives, x)
        wins += lo + 0.5 * (hi - lo)
    return wins / (len(positives) * len(negatives))


def read_scores(path):
    """A slice's path (normalised) -> its p(lesion), from saliency JSON lines (a slice's first line)."""
    score_of = {}
    for line in open(path):
        row = json.loads(line)
        if "error" in row:
            raise SystemExit(f"{path}: {row['path']}: {row['error']}")
        score_of.setdefault(os.path.normpath(row["path"]), row["score"])
    return score_of


def series_scores(truth, data, scores_path):
    """Per series, in lesions.json's order: its clean slices' scores, and (score, slice entry) for each of its
    lesion slices."""
    score_of = read_scores(scores_path)
    out = []
    for series in truth["series"]:
        clean, lesion_slices = [], []
        for s in series["slices"]:
            path = os.path.normpath(os.path.join(data, s["file"]))
            if path not in score_of:
                raise SystemExit(f"{scores_path}: no score for {path}")
            if s["lesions"]:
                lesion_slices.append((score_of[path], s))
            else:
                clean.append(score_of[path])
        out.append((clean, lesion_slices))
    return out


def pooled(per_series):
    """series_scores' lists joined: every clean slice's score, and every lesion slice's (score, slice entry)."""
    return [x for c, _ in per_series for x in c], [x for _, l in per_series for x in l]


def bootstrap_auroc(per_series, resamples, seed=0):
    """Slice AUROCs of `resamples` draws of the series with replacement, sorted."""
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        clean, lesion_slices = pooled([per_series[rng.randrange(len(per_series))] for _ in per_series])
        values.append(auroc([x for x, _ in lesion_slices], clean))
    return sorted(v for v in values if not math.isnan(v))


def logit(p):
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p / (1 - p))


def doubted_slices(clean, lesion_slices):
    """The clean slices' 95th percentile, and the lesion slices scored below it, lowest first."""
    threshold = sorted(clean)[int(0.95 * (len(clean) - 1))]
    return threshold, sorted((x for x in lesion_slices if x[0] < threshold), key=lambda x: x[0])


def size_band(diameter_mm):
    for limit, name in ((6, "under 6 mm"), (8, "6-8 mm"), (12, "8-12 mm")):
        if diameter_mm < limit:
            return name
    return "12 mm and over"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="a phantom set (attnvision synth phantoms): DIR/lesions.json")
    ap.add_argument("scores", help="JSON lines of `attnvision saliency DIR --no-outputs --json`")
    ap.add_argument("--list", type=int, default=20, help="doubted lesion slices to list, lowest score first")
    ap.add_argument("--against", help="a second model's JSON lines on the same slices, to compare and average")
    ap.add_argument("--bootstrap", type=int, default=0, help="series resamples for the AUROC's 95%% interval (0: none)")
    args = ap.parse_args()

    truth = json.load(open(os.path.join(args.data, "lesions.json")))
    per_series = series_scores(truth, args.data, args.scores)
    clean, lesion_slices = pooled(per_series)

    bands = collections.defaultdict(list)
    for score, s in lesion_slices:
        largest = max(s["lesions"], key=lambda l: l["diameter_mm"])
        bands[("largest lesion", size_band(largest["diameter_mm"]))].append(score)
        bands[("its organ", largest["organ"])].append(score)

    print(f"{len(lesion_slices)} lesion slices, {len(clean)} clean; slice AUROC "
          f"{auroc([x for x, _ in lesion_slices], clean):.4f}")
    order = ["under 6 mm", "6-8 mm", "8-12 mm", "12 mm and over"]
    for kind in ("largest lesion", "its organ"):
        keys = sorted((k for k in bands if k[0] == kind),
                      key=lambda k: order.index(k[1]) if k[1] in order else k[1])
        for k in keys:
            print(f"  {kind:15} {k[1]:15} {len(bands[k]):5} slices  AUROC {auroc(bands[k], clean):.4f}")

    threshold, doubted = doubted_slices(clean, lesion_slices)
    print(f"\nlesion slices below the clean slices' 95th percentile (p {threshold:.3f}): {len(doubted)}")
    for score, s in doubted[:args.list]:
        lesions = ", ".join(f"{l['organ']} {l['diameter_mm']:.1f} mm {l['contrast_hu']:+.0f} HU" for l in s["lesions"])
        print(f"  p {score:.3f}  {s['file']}: {lesions}")

    if args.against:
        other_clean, other_lesion = pooled(series_scores(truth, args.data, args.against))
        _, other_doubted = doubted_slices(other_clean, other_lesion)
        both_clean = [logit(a) + logit(b) for a, b in zip(clean, other_clean)]
        both_lesion = [logit(a[0]) + logit(b[0]) for a, b in zip(lesion_slices, other_lesion)]
        shared = {s["file"] for _, s in doubted} & {s["file"] for _, s in other_doubted}
        print(f"\nagainst {args.against}: its slice AUROC {auroc([x for x, _ in other_lesion], other_clean):.4f}, "
              f"the two averaged (logits) {auroc(both_lesion, both_clean):.4f}; doubted lesion slices "
              f"{len(doubted)} here, {len(other_doubted)} there, {len(shared)} in both")

    if args.bootstrap > 0:
        values = bootstrap_auroc(per_series, args.bootstrap)
        low, high = values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]
        print(f"\nseries bootstrap ({len(values)} resamples of {len(per_series)} series): slice AUROC 95% interval "
              f"{low:.4f}-{high:.4f}; {sum(v >= 0.99 for v in values) / len(values):.1%} of resamples at or above 0.99")


if __name__ == "__main__":
    main()
