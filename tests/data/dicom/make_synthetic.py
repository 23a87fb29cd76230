#!/usr/bin/python3
"""Tiny DICOM files (written with pydicom, not with our code) for features pydicom's corpus lacks:
Modality LUT and VOI LUT sequences, signed data with bits above HighBit, MONOCHROME1, PALETTE COLOR,
planar configuration 1, YBR_FULL, several windows with explanations, an enhanced multi-frame CT with
per-frame rescale and positions, and a small two-series folder for series grouping.

    /usr/bin/python3 tests/data/dicom/make_synthetic.py tests/data/dicom/synthetic

Deterministic (fixed seeds and UIDs); re-running rewrites identical files. The reference digests for
these files come from make_corpus_reference.py run on the folder (pydicom and DCMTK decode them).
"""
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.10.1234."  # fixed test UIDs (no meaning outside these files)
CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
US = "1.2.840.10008.5.1.4.1.1.6.1"


def base(path, sop_class, sop_instance, rows, cols, transfer_syntax=ExplicitVRLittleEndian,
         study="1", series="1"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.PatientName = "Synthetic^Phantom"
    ds.PatientID = "SYN001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = ROOT + "1." + study
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "S" + study
    ds.AccessionNumber = "ACC" + study
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.SeriesInstanceUID = ROOT + "2." + study + "." + series
    ds.SeriesNumber = int(series)
    ds.Modality = "CT"
    ds.Rows = rows
    ds.Columns = cols
    return ds


def mono(ds, stored, bits_allocated, bits_stored, high_bit, signed, photometric="MONOCHROME2",
         raw=None):
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = high_bit
    ds.PixelRepresentation = 1 if signed else 0
    cells = raw if raw is not None else stored
    dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[bits_allocated]
    ds.PixelData = np.ascontiguousarray(cells.astype(np.int64) & ((1 << bits_allocated) - 1)).astype(dtype).tobytes()


def ramp(rows, cols, lo, hi, seed):
    rng = np.random.default_rng(seed)
    base_ramp = np.linspace(lo, hi, rows * cols).reshape(rows, cols)
    return np.clip(np.round(base_ramp + rng.normal(0, (hi - lo) / 20, (rows, cols))), lo, hi).astype(np.int64)


def signed12(out):
    """Signed 12-bit CT in 16-bit cells with junk in bits 12-15, rescale, two windows, a VOI function."""
    path = os.path.join(out, "ct_signed12_junkbits.dcm")
    ds = base(path, CT, ROOT + "3.1", 16, 12)
    stored = ramp(16, 12, -2048, 2047, 1)
    junk = np.random.default_rng(2).integers(0, 16, stored.shape) << 12
    raw = (stored & 0x0FFF) | junk
    mono(ds, stored, 16, 12, 11, True, raw=raw)
    ds.RescaleSlope = "2.5"
    ds.RescaleIntercept = "-1024"
    ds.RescaleType = "HU"
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    ds.save_as(path, write_like_original=False)


def shifted_unsigned(out):
    """Unsigned 10-bit values stored at bits 2-11 (HighBit 11), MONOCHROME1, one window."""
    path = os.path.join(out, "mono1_bits10_shifted.dcm")
    ds = base(path, "1.2.840.10008.5.1.4.1.1.1", ROOT + "3.2", 12, 16)
    ds.Modality = "CR"
    stored = ramp(12, 16, 0, 1023, 3)
    mono(ds, stored, 16, 10, 11, False, photometric="MONOCHROME1", raw=(stored << 2) | 0x3)
    ds.WindowCenter = "500"
    ds.WindowWidth = "600"
    ds.save_as(path, write_like_original=False)


def lut_sequence(descriptor, data, explanation):
    item = Dataset()
    item.add_new(0x00283002, "US", descriptor)  # LUT Descriptor
    item.LUTExplanation = explanation
    item.add_new(0x00283006, "US", [int(v) for v in data])  # LUT Data (US; pydicom 2.3 cannot read 12-bit OW)
    return item


def modality_lut(out):
    """Unsigned 8-bit stored values through a Modality LUT Sequence (200 entries, first mapped 10)."""
    path = os.path.join(out, "modality_lut_8bit.dcm")
    ds = base(path, "1.2.840.10008.5.1.4.1.1.1.1", ROOT + "3.3", 16, 16)
    ds.Modality = "DX"
    stored = ramp(16, 16, 0, 255, 4)
    mono(ds, stored, 8, 8, 7, False)
    table = np.round(4095 * (np.arange(200) / 199.0) ** 2).astype(np.uint16)
    item = lut_sequence([200, 10, 16], table, "SQUARE")  # 16-bit entries: pydicom 2.3 fails on 12
    item.ModalityLUTType = "US"
    ds.ModalityLUTSequence = Sequence([item])
    ds.save_as(path, write_like_original=False)


def voi_lut(out):
    """Signed 16-bit data with two VOI LUTs (signed first mapped value) and no window."""
    path = os.path.join(out, "voi_lut_signed.dcm")
    ds = base(path, CT, ROOT + "3.4", 16, 16)
    stored = ramp(16, 16, -1200, 1800, 5)
    mono(ds, stored, 16, 16, 15, True)
    ds.RescaleSlope = "1"
    ds.RescaleIntercept = "0"
    first = [-1000, 0]
    luts = []
    for k, f in enumerate(first):
        n = 2048
        curve = np.round(4095 / (1 + np.exp(-(np.arange(n) - n / 2) / (150 + 200 * k)))).astype(np.uint16)
        item = lut_sequence([n, f & 0xFFFF, 12], curve, f"CURVE {k + 1}")
        luts.append(item)
    ds.VOILUTSequence = Sequence(luts)
    ds.save_as(path, write_like_original=False)


def palette(out):
    """PALETTE COLOR, 8-bit indices, 16-bit palette entries, implicit VR."""
    path = os.path.join(out, "palette_16bit.dcm")
    ds = base(path, US, ROOT + "3.5", 16, 16, transfer_syntax=ImplicitVRLittleEndian)
    ds.Modality = "US"
    stored = ramp(16, 16, 0, 255, 6)
    mono(ds, stored, 8, 8, 7, False, photometric="PALETTE COLOR")
    idx = np.arange(256)
    red = np.round(65535 * idx / 255).astype(np.uint16)
    green = np.round(65535 * (1 - idx / 255)).astype(np.uint16)
    blue = np.round(65535 * np.abs(np.sin(idx / 40.0))).astype(np.uint16)
    for colour, table in (("Red", red), ("Green", green), ("Blue", blue)):
        tag = pydicom.datadict.tag_for_keyword(f"{colour}PaletteColorLookupTableDescriptor")
        ds.add_new(tag, "US", [256, 0, 16])
        ds.add_new(pydicom.datadict.tag_for_keyword(f"{colour}PaletteColorLookupTableData"), "OW",
                   table.astype("<u2").tobytes())
    ds.save_as(path, write_like_original=False)


def colour(out, name, photometric, planar, bits, frames, seed):
    path = os.path.join(out, name)
    ds = base(path, SC, ROOT + "3.6." + str(seed), 10, 14)
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    rng = np.random.default_rng(seed)
    hi = (1 << bits) - 1
    pixels = rng.integers(0, hi + 1, (frames, 10, 14, 3))
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    cells = pixels.transpose(0, 3, 1, 2) if planar else pixels
    ds.PixelData = np.ascontiguousarray(cells).astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    ds.save_as(path, write_like_original=False)


def enhanced(out):
    """Enhanced CT, 3 frames: shared pixel measures and orientation, per-frame position, rescale, window."""
    path = os.path.join(out, "enhanced_ct_3frames.dcm")
    ds = base(path, ENHANCED_CT, ROOT + "3.7", 8, 8)
    frames = np.stack([ramp(8, 8, 0, 3000, 10 + k) for k in range(3)])
    mono(ds, frames, 16, 12, 11, False)
    ds.NumberOfFrames = 3
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = ["0.75", "0.8"]
    measures.SliceThickness = "2.5"
    shared.PixelMeasuresSequence = Sequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(3):
        group = Dataset()
        position = Dataset()
        position.ImagePositionPatient = ["-100", "-120", str(50 - 2.5 * k)]
        group.PlanePositionSequence = Sequence([position])
        transform = Dataset()
        transform.RescaleSlope = "1"
        transform.RescaleIntercept = str(-1024 - 10 * k)
        transform.RescaleType = "HU"
        group.PixelValueTransformationSequence = Sequence([transform])
        voi = Dataset()
        voi.WindowCenter = "40"
        voi.WindowWidth = "400"
        group.FrameVOILUTSequence = Sequence([voi])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.save_as(path, write_like_original=False)


def series(out):
    """Two series in one study: A is four oblique slices whose InstanceNumbers disagree with their
    positions (order must follow the positions), B is two slices without positions (InstanceNumber)."""
    folder = os.path.join(out, "series")
    os.makedirs(folder, exist_ok=True)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(0.3), np.sin(0.3)])
    normal = np.cross(row, col)
    instance_numbers = [3, 1, 4, 2]     # deliberately not the spatial order
    offsets = [10.0, -5.0, 0.0, 5.0]    # spatial order: slices 1, 2, 3, 0
    for k in range(4):
        path = os.path.join(folder, f"a{k}.dcm")
        ds = base(path, CT, ROOT + f"4.1.{k}", 8, 8, series="10")
        mono(ds, ramp(8, 8, -1000, 1000, 20 + k), 16, 16, 15, True)
        ds.RescaleSlope = "1"
        ds.RescaleIntercept = "0"
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in list(row) + list(col)]
        position = np.array([-50.0, -40.0, 30.0]) + offsets[k] * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.PixelSpacing = ["0.5", "0.5"]
        ds.InstanceNumber = instance_numbers[k]
        ds.SeriesDescription = "Oblique A"
        ds.save_as(path, write_like_original=False)
    for k, number in enumerate([2, 1]):
        path = os.path.join(folder, f"b{k}.dcm")
        ds = base(path, CT, ROOT + f"4.2.{k}", 8, 8, series="11")
        mono(ds, ramp(8, 8, 0, 100, 30 + k), 16, 16, 15, False)
        ds.InstanceNumber = number
        ds.SeriesDescription = "No positions B"
        ds.save_as(path, write_like_original=False)
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("not DICOM\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "synthetic")
    os.makedirs(out, exist_ok=True)
    signed12(out)
    shifted_unsigned(out)
    modality_lut(out)
    voi_lut(out)
    palette(out)
    colour(out, "rgb_planar1_2frames.dcm", "RGB", 1, 8, 2, 40)
    colour(out, "ybr_full_8bit.dcm", "YBR_FULL", 0, 8, 1, 41)
    colour(out, "ybr_full_16bit_planar1.dcm", "YBR_FULL", 1, 16, 1, 42)
    enhanced(out)
    series(out)


if __name__ == "__main__":
    main()
