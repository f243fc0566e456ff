"""safetensors_f32.py — read a moerec weights.safetensors by hand (docs/model-format.md:
u64 LE header length, JSON header, F32 little-endian tensors) into torch tensors.
Shared by bench/moe_speed_torch.py and bench/peers/serve_torch.py."""
import json
import struct

import numpy as np
import torch


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError("tensor %s: dtype %s (moerec writes F32)" % (name, e["dtype"]))
        b, end = e["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + end], dtype="<f4").copy().reshape(e["shape"])
        out[name] = torch.from_numpy(a)
    return out
