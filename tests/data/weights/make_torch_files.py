"""Reference files for tests/models/test_weights.cpp, written by PyTorch itself (run with /usr/bin/python3,
torch 1.13):  /usr/bin/python3 tests/data/weights/make_torch_files.py

One small state_dict covering every dtype the readers support, 0-d and empty tensors, and views that share
one storage at an offset and with non-contiguous strides. It is saved by torch.save in several layouts, and
its contiguous copy is saved as safetensors by the fixtures' independent writer; the C++ test checks that
every .pt file reads back equal to expected.safetensors.
"""
import collections
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "shared", "fixtures", "parity"))
import safetensors_io  # noqa: E402


def state_dict():
    g = torch.Generator().manual_seed(7)
    base = torch.randn(4, 6, generator=g)
    # An OrderedDict with _metadata, as Module.state_dict() returns (pickled with REDUCE + BUILD).
    sd = collections.OrderedDict({
        "f32": torch.randn(2, 3, generator=g),
        "f64": torch.randn(5, generator=g, dtype=torch.float64),
        "f16": torch.randn(3, 2, generator=g).half(),
        "bf16": torch.randn(3, generator=g).bfloat16(),
        "i64.num_batches_tracked": torch.tensor(12345678901234, dtype=torch.int64),
        "i32": torch.arange(-3, 4, dtype=torch.int32),
        "i16": torch.tensor([-300, 0, 300], dtype=torch.int16),
        "i8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
        "empty": torch.zeros(0, 3),
        # Three views of one storage: whole, transposed, and a slice at an offset.
        "view.base": base,
        "view.t": base.t(),
        "view.slice": base[1:3, 2:5],
    })
    sd._metadata = collections.OrderedDict({"": {"version": 1}, "view": {"version": 2}})
    return sd


def main():
    sd = state_dict()
    out = lambda name: os.path.join(HERE, name)  # noqa: E731
    # Default torch.save (pickle protocol 2), as model.state_dict() is usually saved.
    torch.save(sd, out("proto2.pt"))
    # Protocol 4: SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, FRAME instead of the protocol 2 opcodes.
    torch.save(sd, out("proto4.pt"), pickle_protocol=4)
    # Training checkpoints: the state_dict nested under a key beside other values (LONG1, BINFLOAT, lists,
    # True, None).
    torch.save({"epoch": 2 ** 40, "best": 0.25, "tags": ["a", "b"], "ema": True, "note": None,
                "state_dict": sd}, out("checkpoint_state_dict.pt"))
    torch.save({"model": sd, "step": -70000}, out("checkpoint_model.pt"), pickle_protocol=4)
    # The pre-1.6 format is not a zip; the reader must say so.
    torch.save({"f32": sd["f32"]}, out("legacy.pt"), _use_new_zipfile_serialization=False)
    safetensors_io.save_file({k: v.clone() for k, v in sd.items()}, out("expected.safetensors"),
                             metadata={"made_by": "make_torch_files.py"})


if __name__ == "__main__":
    main()
