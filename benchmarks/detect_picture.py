#!/usr/bin/env python3
"""The README's detection picture: the shipped detector's boxes on the first six test scenes.

    /usr/bin/python3 benchmarks/detect_picture.py [--scenes data/scenes_test] [--out docs/images/detect_scenes.png]

Each scene is enlarged 3x (bicubic) so that the labels drawn on it are legible, then `attnvision detect --out`
draws its boxes at the default score threshold (the detector itself resizes the input back to 128x128), and the
six overlays are laid out 3 x 2 with 4-pixel white gaps.
"""
import argparse
import os
import subprocess
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/pipelines/cli/attnvision"))
    ap.add_argument("--scenes", default=os.path.join(ROOT, "data/scenes_test"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs/images/detect_scenes.png"))
    ap.add_argument("--scale", type=int, default=3)
    args = ap.parse_args()
    names = sorted(os.listdir(os.path.join(args.scenes, "images")))[:6]
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big")
        os.makedirs(big)
        for name in names:
            im = Image.open(os.path.join(args.scenes, "images", name)).convert("RGB")
            im.resize((im.width * args.scale, im.height * args.scale), Image.BICUBIC).save(os.path.join(big, name))
        drawn = os.path.join(tmp, "drawn")
        subprocess.run([args.binary, "detect", big, "--out", drawn], check=True, stdout=subprocess.DEVNULL)
        # detect --out keeps each input's path below its argument, the folder "big" included.
        tiles = [Image.open(os.path.join(drawn, "big", n + ".boxes.png")).convert("RGB") for n in names]
        w, h, gap = tiles[0].width, tiles[0].height, 4
        sheet = Image.new("RGB", (3 * w + 2 * gap, 2 * h + gap), "white")
        for i, tile in enumerate(tiles):
            sheet.paste(tile, ((i % 3) * (w + gap), (i // 3) * (h + gap)))
        sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
