#!/usr/bin/python3
"""Forward throughput of attnvision against Python PyTorch at its best, in the same run, fp32 and bf16: the README's
inference table.

    /usr/bin/python3 benchmarks/inference_vs_peer.py [--models resnet50,...] [--batches 1,16]
        [--precisions fp32,bf16] [--rounds 2] [--seconds 3] [--binary build/pipelines/cli/attnvision]
        [--json out.json]

For every model: benchmarks/py_forward_peer.py writes one set of random weights (timm's names) and both sides
load that file (attnvision checks every tensor against its own architecture). For every model, batch and
precision:
  1. the peer tries every plan (torch threads 1 and 2, OpenBLAS 1 and 2, NCHW and, for CNNs, channels-last) and
     keeps its fastest;
  2. then `rounds` times, alternating which side goes first: `attnvision bench --json` (its default plan for the
     architecture and precision) and the peer at its best plan, each timing enough forwards for about `seconds`
     seconds after a warm-up forward.
Each side's figure is its best round. Both run with the allocator tuned as PyTorch's guide advises
(MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_; attnvision links tcmalloc). The matmul peak is the one
`attnvision bench` measures in the same process, in the run's precision (the best of five 2048^3 products in each
library: fp32 in OpenBLAS and oneDNN, bf16 in oneDNN), and the share of it is bench's `percent_of_matmul_peak`:
its fastest forward's GFLOP/s, measured the way the peak is, best over the rounds.
bf16 agreement: `attnvision eval --predictions` on all 10,000 Fashion-MNIST test images with the shipped
classifier, fp32 against bf16, top-1 agreement; and max |bf16 - fp32 reference| of the logits on every timm
parity fixture, as the parity tests print it (build/tests/test_golden, build/tests/test_models).
Prints a Markdown table and, with --json, writes every figure.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(HERE, "py_forward_peer.py")
PY = "/usr/bin/python3"
MODELS = ["resnet50", "seresnet50", "cbam_resnet50", "vit_tiny_patch16_224", "vit_small_patch16_224",
          "vit_base_patch16_224"]
ENV = dict(os.environ, MALLOC_MMAP_THRESHOLD_="17179869184", MALLOC_TRIM_THRESHOLD_="17179869184")


def run_json(cmd):
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def iters_for(ips, batch, seconds):
    return max(2, min(200, round(seconds * ips / batch)))


def attnvision(binary, model, weights, batch, precision, iters):
    return run_json([binary, "bench", "--model", model, "--weights", weights, "--batch", str(batch), "--precision",
                     precision, "--iters", str(iters), "--warmup", "1", "--json"])


def peer(model, weights, batch, precision, iters, plans="all"):
    return run_json([PY, PEER, "--model", model, "--weights", weights, "--batch", str(batch), "--precision", precision,
                     "--iters", str(iters), "--warmup", "1", "--plans", plans])


def measure(binary, model, weights, batch, precision, rounds, seconds):
    search = peer(model, weights, batch, precision, iters=2 if batch > 1 else 10)
    best = search["best_plan"]
    plan = f"{best['torch_threads']},{best['blas_threads']},{best['layout']}"
    iters = iters_for(search["images_per_s"], batch, seconds)
    ours, theirs = [], []
    for r in range(rounds):
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for side in order:
            if side == "ours":
                ours.append(attnvision(binary, model, weights, batch, precision, iters))
            else:
                theirs.append(peer(model, weights, batch, precision, iters, plan)["images_per_s"])
    a = max(ours, key=lambda j: j["images_per_s"])
    return {"model": model, "batch": batch, "precision": precision, "iters": iters,
            "attnvision_images_per_s": a["images_per_s"], "attnvision_rounds": [j["images_per_s"] for j in ours],
            "attnvision_plan": {k: a[k] for k in ("torch_threads", "blas_threads", "omp_wait_policy")},
            "attnvision_precision_ran": a["precision"],
            "peer_images_per_s": max(theirs), "peer_rounds": theirs, "peer_plan": best, "peer_plan_search": search["plans"],
            "ratio": a["images_per_s"] / max(theirs), "achieved_gflop_s": a["achieved_gflop_s"],
            "matmul_peak_gflop_s": a["matmul_peak_gflop_s"],
            "fastest_forward_gflop_s": max(j["fastest_forward_gflop_s"] for j in ours),
            "percent_of_matmul_peak": max(j["percent_of_matmul_peak"] for j in ours)}


def top1_agreement(binary):
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for p in ("fp32", "bf16"):
            path = os.path.join(tmp, p + ".jsonl")
            r = subprocess.run([binary, "eval", "--data", "fashion-mnist:test", "--precision", p, "--confusion-png", "",
                                "--predictions", path], env=ENV, capture_output=True, text=True)
            if r.returncode != 0:
                return {"error": r.stderr.strip()}
            with open(path) as f:
                rows[p] = [json.loads(line)["predicted"] for line in f]
    same = sum(a == b for a, b in zip(rows["fp32"], rows["bf16"]))
    return {"images": len(rows["fp32"]), "agree": same, "agreement": same / len(rows["fp32"])}


def parity_fixture_differences():
    out = {}
    for test, flt in (("test_golden", "*CnnParity*"), ("test_models", "VitParity.MatchesTimm*")):
        exe = os.path.join(ROOT, "build", "tests", test)
        if not os.path.exists(exe):
            continue
        r = subprocess.run([exe, f"--gtest_filter={flt}"], capture_output=True, text=True)
        for m in re.finditer(r"\[ bf16 +\] (\S+) logits: max \|bf16 - fp32 reference\| = (\S+) \((\S+)% of", r.stdout):
            out[m.group(1)] = {"max_abs": float(m.group(2)), "percent_of_scale": float(m.group(3))}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per side and round (about)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "pipelines", "cli", "attnvision"))
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--no-agreement", action="store_true", help="skip the bf16 agreement checks")
    args = ap.parse_args()

    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            weights = os.path.join(tmp, model + ".safetensors")
            subprocess.run([PY, PEER, "--model", model, "--write-weights", weights], env=ENV, check=True)
            for batch in (int(b) for b in args.batches.split(",")):
                for precision in args.precisions.split(","):
                    row = measure(args.binary, model, weights, batch, precision, args.rounds, args.seconds)
                    rows.append(row)
                    print(f"{model} batch {batch} {precision}: attnvision {row['attnvision_images_per_s']:.2f}, peer "
                          f"{row['peer_images_per_s']:.2f} images/s ({row['ratio']:.2f}x), "
                          f"{row['percent_of_matmul_peak']:.0f}% of the matmul peak", file=sys.stderr, flush=True)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
              "rounds": args.rounds, "rows": rows, "minutes": (time.time() - started) / 60}
    if not args.no_agreement and "bf16" in args.precisions:
        result["bf16_top1_agreement_fashion_mnist"] = top1_agreement(args.binary)
        result["bf16_parity_fixture_logits"] = parity_fixture_differences()

    fp32 = {(r["model"], r["batch"]): r["attnvision_images_per_s"] for r in rows if r["precision"] == "fp32"}
    print("| model | batch | precision | attnvision images/s | peer images/s (best plan) | ratio | % of matmul peak | "
          "bf16 / fp32 |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        p = r["peer_plan"]
        speedup = ""
        if r["precision"] == "bf16" and (r["model"], r["batch"]) in fp32:
            speedup = f"{r['attnvision_images_per_s'] / fp32[(r['model'], r['batch'])]:.2f}x"
        print(f"| {r['model']} | {r['batch']} | {r['attnvision_precision_ran']} | {r['attnvision_images_per_s']:.2f} | "
              f"{r['peer_images_per_s']:.2f} (torch {p['torch_threads']}, BLAS {p['blas_threads']}, {p['layout']}) | "
              f"{r['ratio']:.2f}x | {r['percent_of_matmul_peak']:.0f}% | {speedup} |")
    if "bf16_top1_agreement_fashion_mnist" in result:
        a = result["bf16_top1_agreement_fashion_mnist"]
        if "agreement" in a:
            print(f"\nbf16 top-1 agreement with fp32, shipped classifier, {a['images']} Fashion-MNIST test images: "
                  f"{100 * a['agreement']:.2f}% ({a['images'] - a['agree']} differ)")
        for name, d in result["bf16_parity_fixture_logits"].items():
            print(f"bf16 logits on parity fixture {name}: max |bf16 - fp32 reference| {d['max_abs']:.4g} "
                  f"({d['percent_of_scale']:.2f}% of max(1, max|ref|))")
    print(f"\n{result['machine']}; {args.rounds} rounds; {result['minutes']:.1f} minutes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
