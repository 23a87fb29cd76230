#!/usr/bin/python3
"""`attnvision caption one.png` from a cold start against the Python peer doing the same, in one run.

    /usr/bin/python3 benchmarks/caption_cold_start.py [--image PNG] [--weights CKPT] [--beam 3] [--rounds 5]

Each round starts a fresh process on each side and times it from spawn to exit (wall clock): attnvision
(`caption IMAGE --weights CKPT --beam K`: process start, libtorch, reading the checkpoint, decoding the image, the
encoder and beam search) and benchmarks/py_caption_peer.py (python start, `import torch`, the same checkpoint,
image, network and beam search). Each side runs with torch on 1 and on 2 threads, and the peer with each of
two allocators: tcmalloc preloaded (as attnvision links it) and glibc's malloc keeping freed memory in
transparent huge pages (GLIBC_TUNABLES=glibc.malloc.hugetlb=1, as attnvision asks tcmalloc for its heap);
each side is compared at its fastest plan. The sides alternate; the table shows
the medians per plan, the ratio of the best medians (peer / attnvision), and whether all captions agree word for
word. Defaults: the shipped captioner and the first image of data/scenes_test (made by
`attnvision synth scenes --out data/scenes_test --images 1000 --seed 2 --split test`).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def timed(cmd, env=None):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return time.perf_counter() - t0, out.strip().split("\t", 1)[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/pipelines/cli/attnvision"))
    ap.add_argument("--weights", default=os.path.join(ROOT, "models/pretrained/scenes_captioner.safetensors"))
    ap.add_argument("--image", default="")
    ap.add_argument("--beam", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    image = args.image
    if not image:
        folder = os.path.join(ROOT, "data/scenes_test/images")
        image = os.path.join(folder, sorted(os.listdir(folder))[0])
    ours_cmd = [args.binary, "caption", image, "--weights", args.weights, "--beam", str(args.beam)]
    peer_cmd = [sys.executable, os.path.join(HERE, "py_caption_peer.py"), image, "--weights", args.weights, "--beam",
                str(args.beam)]
    plain = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith(("MALLOC_", "GLIBC_"))}
    # The sides and their allocator set-ups: (label, command, environment).
    sides = [("attnvision", ours_cmd, None),
             ("peer glibc+THP", peer_cmd, {**plain, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
                                           "MALLOC_MMAP_THRESHOLD_": "17179869184",
                                           "MALLOC_TRIM_THRESHOLD_": "17179869184"})]
    if os.path.exists(TCMALLOC):
        sides.append(("peer tcmalloc", peer_cmd, {**plain, "LD_PRELOAD": TCMALLOC}))
    plans = (1, 2)
    runs = {(label, t): [] for label, _, _ in sides for t in plans}
    captions = set()
    for _, cmd, env in sides:
        timed(cmd, env)  # page cache warm for every side: a cold start, not a cold disk
    for r in range(args.rounds):
        for t in plans:
            for label, cmd, env in sides:
                seconds, caption = timed(cmd + ["--threads", str(t)], env)
                runs[(label, t)].append(seconds)
                captions.add(caption)
        print(f"round {r + 1}: " + ", ".join(f"{s} {t}t {v[-1]:.3f} s" for (s, t), v in runs.items()), file=sys.stderr)
    print(f"caption one image from a cold start, beam {args.beam}, {os.cpu_count()} cores, median of {args.rounds} "
          f"rounds ({os.path.basename(image)})")
    best = {}
    for (label, t), v in runs.items():
        print(f"  {label:<15} {t} thread{'s' if t > 1 else ' '}  {statistics.median(v):.3f} s  (best {min(v):.3f} s)")
        side = label.split()[0]
        best[side] = min(best.get(side, float("inf")), statistics.median(v))
    agree = len(captions) == 1
    print(f"  peer / attnvision at each one's fastest plan: {best['peer'] / best['attnvision']:.2f}x; captions "
          f"{'agree' if agree else 'DIFFER'}: \"{sorted(captions)[0]}\"")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
