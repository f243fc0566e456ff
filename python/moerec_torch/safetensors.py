"""safetensors read and write by hand (Debian has no python3-safetensors):

    u64 little-endian N | N bytes of JSON header | little-endian tensor bytes

The header maps each name to {"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]} (offsets from the first byte after the
header), plus "__metadata__". Written as moerec writes it: F32 only, the
header padded with spaces to a multiple of 8 bytes (docs/model-format.md).
"""
import json
import struct

import numpy as np

from .atomic import write_atomic


def read(path):
    """{name: float32 numpy array}, and the header's __metadata__."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d past the end of the file" % (path, n))
    hdr = json.loads(raw[8:8 + n])
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError("%s: tensor %s has dtype %s (moerec stores F32)" % (path, name,
                                                                                   e["dtype"]))
        b, end = e["data_offsets"]
        shape = tuple(e["shape"])
        if end - b != 4 * int(np.prod(shape, dtype=np.int64)) or end > len(data):
            raise ValueError("%s: tensor %s: offsets [%d, %d) do not hold shape %s"
                             % (path, name, b, end, list(shape)))
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(shape).astype(np.float32)
    return out, hdr.get("__metadata__", {})


def write(path, tensors, metadata=None):
    """Write {name: array} as F32 (in sorted name order), atomically
    (atomic.write_atomic: temporary, fsync, rename, directory fsync), so a
    reader never sees half a file."""
    hdr, blobs, off = {}, [], 0
    if metadata:
        hdr["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        hdr[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    write_atomic(path, [struct.pack("<Q", len(h)), h] + blobs)
