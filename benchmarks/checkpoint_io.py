"""Reads an attnvision checkpoint (.safetensors with the model config in its __metadata__) for the Python peers,
with numpy alone (Debian has no python3-safetensors)."""
import json
import struct
import sys

import numpy as np
import torch

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "I8": "i1"}
_INT8_SCALE = ".int8_scale"  # models/weights/weights.cpp: int8 rows, a float32 scale per row


def read_safetensors(path):
    """(state dict, the header's __metadata__) of a safetensors file; float16 tensors and our int8 rows (a shipped
    model stored small) come back as float32, as attnvision's loader widens them."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    state = {}
    for name, info in header.items():
        if info["dtype"] not in _ST_DTYPES:
            sys.exit(f"{path}: {name}: dtype {info['dtype']} not supported")
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=np.dtype(_ST_DTYPES[info["dtype"]])).reshape(info["shape"])
        t = torch.from_numpy(arr.copy())
        state[name] = t.float() if t.dtype == torch.float16 else t
    if meta.get("format") == "attnvision":
        for scale_name in [k for k in state if k.endswith(_INT8_SCALE)]:
            name = scale_name[:-len(_INT8_SCALE)]
            rows = state[name].float()
            state[name] = rows * state.pop(scale_name).reshape([-1] + [1] * (rows.dim() - 1))
    return state, meta


def load_checkpoint(path):
    """(state dict of float32 / integer tensors, model config dict) from an attnvision .safetensors checkpoint."""
    state, meta = read_safetensors(path)
    if "attnvision.model_cfg" not in meta:
        sys.exit(f"{path}: no attnvision.model_cfg in its __metadata__")
    return state, json.loads(meta["attnvision.model_cfg"])

def save_safetensors(path, state):
    """Writes a float32 state dict as safetensors (header padded to 8 bytes, tensors sorted by name), the layout
    timm checkpoints have, so attnvision reads it with --model NAME --weights FILE."""
    names = sorted(state)
    header, offset, blobs = {}, 0, []
    for name in names:
        t = state[name].detach().contiguous()
        kind = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
