#!/usr/bin/python3
"""Hostile DICOM inputs: truncated, garbage, lying lengths, absurd sizes, inconsistent bits, deep nesting,
decompression bombs (JPEG, JPEG-LS, JPEG 2000, RLE, deflate) and broken codec streams.

    /usr/bin/python3 tests/data/dicom/make_hostile.py tests/data/dicom/hostile

Files are written byte by byte (a small explicit VR little endian writer below), codestreams come from
Pillow (JPEG, JPEG 2000) and DCMTK's dcmcjpls / dcmcrle, and are then patched. manifest.json says what
the reader must do with each: "error" (with the error kind and a phrase the message must contain),
"any" (a broken codec stream: an error or whatever the codec salvages, but no crash, no hang), or "ok".
Deterministic: fixed seeds.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG2000 = "1.2.840.10008.1.2.4.90"
SC = "1.2.840.10008.5.1.4.1.1.7"
LONG_VR = {b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"}


def el(group, element, vr, value, length=None):
    """One explicit VR little endian element; `length` overrides the encoded length (lies)."""
    if isinstance(value, str):
        value = value.encode()
        if len(value) % 2:
            value += b"\0" if vr == b"UI" else b" "
    n = len(value) if length is None else length
    if vr in LONG_VR:
        return struct.pack("<HH2sHI", group, element, vr, 0, n) + value
    return struct.pack("<HH2sH", group, element, vr, n) + value


def us(group, element, v):
    return el(group, element, b"US", struct.pack("<H", v))


def meta(ts=EXPLICIT_LE):
    body = (el(2, 1, b"OB", b"\0\1") + el(2, 2, b"UI", SC) + el(2, 3, b"UI", "1.2.826.0.1.3680043.10.1234.9.1")
            + el(2, 0x10, b"UI", ts))
    return b"\0" * 128 + b"DICM" + el(2, 0, b"UL", struct.pack("<I", len(body))) + body


def header(rows=16, cols=16, frames=None, bits=(16, 16, 15), signed=0, samples=1, photometric="MONOCHROME2",
           extra=b""):
    out = (el(8, 0x16, b"UI", SC) + el(8, 0x18, b"UI", "1.2.826.0.1.3680043.10.1234.9.1")
           + el(8, 0x60, b"CS", "OT") + el(0x10, 0x10, b"PN", "Hostile^Input") + el(0x10, 0x20, b"LO", "HOST"))
    out += extra
    out += us(0x28, 2, samples) + el(0x28, 4, b"CS", photometric)
    if frames is not None:
        out += el(0x28, 8, b"IS", str(frames))
    out += us(0x28, 0x10, rows) + us(0x28, 0x11, cols)
    out += us(0x28, 0x100, bits[0]) + us(0x28, 0x101, bits[1]) + us(0x28, 0x102, bits[2]) + us(0x28, 0x103, signed)
    return out


def native(rows=16, cols=16, **kw):
    pixels = (np.arange(rows * cols, dtype=np.uint16) * 7).tobytes()
    return meta() + header(rows, cols, **kw) + el(0x7FE0, 0x10, b"OW", pixels)


def encapsulated(ts, fragments, rows=16, cols=16, frames=None, bits=(8, 8, 7), samples=1, photometric="MONOCHROME2"):
    items = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    for f in fragments:
        if len(f) % 2:
            f += b"\0"
        items += struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f
    items += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    pixel = struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, 0xFFFFFFFF) + items
    return meta(ts) + header(rows, cols, frames, bits, samples=samples, photometric=photometric) + pixel


def gradient(rows=16, cols=16):
    return (np.add.outer(np.arange(rows), np.arange(cols)) * 255 // (rows + cols)).astype(np.uint8)


def jpeg_stream():
    buf = io.BytesIO()
    Image.fromarray(gradient()).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def j2k_stream(size=16):
    buf = io.BytesIO()
    Image.fromarray(gradient(size, size)).save(buf, format="JPEG2000", irreversible=False)
    data = buf.getvalue()
    return data[data.find(b"\xff\x4f\xff\x51"):]


def dcmtk_encode(tool, raw_file):
    """Runs a DCMTK compressor on a native file and returns the first fragment of its Pixel Data."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.dcm"), os.path.join(tmp, "out.dcm")
        with open(src, "wb") as f:
            f.write(raw_file)
        subprocess.run([tool, src, dst], check=True, capture_output=True)
        data = open(dst, "rb").read()
    pos = data.rfind(b"\xe0\x7f\x10\x00") + 12  # after the Pixel Data element header
    table = struct.unpack("<I", data[pos + 4:pos + 8])[0]  # the Basic Offset Table item
    pos += 8 + table
    length = struct.unpack("<I", data[pos + 4:pos + 8])[0]
    return data[pos + 8:pos + 8 + length]


def patch_sof(stream, marker, width, height):
    pos = stream.find(bytes([0xFF, marker]))
    return stream[:pos + 5] + struct.pack(">HH", height, width) + stream[pos + 9:]


def deep_nesting(levels):
    nest = (struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))
    return meta() + header() + nest * levels


def garbage_entropy(stream, seed):
    rng = np.random.default_rng(seed)
    sos = stream.find(b"\xff\xda")
    body = bytearray(stream)
    for i in range(sos + 20, len(body) - 2):
        body[i] = int(rng.integers(0, 255))  # 0xFF never appears: no accidental markers
    return bytes(body)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "hostile")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1234)
    files = {}

    def add(name, data, expect, kind=None, phrase=None):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        files[name] = {"expect": expect} | ({"kind": kind, "phrase": phrase} if kind else {})

    good = native()
    add("empty.dcm", b"", "error", "not_dicom", "empty file")
    add("garbage_random.dcm", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "error", "not_dicom",
        "not a DICOM file")
    add("garbage_after_dicm.dcm", b"\0" * 128 + b"DICM" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "error", "corrupt", "")
    add("truncated_meta.dcm", good[:150], "error", "corrupt", "File Meta Information is truncated")
    add("truncated_pixels.dcm", good[:-100], "error", "corrupt", "(7FE0,0010) declares 512 bytes")
    add("huge_pixel_length.dcm", meta() + header() + el(0x7FE0, 0x10, b"OW", b"\0" * 64, length=0xFFFFFFF0),
        "error", "corrupt", "declares 4294967280 bytes")
    add("huge_element_length.dcm", meta() + el(0x10, 0x10, b"PN", b"A^B", length=0xFFFE) + header(), "error",
        "corrupt", "(0010,0010) declares 65534 bytes")
    add("absurd_rows_cols.dcm", meta() + header(65535, 65535) + el(0x7FE0, 0x10, b"OW", b"\0" * 100), "error",
        "too_large", "65535x65535 pixels is over the limit")
    add("absurd_frames.dcm", meta() + header(512, 512, frames=2147483647) + el(0x7FE0, 0x10, b"OW", b"\0" * 100),
        "error", "too_large", "2147483647 frames of 512x512 would decode to more than")
    add("frames_beyond_data.dcm", native(frames=1000), "error", "corrupt",
        "Pixel Data has 512 bytes, 512000 needed for 1000 frame(s)")
    add("frames_negative.dcm", native(frames=-5), "error", "corrupt", "NumberOfFrames is -5")
    add("frames_not_a_number.dcm", native(frames="many"), "error", "corrupt", "NumberOfFrames 'many'")
    add("bits_stored_over_allocated.dcm", native(bits=(16, 20, 19)), "error", "corrupt", "BitsStored 20")
    add("bits_allocated_12.dcm", native(bits=(12, 12, 11)), "error", "unsupported", "BitsAllocated 12")
    add("high_bit_inconsistent.dcm", native(bits=(16, 12, 3)), "error", "corrupt", "HighBit 3")
    add("samples_mismatch.dcm", native(samples=3), "error", "corrupt", "MONOCHROME2 with SamplesPerPixel 3")
    add("photometric_unknown.dcm", native(photometric="CMYK", samples=3), "error", "unsupported", "'CMYK'")
    add("zero_rows.dcm", meta() + header(0, 16) + el(0x7FE0, 0x10, b"OW", b""), "error", "corrupt", "16x0")
    add("ybr422_odd_columns.dcm", meta() + header(3, 3, bits=(8, 8, 7), samples=3, photometric="YBR_FULL_422")
        + el(0x7FE0, 0x10, b"OB", b"\x80" * 18), "error", "corrupt", "odd number of columns")
    add("deep_nesting_100.dcm", deep_nesting(100), "error", "too_large", "nested deeper than 32")
    add("undefined_length_ob.dcm", meta() + struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, 0xFFFFFFFF)
        + b"\0" * 64, "error", "corrupt", "undefined length")
    add("sequence_item_garbage.dcm", meta() + struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
        + el(0x10, 0x10, b"PN", "A^B") + header(), "error", "corrupt", "expected a sequence item")
    add("unknown_transfer_syntax.dcm", meta("1.2.3.4.5.6") + header() + el(0x7FE0, 0x10, b"OW", b"\0" * 512),
        "error", "unsupported", "unknown transfer syntax 1.2.3.4.5.6")
    add("mpeg2_transfer_syntax.dcm", encapsulated("1.2.840.10008.1.2.4.100", [b"\0\0\1\xb3" + b"\0" * 60]), "error",
        "unsupported", "MPEG2")
    lut = (el(0x28, 0x3002, b"US", struct.pack("<HHH", 4096, 0, 16)) + el(0x28, 0x3006, b"OW", b"\1\0" * 10))
    lut_seq = (struct.pack("<HH2sHI", 0x28, 0x3000, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, len(lut))
               + lut + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    add("modality_lut_short.dcm", meta() + header(extra=b"") + lut_seq + el(0x7FE0, 0x10, b"OW", b"\0" * 512),
        "error", "corrupt", "Modality LUT has 10 entries, its descriptor says 4096")
    add("palette_missing.dcm", native(bits=(8, 8, 7), photometric="PALETTE COLOR"), "error", "corrupt",
        "PALETTE COLOR without a red palette")
    add("windows_garbage.dcm", native(extra=el(0x28, 0x1050, b"DS", "abc\\40") + el(0x28, 0x1051, b"DS", "0\\-5")),
        "ok")

    # Compressed streams: bombs are refused from the header, broken bodies must not crash the codecs.
    jpeg = jpeg_stream()
    add("jpeg_bomb.dcm", encapsulated(JPEG_BASELINE, [patch_sof(jpeg, 0xC0, 65000, 65000)]), "error", "corrupt",
        "JPEG frame 1 is 65000x65000x1 but the data set says 16x16x1")
    add("jpeg_no_soi.dcm", encapsulated(JPEG_BASELINE, [b"\0" * 64]), "error", "corrupt", "not a JPEG stream")
    add("jpeg_garbage.dcm", encapsulated(JPEG_BASELINE, [garbage_entropy(jpeg, 1)]), "any")
    add("jpeg_truncated.dcm", encapsulated(JPEG_BASELINE, [jpeg[:len(jpeg) // 2]]), "any")
    add("fragments_fewer_than_frames.dcm", encapsulated(JPEG_BASELINE, [jpeg], frames=10), "error", "corrupt",
        "NumberOfFrames is 10 but Pixel Data has only 1 fragments")
    raw8 = meta() + header(bits=(8, 8, 7)) + el(0x7FE0, 0x10, b"OB", gradient().tobytes())
    jls = dcmtk_encode("dcmcjpls", raw8)
    add("jpegls_bomb.dcm", encapsulated("1.2.840.10008.1.2.4.80", [patch_sof(jls, 0xF7, 60000, 60000)]), "error",
        "corrupt", "JPEG frame 1 is 60000x60000x1")
    add("jpegls_garbage.dcm", encapsulated("1.2.840.10008.1.2.4.80", [garbage_entropy(jls, 2)]), "any")
    add("jpegls_truncated.dcm", encapsulated("1.2.840.10008.1.2.4.80", [jls[:len(jls) // 2]]), "any")
    rle = dcmtk_encode("dcmcrle", raw8)
    add("rle_segments_15.dcm", encapsulated("1.2.840.10008.1.2.5", [struct.pack("<I", 15) + rle[4:]]), "error",
        "corrupt", "RLE frame 1 has 15 segments, the data set needs 1")
    add("rle_offset_beyond.dcm", encapsulated("1.2.840.10008.1.2.5", [rle[:4] + struct.pack("<I", 0x7FFFFFF0)
                                                                       + rle[8:]]), "error", "corrupt", "")
    add("rle_garbage.dcm", encapsulated("1.2.840.10008.1.2.5", [rle[:64] + rng.integers(0, 256, len(rle) - 64,
                                                                                       dtype=np.uint8).tobytes()]),
        "any")
    j2k = j2k_stream()
    siz = j2k.find(b"\xff\x51") + 2
    big = j2k[:siz + 4] + struct.pack(">II", 60000, 60000) + j2k[siz + 12:]
    add("j2k_bomb.dcm", encapsulated(JPEG2000, [big]), "error", "corrupt",
        "JPEG 2000 frame 1 is 60000x60000x1 but the data set says 16x16x1")
    j2k512 = j2k_stream(512)
    siz = j2k512.find(b"\xff\x51") + 2
    tiles = j2k512[:siz + 20] + struct.pack(">II", 1, 1) + j2k512[siz + 28:]
    add("j2k_tile_bomb.dcm", encapsulated(JPEG2000, [tiles], rows=512, cols=512), "error", "too_large",
        "262144 tiles")
    add("j2k_garbage.dcm", encapsulated(JPEG2000, [j2k[:60] + rng.integers(0, 255, len(j2k) - 60,
                                                                           dtype=np.uint8).tobytes()]), "any")
    add("j2k_truncated.dcm", encapsulated(JPEG2000, [j2k[:len(j2k) // 2]]), "any")
    add("fragment_overrun.dcm", meta(JPEG_BASELINE) + header(bits=(8, 8, 7))
        + struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OB", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
        + struct.pack("<HHI", 0xFFFE, 0xE000, 100000) + jpeg, "error", "corrupt", "fragment at byte")
    # Deflate bomb: 64 MiB of zeros in about 64 kB; inflated it is millions of empty elements.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflater.compress(b"\0" * (64 << 20)) + deflater.flush()
    add("deflate_bomb.dcm", meta(DEFLATED) + bomb, "error", "too_large", "inflates beyond 33554432 bytes")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(files, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
