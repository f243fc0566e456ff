#!/usr/bin/python3
"""scripts/score-split.sh, batch scoring across machines (issue 12 item 5),
on loopback workers: a demo model's interactions file split over two
workers (one local, one through a command prefix, "sh -c", standing in
for ssh) gives output byte-identical to one `moerec score` over the whole
file, also with more parts than workers, a row count that is not a whole
number of batches and score arguments passed through; a failing worker
fails the run (exit 1, its stderr shown, no output file); usage errors
are exit 2."""
import json
import os
import subprocess
import tempfile
import unittest

import moerec_world as world

ARGS = None


class ScoreSplitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "40", "--items", "100",
                        "--rows", "2999"], check=True, capture_output=True)
        subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                        os.path.join(d, "interactions.csv"), "--out", os.path.join(d, "models", "demo"),
                        "--epochs", "1", "--quiet"], check=True, capture_output=True)
        cls.model = os.path.join(d, "models", "demo")
        cls.data = os.path.join(d, "interactions.csv")
        cls.script = os.path.join(ARGS.scripts_dir, "score-split.sh")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def whole(self, *extra):
        return subprocess.run([ARGS.bin, "score", "--model", self.model, "--data", self.data,
                               "--batch", "128", "--quiet", *extra], check=True,
                              capture_output=True).stdout

    def split(self, out, workers, *extra, check=True):
        cmd = ["bash", self.script, "--model", self.model, "--data", self.data, "--out", out,
               "--moerec", ARGS.bin, "--batch", "128"]
        for w in workers:
            cmd += ["--worker", w]
        return subprocess.run(cmd + list(extra), capture_output=True, text=True, check=check)

    def test_two_workers_equal_one_run(self):
        out = os.path.join(self.d, "split.csv")
        r = self.split(out, ["local", "sh -c"])
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(summary["rows"], 2999)
        self.assertEqual(summary["parts"], 2)
        self.assertEqual(summary["rows_per_part"] % 128, 0)
        with open(out, "rb") as f:
            got = f.read()
        self.assertEqual(got, self.whole())
        self.assertEqual(got.count(b"\n"), 3000)   # one header, every row once
        self.assertEqual([n for n in os.listdir(self.d) if ".parts." in n or ".tmp." in n], [])

    def test_more_parts_and_score_args(self):
        out = os.path.join(self.d, "split5.csv")
        r = self.split(out, ["sh -c", "local"], "--parts", "5", "--", "--keep", "user_id",
                       "--threads", "1")
        self.assertEqual(json.loads(r.stdout.strip().splitlines()[-1])["parts"], 5)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), self.whole("--keep", "user_id"))

    def test_failing_worker(self):
        out = os.path.join(self.d, "failed.csv")
        down = os.path.join(self.d, "down.sh")
        with open(down, "w") as f:
            f.write("echo worker down >&2\nexit 3\n")
        r = self.split(out, ["local", "sh " + down], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("part-000001 failed", r.stderr)
        self.assertIn("worker down", r.stderr)
        self.assertFalse(os.path.exists(out))
        # a bad model fails every part with moerec's own message
        r = subprocess.run(["bash", self.script, "--model", os.path.join(self.d, "nope"), "--data",
                            self.data, "--out", out, "--moerec", ARGS.bin, "--worker", "local"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope", r.stderr)
        self.assertFalse(os.path.exists(out))

    def test_usage(self):
        out = os.path.join(self.d, "x.csv")
        for args in (["--model", self.model, "--data", self.data, "--out", out],
                     ["--model", self.model, "--data", self.data, "--out", out, "--worker", "local",
                      "--batch", "0"],
                     ["--worker", "local", "--data", self.data, "--out", out],
                     ["--bogus"]):
            r = subprocess.run(["bash", self.script] + args, capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("score-split.sh:", r.stderr)
        r = subprocess.run(["bash", self.script, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--worker PREFIX", r.stdout)


if __name__ == "__main__":
    world.main(globals())
