"""test_torch_atomic.py — python/moerec_torch/atomic.py, the package's one
file writer: the bytes land whole under the target name, a failure part way
(an exception from the chunks) leaves the old file byte for byte and no
temporary behind, and safetensors.write and save() go through it (no
*.tmp* file left in a version directory)."""
import os
import sys
import tempfile
import unittest

import numpy as np

from moerec_torch import atomic, safetensors


def chunks_then_fail(parts):
    for p in parts:
        yield p
    raise OSError("disk full (simulated)")


class AtomicWrite(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "f.bin")

    def tearDown(self):
        for n in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, n))
        os.rmdir(self.dir)

    def test_whole_file(self):
        atomic.write_atomic(self.path, [b"abc", b"", b"def"])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"abcdef")
        self.assertEqual(os.listdir(self.dir), ["f.bin"])

    def test_failure_keeps_old_file(self):
        atomic.write_atomic(self.path, [b"old"])
        with self.assertRaises(OSError):
            atomic.write_atomic(self.path, chunks_then_fail([b"new", b"er"]))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"old")
        self.assertEqual(os.listdir(self.dir), ["f.bin"])

    def test_safetensors_through_it(self):
        p = os.path.join(self.dir, "w.safetensors")
        a = np.arange(12, dtype=np.float32).reshape(3, 4)
        safetensors.write(p, {"x": a}, {"arch": "mmoe"})
        t, meta = safetensors.read(p)
        np.testing.assert_array_equal(t["x"], a)
        self.assertEqual(meta["arch"], "mmoe")
        self.assertEqual(sorted(os.listdir(self.dir)), ["w.safetensors"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
