#!/usr/bin/python3
"""DICOM decode throughput: attnvision against DCMTK's own tool and pydicom, in the same run.

    /usr/bin/python3 benchmarks/dicom_throughput.py [--attnvision build/pipelines/cli/attnvision]
                                                     [--slices 100] [--repeats 3] [--work DIR]

--attnvision names a binary with the `dicom` subcommand (pipelines/cmd_dicom.cpp). Needs DCMTK's tools
(dcm2pnm, dcml2pnm, dcmcrle, dcmcjpls) and Debian's python3-pydicom, numpy and Pillow.

Generates a series of 512x512 16-bit signed CT slices (an elliptical phantom in Hounsfield units with
noise, written with pydicom: uncompressed explicit VR little endian), then RLE and JPEG-LS lossless
copies of it with DCMTK's dcmcrle and dcmcjpls. For each encoding it prints slices/s for
  attnvision   `attnvision dicom DIR --check` (one process: parse, decode, modality values as float32)
  attnvision+  `attnvision dicom DIR --raw OUT` (the same, plus one float TIFF written per slice)
  dcm2pnm      `dcm2pnm -o FILE` per slice (DCMTK's tool: parse, decode, modality transform, no output
               file; dcml2pnm for JPEG-LS, which dcm2pnm cannot decode); it is one process per file,
               which is how the tool works, so its start-up is part of its per-slice time
  pydicom      dcmread + pixel_array + apply_modality_lut in this process (no JPEG-LS decoder in Debian's)
and the ratio attnvision / dcm2pnm (higher is faster). Each figure is the best of --repeats runs: the
machine is shared and noisy. The decoded values are checked to agree (pydicom vs attnvision's TIFF).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixel_data_handlers.util import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.10.1234.77."


def phantom(k, n, rng):
    """A 512x512 slice of an elliptical body phantom (HU) that changes along the series."""
    y, x = np.mgrid[-256:256, -256:256].astype(np.float64)
    t = k / max(n - 1, 1)
    hu = np.full((512, 512), -1000.0)                                    # air
    body = (x / 220) ** 2 + (y / (170 + 20 * t)) ** 2 < 1
    hu[body] = 40                                                        # soft tissue
    for side in (-1, 1):
        lung = ((x - side * 95) / 70) ** 2 + (y / (110 - 30 * t)) ** 2 < 1
        hu[lung] = -850                                                  # lungs
    spine = (x / 22) ** 2 + ((y - 120) / 22) ** 2 < 1
    hu[spine] = 700 + 300 * t                                            # bone
    hu += rng.normal(0, 12, hu.shape)
    return np.clip(np.round(hu), -1024, 3071).astype(np.int16)


def write_series(folder, n):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    for k in range(n):
        path = os.path.join(folder, f"ct{k:04d}.dcm")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = ROOT + f"3.{k}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.Modality = "Bench^Phantom", "BENCH", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = ROOT + "1", ROOT + "2"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-250, -250, -1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 1.25
        ds.Rows, ds.Columns = 512, 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "40", "400"
        ds.PixelData = phantom(k, n, rng).tobytes()
        ds.save_as(path, write_like_original=False)


def convert(tool, src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        subprocess.run([tool, os.path.join(src, name), os.path.join(dst, name)], check=True)


def best(repeats, work):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def run_quiet(args):
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{result.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--attnvision", default=os.path.join(here, "..", "build", "pipelines", "cli", "attnvision"))
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default=None, help="folder for the generated series (default: a temporary one)")
    args = parser.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="attnvision_dicom_bench_")
    series = {"uncompressed": os.path.join(work, "raw"), "RLE": os.path.join(work, "rle"),
              "JPEG-LS": os.path.join(work, "jls")}
    if not os.path.isdir(series["uncompressed"]) or len(os.listdir(series["uncompressed"])) != args.slices:
        shutil.rmtree(work, ignore_errors=True)
        write_series(series["uncompressed"], args.slices)
        convert("dcmcrle", series["uncompressed"], series["RLE"])
        convert("dcmcjpls", series["uncompressed"], series["JPEG-LS"])
    n = args.slices
    print(f"{n} slices of 512x512 16-bit CT per encoding, best of {args.repeats}; slices/s (higher is faster)")
    print(f"{'encoding':<13}{'attnvision':>11}{'attnvision+':>12}{'dcm2pnm':>9}{'pydicom':>9}{'ratio':>8}")
    for encoding, folder in series.items():
        files = [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
        tool = "dcml2pnm" if encoding == "JPEG-LS" else "dcm2pnm"
        out = os.path.join(work, "out_" + encoding)
        ours = best(args.repeats, lambda: run_quiet([args.attnvision, "dicom", folder, "--check"]))
        ours_raw = best(args.repeats, lambda: run_quiet([args.attnvision, "dicom", folder, "--raw", out]))
        dcmtk = best(args.repeats, lambda: [run_quiet([tool, "-o", f]) for f in files])

        def with_pydicom():
            for f in files:
                ds = pydicom.dcmread(f)
                apply_modality_lut(ds.pixel_array, ds)

        try:
            pyd = best(args.repeats, with_pydicom)
            pyd_rate = f"{n / pyd:9.1f}"
        except Exception:  # noqa: BLE001 - Debian's pydicom has no JPEG-LS decoder
            pyd_rate = f"{'n/a':>9}"
        if encoding == "uncompressed":  # the numbers agree: our TIFF pages vs pydicom's modality values
            from PIL import Image
            first = np.array(Image.open(os.path.join(out, "ct0000.tiff")))
            ds = pydicom.dcmread(files[0])
            if not np.array_equal(first, apply_modality_lut(ds.pixel_array, ds).astype(np.float32)):
                sys.exit("attnvision's values differ from pydicom's")
        print(f"{encoding:<13}{n / ours:11.1f}{n / ours_raw:12.1f}{n / dcmtk:9.1f}{pyd_rate}{dcmtk / ours:8.2f}")
    start = time.perf_counter()
    for _ in range(20):
        run_quiet(["dcm2pnm", "--version"])
    print(f"(dcm2pnm's process start alone: {(time.perf_counter() - start) / 20 * 1000:.1f} ms)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
