#!/usr/bin/python3
"""Reference digests for pydicom's public test corpus, from two decoders that are not ours.

Run with Debian's Python (python3-pydicom) and DCMTK's command-line tools installed:

    /usr/bin/python3 tests/data/dicom/make_corpus_reference.py > tests/data/dicom/corpus_reference.json
    /usr/bin/python3 tests/data/dicom/make_corpus_reference.py tests/data/dicom/synthetic \
        > tests/data/dicom/synthetic_reference.json

For every file under pydicom's data/test_files (or the folder given) it records
  * pydicom's view: no Pixel Data / unreadable / pixel error, or the decoded stored values
    (pixel_array, masked to BitsStored and sign-extended as DICOM defines; YBR colour converted to
    RGB with pydicom's own convert_color_space, palette colour through apply_color_lut) and the
    modality values (apply_modality_lut);
  * DCMTK's view: dcm2pnm / dcmj2pnm / dcml2pnm (by transfer syntax) run with no modality LUT and no
    VOI window and an IDENTITY presentation shape (so MONOCHROME1 is not inverted for display), writing
    an n-bit ASCII PNM with n = BitsStored, which maps the full stored range onto the output one to
    one; the stored values are recovered exactly (offset by 2**(n-1) for signed data).

Digests (the C++ test computes the same): shape, min, max, exact sum, a 64-bit position-weighted hash
  h = sum(u_i * w_i) mod 2**64,  u_i = value as int64 viewed as uint64,  w_i = (2i+1) * 0x9E3779B97F4A7C15,
over the values in C order (frame, row, column, channel), the mean, and 64 values at evenly spaced
flat positions (for comparisons with a tolerance).

Display windows (monochrome images): DCMTK's 8-bit rendering (modality LUT on) through each window of
the file (+Wi n), each VOI LUT (+Wl n), its min-max window (+Wm) and two CT presets (+Ww c w), and
percentile windows computed here with numpy (np.percentile, then the LINEAR_EXACT function of
PS3.3 C.11.2.1.3.2 truncated to 8 bits), all as integer digests of the 8-bit output.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, convert_color_space

CORPUS = "/usr/lib/python3/dist-packages/pydicom/data/test_files"
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
SAMPLES = 64

JPEG_TS = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
           "1.2.840.10008.1.2.4.70"}
JPEGLS_TS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}


def int_digest(values):
    a = np.ascontiguousarray(values).astype(np.int64)
    flat = a.reshape(-1)
    u = flat.view(np.uint64)
    w = (np.arange(flat.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)) * GOLDEN
    with np.errstate(over="ignore"):
        h = int(np.sum(u * w, dtype=np.uint64))
    idx = [(k * (flat.size - 1)) // (SAMPLES - 1) for k in range(SAMPLES)]
    return {
        "shape": list(a.shape),
        "min": int(flat.min()),
        "max": int(flat.max()),
        "sum": int(flat.sum(dtype=object)),
        "hash": str(h),
        "mean": float(flat.mean()),
        "samples": [int(flat[i]) for i in idx],
    }


def float_digest(values):
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    idx = [(k * (flat.size - 1)) // (SAMPLES - 1) for k in range(SAMPLES)]
    return {
        "shape": list(np.asarray(values).shape),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": float(flat.mean()),
        "samples": [float(flat[i]) for i in idx],
    }


def stored_values(ds, arr):
    """Masks to BitsStored (at HighBit) and sign-extends, as PS3.5 8.1.1 defines the stored value."""
    bits_stored = int(ds.BitsStored)
    high_bit = int(getattr(ds, "HighBit", bits_stored - 1))
    shift = high_bit - bits_stored + 1
    signed = int(getattr(ds, "PixelRepresentation", 0)) == 1 and int(ds.SamplesPerPixel) == 1
    a = arr.astype(np.int64)
    if int(ds.BitsAllocated) == 1:
        return a
    u = a & ((1 << int(ds.BitsAllocated)) - 1)
    u = (u >> shift) & ((1 << bits_stored) - 1)
    if signed:
        u = np.where(u >= (1 << (bits_stored - 1)), u - (1 << bits_stored), u)
    return u


def modality_values(ds, stored):
    groups = ds.get("PerFrameFunctionalGroupsSequence", [])
    if groups and all("PixelValueTransformationSequence" in g for g in groups):
        # Enhanced objects: pydicom 2.3 leaves per-frame rescale to the caller.
        out = []
        for frame, group in zip(stored, groups):
            t = group.PixelValueTransformationSequence[0]
            out.append(frame * float(t.RescaleSlope) + float(t.RescaleIntercept))
        return np.stack(out)
    if "ModalityLUTSequence" in ds:
        return np.stack([apply_modality_lut(f, ds) for f in stored])
    return apply_modality_lut(stored, ds)


def pydicom_view(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as e:  # noqa: BLE001 - any failure is the recorded outcome
            return {"status": "unreadable", "error": f"{type(e).__name__}: {e}"[:160]}, None
        if "PixelData" not in ds:
            sop = ds.get("SOPClassUID")
            return {"status": "no_pixel_data", "sop_class": str(sop.name) if sop else ""}, ds
        try:
            arr = ds.pixel_array
        except Exception as e:  # noqa: BLE001
            return {"status": "pixel_error", "error": f"{type(e).__name__}: {e}"[:160]}, ds
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(ds.SamplesPerPixel)
        # Always (frames, rows, cols[, 3]).
        if frames == 1:
            arr = arr[np.newaxis, ...]
        view = {"status": "image"}
        photometric = str(ds.PhotometricInterpretation)
        if photometric == "PALETTE COLOR":
            view["stored"] = int_digest(apply_color_lut(arr, ds))
        elif samples == 3:
            if photometric.startswith("YBR_FULL"):
                arr = convert_color_space(arr, photometric, "RGB", per_frame=True)
                view["converted_ybr"] = True
            view["stored"] = int_digest(arr)
        else:
            stored = stored_values(ds, arr)
            view["stored"] = int_digest(stored)
            modality = modality_values(ds, stored)
            view["modality"] = float_digest(modality)
            view["windows"] = window_views(path, ds, modality)
        view["photometric"] = photometric
        return view, ds


def read_ascii_pnm(path):
    with open(path) as f:
        tokens = f.read().split()
    magic, width, height, maxval = tokens[0], int(tokens[1]), int(tokens[2]), int(tokens[3])
    channels = 3 if magic == "P3" else 1
    values = np.array([int(t) for t in tokens[4:]], dtype=np.int64)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return values.reshape(shape), maxval


def run_tool(tool, options, path):
    """Runs a DCMTK tool writing one PNM per frame; returns the frames as arrays, or an error line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f")
        run = subprocess.run([tool, *options, "+Fa", path, out], capture_output=True, text=True)
        files = sorted(os.listdir(tmp), key=lambda n: int(n.split(".")[1]))
        if run.returncode != 0 or not files:
            lines = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.startswith(("E:", "F:"))]
            return None, (lines[0] if lines else "no output")[:160]
        return [read_pnm(os.path.join(tmp, name)) for name in files], None


def read_pnm(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic in (b"P2", b"P3"):
        return read_ascii_pnm(path)[0]
    from PIL import Image
    return np.array(Image.open(path)).astype(np.int64)


def tool_for(ds):
    ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    return "dcmj2pnm" if ts in JPEG_TS else "dcml2pnm" if ts in JPEGLS_TS else "dcm2pnm"


def percentile_8bit(modality, lo, hi, invert):
    a, b = np.percentile(modality, lo), np.percentile(modality, hi)
    c, w = (a + b) / 2, max(b - a, 1e-6)
    low, high = (255.0, 0.0) if invert else (0.0, 255.0)
    y = np.where(modality <= c - w / 2, low,
                 np.where(modality > c + w / 2, high, ((modality - c) / w + 0.5) * (high - low) + low))
    return np.floor(np.clip(y, 0, 255)).astype(np.int64)


def window_views(path, ds, modality):
    """8-bit renderings by DCMTK through the windows of the file and a few chosen ones."""
    tool = tool_for(ds)
    specs = {}
    centers = ds.get("WindowCenter")
    count = 0 if centers is None else (len(centers) if isinstance(centers, pydicom.multival.MultiValue) else 1)
    for n in range(1, count + 1):
        specs[f"file:{n}"] = ["+Wi", str(n)]
    for n in range(1, len(ds.get("VOILUTSequence", [])) + 1):
        specs[f"voi-lut:{n}"] = ["+Wl", str(n)]
    specs["minmax"] = ["+Wm"]
    specs["40,400"] = ["+Ww", "40", "400"]
    specs["-600,1500"] = ["+Ww", "-600", "1500"]
    views = {}
    for spec, options in specs.items():
        frames, error = run_tool(tool, options + ["+op"], path)
        views[spec] = {"error": error} if frames is None else int_digest(np.stack(frames))
    invert = str(ds.PhotometricInterpretation) == "MONOCHROME1"
    views["percentile:1,99"] = int_digest(percentile_8bit(modality, 1, 99, invert))
    views["percentile:5,95"] = int_digest(percentile_8bit(modality, 5, 95, invert))
    return views


def dcmtk_view(path, ds):
    if ds is None or "PixelData" not in ds:
        return None
    tool = tool_for(ds)
    try:
        bits_stored = int(ds.BitsStored)
        signed = int(getattr(ds, "PixelRepresentation", 0)) == 1
        samples = int(ds.SamplesPerPixel)
    except Exception as e:  # noqa: BLE001
        return {"status": "failed", "tool": tool, "error": f"attributes: {e}"[:160]}
    if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        bits_stored = int(ds.RedPaletteColorLookupTableDescriptor[2])  # RGB out at the palette's depth
    frames, error = run_tool(tool, ["-M", "-W", "+Pid", "+opn", str(bits_stored)], path)
    if frames is None:
        return {"status": "failed", "tool": tool, "error": error}
    if samples == 1 and signed:
        frames = [f - (1 << (bits_stored - 1)) for f in frames]
    return {"status": "decoded", "tool": tool, "stored": int_digest(np.stack(frames))}


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else CORPUS
    entries = []
    for root, dirs, names in os.walk(corpus):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, corpus)
            pyd, ds = pydicom_view(path)
            entry = {"file": rel, "pydicom": pyd}
            dcmtk = dcmtk_view(path, ds)
            if dcmtk is not None:
                entry["dcmtk"] = dcmtk
            entries.append(entry)
    header = {"corpus": corpus if corpus == CORPUS else "(relative)", "pydicom_version": pydicom.__version__,
              "dcmtk_version": subprocess.run(["dcm2pnm", "--version"], capture_output=True,
                                              text=True).stdout.splitlines()[0]}
    # One entry per line keeps diffs of the committed file readable.
    out = json.dumps(header)[:-1] + ',"entries":[\n'
    out += ",\n".join(json.dumps(e, separators=(",", ":")) for e in entries)
    sys.stdout.write(out + "\n]}\n")

if __name__ == "__main__":
    main()
