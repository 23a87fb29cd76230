#!/usr/bin/python3
"""CT phantoms with known lesions from a second generator, written from the anomaly issue's description of the
distribution alone (not from datasets/synth/phantom*.cpp), to check that the anomaly model learned lesions rather
than the quirks of `attnvision synth phantoms`.

    /usr/bin/python3 benchmarks/independent_phantoms.py --out DIR --series 30 --seed 7
    attnvision eval --data DIR --json                          # slice AUROC
    attnvision eval-saliency --data DIR --methods cam --json   # pointing game, lesion sensitivity

It writes what `synth phantoms` writes, in the same contract: CT Image Storage DICOM series (16 bits allocated,
12 or 16 stored, signed or unsigned, RescaleSlope 1 / RescaleIntercept -1024, PixelSpacing, SliceThickness,
positions stepping along the series, a window; dciodvfy finds no errors) and DIR/lesions.json with each slice's
lesions (`center_px`, `diameter_mm`, `contrast_hu`, `organ`, `mask`) and its union mask (uint8 0/255 PNG at the
slice's grid, or null).

The anatomy is its own: a body ellipse with a fat rim and muscle, two lungs (-900 to -700 HU, denser towards the
back) with vessels drawn as branching trees from the hilum, a vertebra with a cortical rim and a spinous process,
ribs along the body wall on chest levels, heart and aorta between the lungs, and lower down liver, spleen, kidneys
and a stomach holding fluid under an air level. Lesions are 4-30 mm, their outline a circle modulated by a few
random harmonics (round to lobulated): soft-tissue nodules (10-60 HU) in the lungs, and hypo- or hyper-dense
lesions 40-100 HU off their organ in liver, spleen and muscle; about half the slices clean, the rest 1-3 lesions.
Then mild blur and noise (sigma 5-25 HU, white or spatially correlated). Series are 512x512 at 0.6-0.9 mm or
256x256 at 1.2-1.8 mm. Needs Debian's python3-numpy, python3-opencv and python3-pydicom.
"""
import argparse
import datetime
import json
import math
import os

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
AIR = -1000.0


def ellipse(xx, yy, cx, cy, ax, ay, angle=0.0):
    c, s = math.cos(angle), math.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def outline(xx, yy, cx, cy, radius, harmonics):
    """A circle of `radius` whose radius varies with angle by the given (order, amplitude, phase) harmonics."""
    r = np.hypot(xx - cx, yy - cy)
    theta = np.arctan2(yy - cy, xx - cx)
    edge = np.full_like(r, radius)
    for order, amplitude, phase in harmonics:
        edge = edge + radius * amplitude * np.cos(order * theta + phase)
    return r <= edge


def draw_tree(canvas, rng, start, angle, length, width, depth, mm_to_px):
    """A vessel tree as lines on `canvas` (pixel units): each branch splits in two at a random angle."""
    if depth == 0 or length < 3 or width < 0.4:
        return
    end = (start[0] + length * math.cos(angle), start[1] + length * math.sin(angle))
    p0 = (int(round(start[0] * mm_to_px[0] + mm_to_px[1])), int(round(start[1] * mm_to_px[0] + mm_to_px[1])))
    p1 = (int(round(end[0] * mm_to_px[0] + mm_to_px[1])), int(round(end[1] * mm_to_px[0] + mm_to_px[1])))
    cv2.line(canvas, p0, p1, 1.0, max(1, int(round(width * mm_to_px[0]))), cv2.LINE_AA)
    for turn in (-1, 1):
        draw_tree(canvas, rng, end, angle + turn * rng.uniform(0.25, 0.7), length * rng.uniform(0.6, 0.85),
                  width * 0.7, depth - 1, mm_to_px)


def anatomy(rng, series, level, xx, yy, size, spacing):
    """HU image and organ masks of one axial slice at `level` (0: upper chest .. 1: upper abdomen)."""
    a, b = series["body_a"], series["body_b"]
    hu = np.full(xx.shape, AIR, np.float32)
    body = ellipse(xx, yy, 0, 0, a, b)
    inner = ellipse(xx, yy, 0, 0, a - series["fat_mm"], b - series["fat_mm"])
    hu[body] = series["fat_hu"]
    hu[inner] = series["muscle_hu"]
    organs = {"muscle": inner.copy()}
    chest = level < 0.72
    if chest:
        shrink = 1.0 if level < 0.5 else 1.0 - (level - 0.5) / 0.3
        lungs = np.zeros_like(body)
        for side in (-1, 1):
            lungs |= ellipse(xx, yy, side * 0.47 * a, -0.05 * b, 0.33 * a * shrink + 1, 0.62 * b * shrink + 1,
                             side * 0.12)
        lungs &= inner
        # denser towards the back (y grows posterior): up to +120 HU at the back
        gradient = np.clip((yy + b) / (2 * b), 0, 1) * series["lung_gradient"]
        hu[lungs] = (series["lung_hu"] + gradient)[lungs]
        vessels = np.zeros(xx.shape, np.float32)
        mm_to_px = (1.0 / spacing, size / 2.0)
        for side in (-1, 1):
            hilum = (side * 0.2 * a, -0.05 * b)
            for _ in range(rng.integers(2, 4)):
                angle = (0.0 if side > 0 else math.pi) + rng.uniform(-1.2, 1.2)
                draw_tree(vessels, rng, hilum, angle, rng.uniform(18, 35), rng.uniform(3, 6), 5, mm_to_px)
        vessel_px = (vessels > 0.5) & lungs
        hu[vessel_px] = series["blood_hu"]
        organs["lung"] = lungs & ~vessel_px
        if level > 0.25:
            heart = ellipse(xx, yy, 0.1 * a, -0.2 * b, 0.28 * a, 0.33 * b, 0.4) & inner
            hu[heart] = series["blood_hu"] - 5
            organs["lung"] &= ~heart
        aorta = ellipse(xx, yy, 0.08 * a, 0.3 * b, 11, 11)
        hu[aorta] = series["blood_hu"] + 10
        organs["lung"] &= ~aorta
        for k in range(series["ribs"]):
            # around each side of the body wall, from the front (t = 0) to the back (t = pi)
            t = math.pi * (0.15 + 0.75 * k / max(1, series["ribs"] - 1))
            for side in (-1, 1):
                rib = ellipse(xx, yy, side * 0.86 * a * math.sin(t), -0.86 * b * math.cos(t), 7, 3.5,
                              side * (math.pi / 2 - t))
                hu[rib] = series["cortical_hu"]
    else:
        liver = ellipse(xx, yy, -0.33 * a, -0.08 * b, 0.5 * a, 0.62 * b, -0.2) & inner
        hu[liver] = series["liver_hu"]
        organs["liver"] = liver
        spleen = ellipse(xx, yy, 0.55 * a, 0.3 * b, 0.18 * a, 0.28 * b, 0.5) & inner
        hu[spleen] = series["spleen_hu"]
        organs["spleen"] = spleen
        if level > 0.8:
            for side in (-1, 1):
                kidney = ellipse(xx, yy, side * 0.33 * a, 0.5 * b, 0.12 * a, 0.18 * b, side * 0.5) & inner
                hu[kidney] = series["kidney_hu"]
                organs["liver"] &= ~kidney
                organs["spleen"] &= ~kidney
        stomach = ellipse(xx, yy, 0.25 * a, -0.25 * b, 0.2 * a, 0.22 * b) & inner & ~liver
        hu[stomach] = series["fluid_hu"]
        hu[stomach & (yy < -0.25 * b - series["air_level"] * 0.22 * b)] = AIR
        organs["spleen"] &= ~stomach
        aorta = ellipse(xx, yy, 0.05 * a, 0.38 * b, 10, 10)
        hu[aorta] = series["blood_hu"] + 10
    vertebra = ellipse(xx, yy, 0, 0.62 * b, 17, 15)
    hu[vertebra] = series["cortical_hu"]
    hu[ellipse(xx, yy, 0, 0.62 * b, 14, 12)] = series["cancellous_hu"]
    hu[ellipse(xx, yy, 0, 0.85 * b, 4, 0.12 * b)] = series["cortical_hu"]
    bones = vertebra | ellipse(xx, yy, 0, 0.85 * b, 6, 0.14 * b)
    # muscle: the body wall and the back, where no organ, bone or air was drawn
    organs["muscle"] &= ~bones & ~ellipse(xx, yy, 0, 0.15 * b, 0.75 * a, 0.55 * b) & (np.abs(hu - series["muscle_hu"]) < 1)
    return hu, organs


def add_lesions(rng, hu, organs, xx, yy, spacing, count):
    found, masks = [], []
    for _ in range(count):
        choices = [o for o in organs if organs[o].sum() > 200]
        if not choices:
            break
        organ = str(rng.choice(choices))
        diameter = float(rng.uniform(4, 30))
        radius = diameter / 2
        room = cv2.erode(organs[organ].astype(np.uint8),
                         cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(radius / spacing) + 1,) * 2))
        ys, xs = np.nonzero(room)
        if len(xs) == 0:
            continue
        i = rng.integers(len(xs))
        cx, cy = xx[ys[i], xs[i]], yy[ys[i], xs[i]]
        lobes = rng.uniform() < 0.5
        harmonics = [(k, rng.uniform(0.03, 0.15) if lobes else 0.0, rng.uniform(0, 2 * math.pi))
                     for k in (2, 3, 5)]
        shape = outline(xx, yy, cx, cy, radius, harmonics) & organs[organ]
        if shape.sum() == 0 or any((shape & m).any() for m in masks):
            continue
        background = float(np.median(hu[shape]))
        if organ == "lung":
            value = float(rng.uniform(10, 60))
        else:
            value = background + float(rng.choice([-1, 1]) * rng.uniform(40, 100))
        hu[shape] = value
        ys, xs = np.nonzero(shape)
        found.append({"center_px": [int(round(xs.mean())), int(round(ys.mean()))], "diameter_mm": round(diameter, 2),
                      "contrast_hu": round(value - background, 2), "organ": organ})
        masks.append(shape)
    return found, masks


def write_dicom(path, hu, series, slice_index, z, sop_uid):
    # stored = HU + 1024, cut to what BitsStored and PixelRepresentation can hold
    bits, signed = series["bits"], series["signed"]
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    stored = np.clip(np.rint(hu + 1024), low, high)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    now = datetime.datetime(2026, 1, 1)
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = series["study_uid"], series["series_uid"]
    ds.FrameOfReferenceUID = series["frame_uid"]
    ds.Modality, ds.PatientName, ds.PatientID = "CT", series["patient"], series["patient_id"]
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "", "O", now.strftime("%Y%m%d"), "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 1, slice_index + 1, "independent phantom"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP, ds.AcquisitionNumber = 120, 1
    ds.Laterality, ds.PatientPosition = "", "HFS"
    size, spacing = series["size"], series["spacing"]
    ds.PixelSpacing = [round(spacing, 6)] * 2
    ds.SliceThickness = series["thickness"]
    ds.ImagePositionPatient = [round(-size * spacing / 2, 3), round(-size * spacing / 2, 3), round(z, 3)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = round(z, 3)
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, series["bits"], series["bits"] - 1
    ds.PixelRepresentation = series["signed"]
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = stored.astype(np.int16 if series["signed"] else np.uint16).tobytes()
    ds.save_as(path, write_like_original=False)


def make_series(rng, out, index, seed):
    size = int(rng.choice([256, 512]))
    spacing = float(rng.uniform(1.2, 1.8) if size == 256 else rng.uniform(0.6, 0.9))
    fov = size * spacing
    a = float(rng.uniform(0.36, 0.45)) * fov
    series = {
        "size": size, "spacing": spacing, "thickness": float(rng.choice([2.5, 3.0, 5.0])),
        "bits": int(rng.choice([12, 16])), "signed": int(rng.integers(2)),
        "body_a": a, "body_b": a * float(rng.uniform(0.6, 0.75)), "fat_mm": float(rng.uniform(5, 25)),
        "fat_hu": float(rng.uniform(-120, -80)), "muscle_hu": float(rng.uniform(30, 60)),
        "lung_hu": float(rng.uniform(-900, -800)), "lung_gradient": float(rng.uniform(40, 120)),
        "blood_hu": float(rng.uniform(35, 55)), "cortical_hu": float(rng.uniform(700, 1500)),
        "cancellous_hu": float(rng.uniform(300, 450)), "liver_hu": float(rng.uniform(50, 65)),
        "spleen_hu": float(rng.uniform(40, 50)), "kidney_hu": float(rng.uniform(25, 40)),
        "fluid_hu": float(rng.uniform(0, 20)), "air_level": float(rng.uniform(0.2, 0.6)),
        "ribs": int(rng.integers(4, 7)),
        "study_uid": generate_uid(), "series_uid": generate_uid(), "frame_uid": generate_uid(),
        "patient": f"Phantom^Independent{seed}x{index}", "patient_id": f"IND{seed:04d}{index:04d}",
    }
    folder = f"indep_{seed}_{index:04d}"
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    os.makedirs(os.path.join(out, "masks", folder), exist_ok=True)
    centre = (np.arange(size) - size / 2 + 0.5) * spacing
    xx, yy = np.meshgrid(centre, centre)
    slices = int(rng.integers(10, 21))
    start = float(rng.uniform(0.0, 0.6))
    stop = min(1.0, start + float(rng.uniform(0.3, 0.5)))
    rows = []
    for s in range(slices):
        level = start + (stop - start) * s / max(1, slices - 1)
        hu, organs = anatomy(rng, series, level, xx, yy, size, spacing)
        count = 0 if rng.uniform() < 0.5 else int(rng.integers(1, 4))
        lesions, masks = add_lesions(rng, hu, organs, xx, yy, spacing, count)
        hu = cv2.GaussianBlur(hu, (0, 0), float(rng.uniform(0.5, 1.0)))
        sigma = float(rng.uniform(5, 25))
        noise = rng.standard_normal(hu.shape).astype(np.float32)
        if rng.uniform() < 0.5:
            noise = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.8, 1.6)))
            noise /= noise.std()
        hu = hu + sigma * noise
        name = f"{folder}/img{s:03d}.dcm"
        sop = generate_uid()
        z = 100.0 - s * series["thickness"]
        write_dicom(os.path.join(out, name), hu, series, s, z, sop)
        union = None
        for j, m in enumerate(masks):
            lesions[j]["mask"] = f"masks/{folder}/img{s:03d}_lesion{j}.png"
            cv2.imwrite(os.path.join(out, lesions[j]["mask"]), m.astype(np.uint8) * 255)
        if masks:
            union = f"masks/{folder}/img{s:03d}.png"
            cv2.imwrite(os.path.join(out, union), np.any(masks, axis=0).astype(np.uint8) * 255)
        rows.append({"file": name, "sop_instance_uid": sop, "lesions": lesions, "mask": union})
    return {"series_instance_uid": series["series_uid"], "study_instance_uid": series["study_uid"],
            "folder": folder, "size": size, "pixel_spacing_mm": spacing, "slices": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--series", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if os.path.exists(os.path.join(args.out, "lesions.json")):
        raise SystemExit(f"{args.out}: already holds a phantom set (lesions.json); choose an empty folder")
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    series = [make_series(rng, args.out, i, args.seed) for i in range(args.series)]
    truth = {"info": {"generator": "benchmarks/independent_phantoms.py", "seed": args.seed}, "series": series}
    tmp = os.path.join(args.out, "lesions.json.tmp")
    with open(tmp, "w") as f:
        json.dump(truth, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "lesions.json"))
    slices = sum(len(s["slices"]) for s in series)
    lesion_slices = sum(1 for s in series for sl in s["slices"] if sl["lesions"])
    print(f"{args.out}: {args.series} series, {slices} slices, {lesion_slices} with lesions")


if __name__ == "__main__":
    main()
