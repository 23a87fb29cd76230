#!/usr/bin/env python3
"""Test inputs and independent references for tests/vision/test_image_io.cpp and test_transforms.cpp.

    /usr/bin/python3 tests/data/vision/make_refs.py [--peers ../shared/peers]

References come from Pillow (Debian python3-pil 9.4), torchvision 0.14 and the Python peer
(peers/py_classify_folder.py, whose preprocess() is the pipeline attnvision must reproduce); the photo-like
inputs come from peers/make_images.py. Deterministic: same libraries -> same bytes.

Written here (all tiny):
  resize_refs.bin / resize_refs.txt   Pillow Image.resize outputs for inputs that the C++ test regenerates
                                      with pattern() (a 32-bit integer hash; see the test), one manifest
                                      line per case: filter channels kind in_w in_h out_w out_h offset
  photo_*.jpg, gray_*.jpg, *.png      eval-transform inputs;  *.pil.png  Pillow's decode of the JPEGs
  eval_refs.txt / eval_*.f32          CHW float32 (little endian) eval-transform outputs, manifest lines:
                                      input channels height width crop_pct interp mean.. std.. ref tolerance
  fmt_*                               one small picture in every format and mode read_image supports, with
                                      the expected pixels as raw arrays (fmt_*.u8 / .u16, row-major HWC)
  exif_*                              EXIF orientation inputs and their displayed pixels
  draft_refs.txt / *.draft_WxH.pil.png  Pillow's Image.draft(mode, (W, H)) decodes of the JPEGs (reduced reads),
                                      one manifest line per case: input W H ref; eval_*_draft_*.f32 the
                                      peer's preprocess of a drafted decode
  bomb_100000x100000.png              a complete, valid PNG whose IHDR declares 100000 x 100000
  float.tif, anim.webp                valid files read_image refuses (float samples, animation)
"""
import argparse
import importlib.util
import os
import struct
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
T = Image.Transpose
# EXIF 2.32 tag 0x0112 -> the PIL transpose that shows the picture upright.
ORIENT = {1: None, 2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
          6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
           "box": Image.BOX, "hamming": Image.HAMMING, "lanczos": Image.LANCZOS}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def out(name):
    return os.path.join(HERE, name)


def pattern(w, h, c, kind):
    """Bytes the C++ test recomputes: a 32-bit integer hash of the byte index (noise), or a wrapped
    gradient plus a little of that hash (smooth areas with sharp edges)."""
    i = np.arange(w * h * c, dtype=np.uint64)
    x = (i * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    if kind == "noise":
        v = x >> np.uint64(24)
    else:
        ch = i % np.uint64(c)
        px = (i // np.uint64(c)) % np.uint64(w)
        py = i // np.uint64(w * c)
        v = (px * np.uint64(9) + py * np.uint64(5) + ch * np.uint64(70) + (x >> np.uint64(29))) % np.uint64(256)
    return v.astype(np.uint8).reshape((h, w, c) if c > 1 else (h, w))


def make_resize_refs():
    cases = []
    sizes = [((61, 47), (17, 13)),   # shrink, odd sizes
             ((200, 150), (23, 19)),  # strong shrink: wide kernels
             ((13, 9), (29, 23)),     # enlarge
             ((30, 20), (41, 11)),    # enlarge one axis, shrink the other
             ((30, 20), (30, 7)),     # width unchanged: vertical pass only
             ((30, 20), (11, 20)),    # height unchanged: horizontal pass only
             ((30, 20), (30, 20))]    # unchanged: a copy
    for filt in ("bilinear", "bicubic", "nearest"):
        for c, kind in ((1, "noise"), (3, "noise"), (3, "smooth"), (4, "noise")):
            for (iw, ih), (ow, oh) in sizes:
                cases.append((filt, c, kind, iw, ih, ow, oh))
    for filt in ("box", "hamming", "lanczos"):
        for (iw, ih), (ow, oh) in sizes[:4]:
            cases.append((filt, 3, "smooth", iw, ih, ow, oh))
    blob = bytearray()
    lines = []
    for filt, c, kind, iw, ih, ow, oh in cases:
        im = Image.fromarray(pattern(iw, ih, c, kind), MODES[c])
        res = np.asarray(im.resize((ow, oh), FILTERS[filt]))
        lines.append(f"{filt} {c} {kind} {iw} {ih} {ow} {oh} {len(blob)}")
        blob += res.tobytes()
    open(out("resize_refs.bin"), "wb").write(bytes(blob))
    open(out("resize_refs.txt"), "w").write("\n".join(lines) + "\n")


def png_bytes(arr, bit_depth, color_type):
    """A minimal PNG writer for what Pillow cannot write (16-bit RGB) and for hand-made headers."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2" if bit_depth == 16 else "u1").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def pnm_bytes(arr, maxval):
    kind = b"P6" if arr.ndim == 3 else b"P5"
    h, w = arr.shape[:2]
    dt = ">u2" if maxval > 255 else "u1"
    return kind + b"\n# made by make_refs.py\n%d %d\n%d\n" % (w, h, maxval) + arr.astype(dt).tobytes()


def plain_pnm_bytes(arr):
    """Plain (ASCII) P2 / P3, which Pillow does not write."""
    kind = b"P3" if arr.ndim == 3 else b"P2"
    h, w = arr.shape[:2]
    rows = [b" ".join(b"%d" % v for v in arr[y].reshape(-1)) for y in range(h)]
    return kind + b"\n# plain\n%d %d\n255\n" % (w, h) + b"\n".join(rows) + b"\n"


def make_format_files(make_image):
    rng = np.random.default_rng(7)
    rgb = np.asarray(make_image(rng, 12, 8))
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    alpha = pattern(12, 8, 1, "noise")
    rgba = np.dstack([rgb, alpha])
    g16 = (gray.astype(np.uint32) * 257 + pattern(12, 8, 1, "noise")).clip(0, 65535).astype(np.uint16)
    rgb16 = (rgb.astype(np.uint32) * 257 + pattern(12, 8, 3, "noise")).clip(0, 65535).astype(np.uint16)

    for name, arr in (("rgb", rgb), ("gray", gray), ("rgba", rgba)):
        open(out(f"fmt_{name}.u8"), "wb").write(arr.tobytes())
    open(out("fmt_g16.u16"), "wb").write(g16.astype("<u2").tobytes())
    open(out("fmt_rgb16.u16"), "wb").write(rgb16.astype("<u2").tobytes())

    Image.fromarray(rgb).save(out("fmt_rgb.png"))
    Image.fromarray(rgb).save(out("fmt_rgb.bmp"))
    Image.fromarray(rgb).save(out("fmt_rgb.tif"))
    Image.fromarray(rgb).save(out("fmt_rgb.webp"), lossless=True)
    Image.fromarray(rgb).save(out("fmt_rgb.ppm"))
    Image.fromarray(gray).save(out("fmt_gray.png"))
    Image.fromarray(gray).save(out("fmt_gray.tif"))
    Image.fromarray(gray).save(out("fmt_gray.pgm"))
    Image.fromarray(gray).save(out("fmt_gray.bmp"))
    Image.fromarray(rgba).save(out("fmt_rgba.png"))
    # exact: keep the colour of fully transparent pixels (libwebp may drop it otherwise)
    Image.fromarray(rgba).save(out("fmt_rgba.webp"), lossless=True, exact=True)
    Image.fromarray(rgba).save(out("fmt_rgba.tif"))  # ExtraSamples = 2 (unassociated alpha)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(out("fmt_la.png"))
    Image.fromarray(g16).save(out("fmt_g16.png"))
    Image.fromarray(g16).save(out("fmt_g16.tif"))
    open(out("fmt_g16.pgm"), "wb").write(pnm_bytes(g16, 65535))
    open(out("fmt_rgb_plain.ppm"), "wb").write(plain_pnm_bytes(rgb))
    open(out("fmt_gray_plain.pgm"), "wb").write(plain_pnm_bytes(gray))
    open(out("fmt_rgb16.png"), "wb").write(png_bytes(rgb16, 16, 2))
    open(out("fmt_rgb16.ppm"), "wb").write(pnm_bytes(rgb16, 65535))
    # Palette: expected pixels are the palette lookup Pillow does.
    pal = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.save(out("fmt_pal.png"))
    open(out("fmt_pal.u8"), "wb").write(np.asarray(pal.convert("RGB")).tobytes())
    pal.save(out("fmt_palt.png"), transparency=int(np.asarray(pal)[0, 0]))
    open(out("fmt_palt.u8"), "wb").write(np.asarray(Image.open(out("fmt_palt.png")).convert("RGBA")).tobytes())
    bw = Image.fromarray(gray).convert("1")
    bw.save(out("fmt_bw.pbm"))
    open(out("fmt_bw.u8"), "wb").write(np.asarray(bw.convert("L")).tobytes())


def make_exif_files(make_image):
    rng = np.random.default_rng(11)
    src = make_image(rng, 12, 8)
    src16 = Image.fromarray((np.asarray(src.convert("L")).astype(np.uint16) * 257 + 3))
    Image.fromarray(np.asarray(src)).save(out("exif_src.png"))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        src.save(out(f"exif_{o}.jpg"), quality=95, exif=exif.tobytes())
        shown = ImageOps.exif_transpose(Image.open(out(f"exif_{o}.jpg")))
        explicit = Image.open(out(f"exif_{o}.jpg"))
        explicit = explicit if ORIENT[o] is None else explicit.transpose(ORIENT[o])
        assert np.array_equal(np.asarray(shown), np.asarray(explicit)), o
        shown.save(out(f"exif_{o}.jpg.pil.png"))
        src.save(out(f"exif_{o}.tif"), tiffinfo={0x0112: o})
        (src if ORIENT[o] is None else src.transpose(ORIENT[o])).save(out(f"exif_{o}.ref.png"))
        if o in (3, 6):
            src.save(out(f"exif_{o}.png"), exif=exif.tobytes())
        if o in (6, 8):
            src.save(out(f"exif_{o}.webp"), exif=exif.tobytes(), lossless=True)
    Image.open(out("exif_1.jpg")).save(out("exif_raw.jpg.pil.png"))  # every exif_N.jpg holds these pixels
    src16.save(out("exif_g16_6.tif"), tiffinfo={0x0112: 6})
    open(out("exif_g16_6.u16"), "wb").write(np.asarray(src16.transpose(ORIENT[6])).astype("<u2").tobytes())


def write_f32(name, chw):
    open(out(name), "wb").write(np.ascontiguousarray(chw, dtype="<f4").tobytes())


def make_eval_refs(make_image, peer):
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    mean_np = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
    std_np = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)

    rng = np.random.default_rng(3)
    make_image(rng, 97, 61).save(out("photo_97x61.jpg"), quality=90, subsampling=2)
    make_image(rng, 50, 83).save(out("photo_50x83.jpg"), quality=85, subsampling=2)
    make_image(rng, 64, 48).convert("L").save(out("gray_64x48.jpg"), quality=90)
    rgba = np.dstack([np.asarray(make_image(rng, 40, 30)), pattern(40, 30, 1, "smooth")])
    Image.fromarray(rgba).save(out("rgba_40x30.png"))
    la = np.dstack([np.asarray(make_image(rng, 36, 28).convert("L")), pattern(36, 28, 1, "noise")])
    Image.fromarray(la, "LA").save(out("la_36x28.png"))
    g16 = np.asarray(make_image(rng, 45, 30).convert("L")).astype(np.uint32) * 257
    g16 = (g16 + pattern(45, 30, 1, "noise")).clip(0, 65535).astype(np.uint16)
    Image.fromarray(g16).save(out("g16_45x30.png"))
    rgb16 = np.asarray(make_image(rng, 33, 26)).astype(np.uint32) * 257
    rgb16 = (rgb16 + pattern(33, 26, 3, "smooth").astype(np.uint32) * 3).clip(0, 65535).astype(np.uint16)
    open(out("rgb16_33x26.png"), "wb").write(png_bytes(rgb16, 16, 2))
    for name in ("photo_97x61.jpg", "photo_50x83.jpg", "gray_64x48.jpg"):
        Image.open(out(name)).save(out(name + ".pil.png"))

    lines = []

    def line(inp, ch, h, w, crop, interp, m, s, ref, tol):
        vals = " ".join(repr(float(v)) for v in list(m) + list(s))
        lines.append(f"{inp} {ch} {h} {w} {crop!r} {interp} {vals} {ref} {tol!r}")

    # The peer itself, on the committed files (or on the 8-bit image our 16-bit rule makes).
    def peer_case(inp, size, crop, interp, src_path=None):
        arr, _ = peer.preprocess(src_path or out(inp), size, crop, FILTERS[interp], mean_np, std_np)
        ref = f"eval_{os.path.splitext(inp)[0]}_{interp}_{size}_{crop}.f32"
        write_f32(ref, arr)
        line(inp, 3, size, size, crop, interp, mean, std, ref, 0.0)

    peer_case("photo_97x61.jpg", 24, 0.875, "bilinear")
    peer_case("photo_97x61.jpg", 24, 0.875, "bicubic")
    peer_case("photo_97x61.jpg", 24, 0.9, "nearest")
    peer_case("photo_50x83.jpg", 24, 0.875, "bilinear")
    peer_case("photo_50x83.jpg", 20, 1.0, "bicubic")
    peer_case("gray_64x48.jpg", 24, 0.875, "bilinear")
    peer_case("rgba_40x30.png", 24, 0.875, "bicubic")
    peer_case("la_36x28.png", 24, 0.875, "bilinear")
    with tempfile.TemporaryDirectory() as tmp:
        # 16-bit: round(v / 257) to 8 bits (the documented rule), then exactly the peer's steps.
        for inp, arr16 in (("g16_45x30.png", g16), ("rgb16_33x26.png", rgb16)):
            p8 = os.path.join(tmp, inp)
            Image.fromarray(((arr16.astype(np.uint32) + 128) // 257).astype(np.uint8)).save(p8)
            peer_case(inp, 24, 0.875, "bilinear", p8)

    # channels 1: the peer's steps with convert('L') (no peer runs gray models).
    def gray_case(inp, size, crop, interp, m, s):
        im = Image.open(out(inp)).convert("L")
        w, h = im.size
        scale = int(size / crop)
        nw, nh = (scale, int(scale * h / w)) if w <= h else (int(scale * w / h), scale)
        im = im.resize((nw, nh), FILTERS[interp])
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        arr = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.float32) * (1.0 / 255.0)
        arr = (arr - np.float32(m)) / np.float32(s)
        ref = f"eval_{os.path.splitext(inp)[0]}_L_{interp}_{size}.f32"
        write_f32(ref, arr[None])
        line(inp, 1, size, size, crop, interp, [m], [s], ref, 0.0)

    gray_case("photo_97x61.jpg", 24, 0.875, "bicubic", 0.5, 0.25)
    gray_case("rgba_40x30.png", 24, 0.875, "bilinear", 0.45, 0.3)

    # timm's composition with torchvision for what the peer does not cover: a non-square input size
    # (timm 0.6: Resize((floor(H / crop), floor(W / crop))), aspect not kept) and crop_pct > 1 (CenterCrop
    # pads). ToTensor divides by 255 where numpy multiplies by 1/255: 1 ulp apart, hence the tolerance.
    from torchvision import transforms as tv

    def tv_case(inp, h, w, crop, interp, tag):
        if h != w:
            resize = tv.Resize((int(h / crop), int(w / crop)), interpolation=tv.InterpolationMode(interp))
        else:
            resize = tv.Resize(int(h / crop), interpolation=tv.InterpolationMode(interp))
        tf = tv.Compose([resize, tv.CenterCrop((h, w)), tv.ToTensor(), tv.Normalize(mean, std)])
        arr = tf(Image.open(out(inp)).convert("RGB")).numpy()
        ref = f"eval_{os.path.splitext(inp)[0]}_{tag}.f32"
        write_f32(ref, arr)
        line(inp, 3, h, w, crop, interp, mean, std, ref, 1e-6)

    tv_case("photo_97x61.jpg", 20, 28, 0.875, "bilinear", "tv_20x28")
    tv_case("photo_50x83.jpg", 26, 18, 0.9, "bicubic", "tv_26x18")
    tv_case("photo_97x61.jpg", 24, 24, 1.15, "bilinear", "tv_pad")
    tv_case("photo_50x83.jpg", 24, 24, 0.875, "bicubic", "tv_24")
    open(out("eval_refs.txt"), "w").write("\n".join(lines) + "\n")


def make_draft_refs(peer):
    # Pillow's Image.draft: libjpeg decodes at the largest scale 1/d (d in 8, 4, 2) with floor(side / d) >= the
    # requested side, each side then ceil(side / d). read_image_reduced must give these pixels exactly, and the
    # batch decoder's fast path must give the peer's preprocess of them.
    lines = []
    for inp, req_w, req_h in (("photo_97x61.jpg", 24, 24), ("photo_97x61.jpg", 12, 12), ("photo_50x83.jpg", 6, 10),
                              ("gray_64x48.jpg", 16, 12), ("photo_97x61.jpg", 49, 31), ("exif_6.jpg", 2, 3)):
        im = Image.open(out(inp))
        im.draft(im.mode, (req_w, req_h))
        ref = f"{inp}.draft_{req_w}x{req_h}.pil.png"
        im.convert(im.mode).save(out(ref))  # stored orientation: Pillow's draft knows no EXIF
        lines.append(f"{inp} {req_w} {req_h} {ref}")
    open(out("draft_refs.txt"), "w").write("\n".join(lines) + "\n")
    # The eval transform of the batch decoder's fast path for a 24 x 24 input at crop 0.875: draft to the resize's
    # 27 x 27, then exactly the peer's steps on that picture.
    mean = np.asarray([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 1, 3)
    with tempfile.TemporaryDirectory() as tmp:
        im = Image.open(out("photo_97x61.jpg"))
        im.draft("RGB", (27, 27))
        drafted = os.path.join(tmp, "drafted.png")
        im.convert("RGB").save(drafted)
        arr, _ = peer.preprocess(drafted, 24, 0.875, FILTERS["bilinear"], mean, std)
        write_f32("eval_photo_97x61_draft_bilinear_24_0.875.f32", arr)


def make_bomb():
    # A complete PNG (valid CRCs, IDAT, IEND) claiming 100000 x 100000 gray pixels: its few bytes of zlib
    # data would inflate to 10 GB. Only the header check stands between it and the allocator.
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (100001 * 4), 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    open(out("bomb_100000x100000.png"), "wb").write(data)


def make_unsupported():
    # Decodable by OpenCV or libwebp but outside read_image's contract: a float TIFF, an animated WebP.
    Image.fromarray(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), "F").save(out("float.tif"))
    frames = [Image.fromarray(pattern(6, 5, 3, k)) for k in ("noise", "smooth")]
    frames[0].save(out("anim.webp"), save_all=True, append_images=frames[1:], lossless=True, duration=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peers", default=os.path.join(HERE, "..", "..", "..", "..", "shared", "peers"),
                    help="folder with make_images.py and py_classify_folder.py")
    args = ap.parse_args()
    sys.path.insert(0, args.peers)
    make_image = load_module(os.path.join(args.peers, "make_images.py"), "make_images").make_image
    peer = load_module(os.path.join(args.peers, "py_classify_folder.py"), "py_classify_folder")
    make_resize_refs()
    make_format_files(make_image)
    make_exif_files(make_image)
    make_eval_refs(make_image, peer)
    make_draft_refs(peer)
    make_bomb()
    make_unsupported()
    total = sum(os.path.getsize(out(f)) for f in os.listdir(HERE) if f != "make_refs.py")
    print(f"wrote {len(os.listdir(HERE)) - 1} files, {total / 1024:.1f} KiB, to {HERE}")


if __name__ == "__main__":
    main()
