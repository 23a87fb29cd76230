#!/usr/bin/env python3
"""Decode + eval preprocessing: attnvision (read_image + apply_eval_transform) against the Python peer's
preprocess() (PIL), on the same JPEG, in the same run; also checks that both produce the same tensor.

    cmake --build build --target bench_preprocess
    /usr/bin/python3 benchmarks/bench_preprocess.py [--image photo.jpg] [--iters 50] [--interp bilinear]

Without --image a 1280x960 photo-like JPEG (peers/make_images.py, seed 0, quality 90) is written to a
temporary folder. Prints one JSON object: both medians, their ratio, the parity check and the
OpenCV-vs-Pillow resize differences reported by bench_preprocess. Both sides run in alternating rounds;
the speedup is the median of the per-round ratios (the machine is shared and its load drifts).
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "benchmarks", "bench_preprocess"))
    ap.add_argument("--peers", default=os.path.join(HERE, "..", "..", "shared", "peers"))
    ap.add_argument("--image", default=None)
    ap.add_argument("--iters", type=int, default=60, help="timed runs per side, split over --rounds")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--crop-pct", type=float, default=0.875)
    ap.add_argument("--interp", default="bilinear", choices=["bilinear", "bicubic", "nearest"])
    ap.add_argument("--threads", type=int, default=0, help="OpenCV threads for the C++ side (0 = OpenCV default)")
    args = ap.parse_args()

    sys.path.insert(0, args.peers)
    peer = load(os.path.join(args.peers, "py_classify_folder.py"), "py_classify_folder")
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        image = args.image
        if image is None:
            make_image = load(os.path.join(args.peers, "make_images.py"), "make_images").make_image
            image = os.path.join(tmp, "photo_1280x960.jpg")
            make_image(np.random.default_rng(0), 1280, 960).save(image, quality=90, subsampling=2)

        mean = np.asarray([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 1, 3)
        std = np.asarray([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 1, 3)
        interp = peer._INTERP[args.interp]
        dump = os.path.join(tmp, "cpp.f32")
        cmd = [args.binary, image, "--iters", str(max(1, args.iters // args.rounds)), "--size", str(args.size),
               "--crop-pct", str(args.crop_pct), "--interp", args.interp, "--dump", dump]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        # Alternate short rounds of both so that a change in the machine's load hits both alike.
        py_rounds, cpp_rounds, ref, cpp = [], [], None, None
        for _ in range(args.rounds):
            times = []
            for i in range(args.iters // args.rounds + 1):
                t0 = time.perf_counter()
                ref, _ = peer.preprocess(image, args.size, args.crop_pct, interp, mean, std)
                if i >= 1:
                    times.append(time.perf_counter() - t0)
            py_rounds.append(float(np.median(times)) * 1e3)
            cpp = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            cpp_rounds.append(cpp["median_ms"])
        got = np.fromfile(dump, dtype="<f4").reshape(ref.shape)

    py_ms = float(np.median(py_rounds))
    cpp_split = {k: float(np.median([r[k] for r in cpp_rounds])) for k in cpp_rounds[0]}
    cpp_ms = cpp_split["total"]
    ratios = [p / c["total"] for p, c in zip(py_rounds, cpp_rounds)]
    print(json.dumps({
        "image": [cpp["width"], cpp["height"]], "size": args.size, "crop_pct": args.crop_pct, "interp": args.interp,
        "load_average": os.getloadavg()[0],
        "python_peer_preprocess_ms": round(py_ms, 3),
        "attnvision_read_plus_transform_ms": round(cpp_ms, 3),
        "attnvision_split_ms": {k: round(v, 3) for k, v in cpp_split.items()},
        "speedup": round(float(np.median(ratios)), 2),
        "speedup_per_round": [round(r, 2) for r in ratios],
        "opencv_threads": cpp["opencv_threads"],
        "max_abs_diff_vs_peer": float(np.abs(got - ref).max()),
        "opencv_vs_pil_8bit_levels": cpp["opencv_vs_pil_8bit_levels"],
    }, indent=1))


if __name__ == "__main__":
    main()
