#!/usr/bin/python3
"""`attnvision caption one.png` from a cold start against the Python peer doing the same, in one run.

    /usr/bin/python3 benchmarks/caption_cold_start.py [--image PNG] [--weights CKPT] [--beam 3] [--rounds 5]

Each round starts a fresh process on each side and times it from spawn to exit (wall clock): attnvision
(`caption IMAGE --weights CKPT --beam K`: process start, libtorch, reading the checkpoint, decoding the image, the
encoder and beam search) and benchmarks/py_caption_peer.py (python start, `import torch`, the same checkpoint,
image, network and beam search). The sides alternate; the table shows the medians, the best of each, the ratio
peer / attnvision, and whether the two captions agree word for word. The peer runs with tcmalloc preloaded, as
attnvision links it. Defaults: the shipped captioner and the first image of data/scenes_test (made by
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
    peer_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if os.path.exists(TCMALLOC):
        peer_env["LD_PRELOAD"] = TCMALLOC
    timed(ours_cmd), timed(peer_cmd, peer_env)  # page cache warm for both: a cold start, not a cold disk
    ours, peer, agree = [], [], True
    for r in range(args.rounds):
        t, ours_caption = timed(ours_cmd)
        ours.append(t)
        t, peer_caption = timed(peer_cmd, peer_env)
        peer.append(t)
        agree = agree and ours_caption == peer_caption
        print(f"round {r + 1}: attnvision {ours[-1]:.3f} s, peer {peer[-1]:.3f} s", file=sys.stderr)
    print(f"caption one image from a cold start, beam {args.beam}, {os.cpu_count()} cores, {args.rounds} rounds "
          f"({os.path.basename(image)})")
    print(f"  attnvision    median {statistics.median(ours):.3f} s  best {min(ours):.3f} s  \"{ours_caption}\"")
    print(f"  python peer   median {statistics.median(peer):.3f} s  best {min(peer):.3f} s  \"{peer_caption}\"")
    print(f"  peer / attnvision: {statistics.median(peer) / statistics.median(ours):.2f}x; captions "
          f"{'agree' if agree else 'DIFFER'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
