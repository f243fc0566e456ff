#!/usr/bin/python3
"""`moerec score`, the offline batch scorer: on a trained demo model its
output rows equal what the server's Score answers for the same rows (same
model, same features), the output does not depend on --threads (nor, beyond float rounding, on
--batch),
and bad input fails with a clear message and exit code 1 (usage: 2)."""
import csv
import os
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None


class ScoreToolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "50", "--items", "200",
                        "--rows", "6000"], check=True, capture_output=True)
        subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                        os.path.join(d, "interactions.csv"), "--out", os.path.join(d, "models", "demo"),
                        "--epochs", "1", "--quiet"], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def score(self, *extra, check=True):
        return subprocess.run([ARGS.bin, "score", "--model", os.path.join(self.d, "models", "demo"),
                               "--data", os.path.join(self.d, "interactions.csv"), "--quiet", *extra],
                              capture_output=True, text=True, check=check)

    def test_equals_the_server(self):
        out = list(csv.DictReader(self.score("--threads", "2").stdout.splitlines()))
        self.assertEqual(len(out), 6000)
        with open(os.path.join(self.d, "interactions.csv")) as f:
            rows = list(csv.DictReader(f))
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0", "--log-level", "warn",
                                "--model-dir", os.path.join(self.d, "models")],
                               stdout=subprocess.PIPE, text=True)
        try:
            line = srv.stdout.readline().strip()
            ch = grpc.insecure_channel(line[len("listening on "):])
            stub = moerec_pb2_grpc.RecommenderStub(ch)
            for i in range(0, 200, 7):
                r = rows[i]
                req = pb.ScoreRequest(user_id=r["user_id"])
                req.user_features.numeric.add(name="age", value=float(r["age"]))
                c = req.candidates.add(item_id=r["item_id"])
                c.features.categorical.add(name="genre", values=[r["genre"]])
                c.features.numeric.add(name="price", value=float(r["price"]))
                got = stub.Score(req, timeout=10).items[0]
                self.assertEqual(out[i]["user_id"], r["user_id"])
                self.assertAlmostEqual(float(out[i]["score"]), got.score, places=6)
                self.assertAlmostEqual(float(out[i]["click"]), got.tasks[0].value, places=6)
            ch.close()
        finally:
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(srv.wait(timeout=60), 0)
            srv.stdout.close()

    def test_threads_and_batch_do_not_change_the_output(self):
        a = self.score("--threads", "1", "--batch", "500").stdout
        b = self.score("--threads", "2", "--batch", "500").stdout
        self.assertEqual(a, b)  # same batches: bit-identical whatever the threads
        # another batch size changes BLAS blocking, so only float rounding
        c = self.score("--threads", "2", "--batch", "97").stdout
        for la, lc in zip(a.splitlines()[1:], c.splitlines()[1:]):
            va, vc = la.split(","), lc.split(",")
            self.assertEqual(va[:2], vc[:2])
            for x, y in zip(va[2:], vc[2:]):
                self.assertAlmostEqual(float(x), float(y), places=6)
        r = self.score("--keep", "user_id,genre", "--threads", "1")
        self.assertEqual(r.stdout.splitlines()[0], "user_id,genre,click,like,score")
        self.assertIn('"rows":6000', r.stderr)

    def test_bad_input(self):
        for cell in ("old", "nan"):  # not a number; not finite (the server refuses it too)
            r = self.run_on("user_id,item_id,age\n1,10001,%s\n" % cell, "--allow-missing", "genre,price")
            self.assertEqual(r.returncode, 1)
            self.assertIn("edge.csv:2: column 'age' (3): '%s' is not a finite number" % cell, r.stderr)
        none = os.path.join(self.d, "none.csv")
        with open(none, "w") as f:
            f.write("a,b\n1,2\n")
        r = subprocess.run([ARGS.bin, "score", "--model", os.path.join(self.d, "models", "demo"),
                            "--data", none], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no column", r.stderr)
        r = subprocess.run([ARGS.bin, "score", "--model", "/nonexistent", "--data", none],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        r = subprocess.run([ARGS.bin, "score", "--data", none], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = self.score("--keep", "nope", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no column 'nope'", r.stderr)

    def train_on(self, text, name="same.csv"):
        path = os.path.join(self.d, name)
        with open(path, "w", newline="") as f:
            f.write(text)
        return subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(self.d, "model.json"),
                               "--data", path, "--out", os.path.join(self.d, "models", "same"),
                               "--epochs", "1", "--val-frac", "0", "--quiet"],
                              capture_output=True, text=True), path

    def test_train_and_score_accept_the_same_files(self):
        """One reader: every file train accepts, score accepts, and a file one
        refuses the other refuses with the same file:line:column message."""
        hdr = "user_id,item_id,genre,age,price,click,like"
        rows = ["1,10001,action,30,5,1,0", "2,10002,drama,40,6,0,1", "3,10003,comedy,50,7,1,1"]
        good = {
            "plain": "\n".join([hdr] + rows) + "\n",
            "bom_crlf": "\ufeff" + "\r\n".join([hdr] + rows) + "\r\n",
            "quoted_multiline": hdr + "\n" + '"1",10001,"act\nion",30,"5",1,0\n' + "\n".join(rows[1:]) + "\n",
            "missing_na": hdr + "\n" + "1,10001,action,NA,,1,0\n" + "\n".join(rows[1:]) + "\n",
            "tsv": "\n".join(r.replace(",", "\t") for r in [hdr] + rows) + "\n",
            "blank_lines_no_final_eol": hdr + "\n\n" + "\n".join(rows),
        }
        for name, text in good.items():
            t, path = self.train_on(text, "same.tsv" if name == "tsv" else "same.csv")
            self.assertEqual(t.returncode, 0, "%s: %s" % (name, t.stderr))
            s = subprocess.run([ARGS.bin, "score", "--model", os.path.join(self.d, "models", "demo"),
                                "--data", path, "--quiet"], capture_output=True, text=True)
            self.assertEqual(s.returncode, 0, "%s: %s" % (name, s.stderr))
            self.assertEqual(len(s.stdout.splitlines()), 4, name)
        bad = {
            "semicolon": (rows[0] + "\n" + rows[1].replace(",40,", ",4;0,"), "same.csv:3: column 'age' (4): '4;0' is not a finite number"),
            "text": (rows[0] + "\n" + rows[1].replace(",6,", ",abc,"), "same.csv:3: column 'price' (5): 'abc' is not a finite number"),
            "quotes": (rows[0] + "\n" + '2,10002,dr"ama,40,6,0,1', "same.csv:3: bad quotes in cell 3"),
            "cells": (rows[0] + "\n" + "2,10002,drama,40,6,0", "same.csv:3: 6 cells, the header has 7"),
            "long": (rows[0] + "\n" + "2,10002," + "x" * (1 << 20) + ",40,6,0,1", "same.csv:3: line longer than 1048576 bytes"),
        }
        for name, (body, msg) in bad.items():
            t, path = self.train_on(hdr + "\n" + body + "\n")
            self.assertNotEqual(t.returncode, 0, name)
            self.assertIn(msg, t.stderr, name)
            s = subprocess.run([ARGS.bin, "score", "--model", os.path.join(self.d, "models", "demo"),
                                "--data", path, "--quiet"], capture_output=True, text=True)
            self.assertEqual(s.returncode, 1, name)
            self.assertIn(msg, s.stderr, name)

    def test_missing_feature_column(self):
        # issue 13: a renamed feature column scored silently with defaults (rc 0)
        hdr = "user_id,movie,genre,age,price\n"
        r = self.run_on(hdr + "7,10001,action,30,5\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no column 'item_id' (a feature of model 'demo'); pass --allow-missing item_id",
                      r.stderr)
        self.assertEqual(r.stdout, "")
        ok = self.run_on(hdr + "7,10001,action,30,5\n", "--allow-missing", "item_id")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(self.run_on(hdr + "7,10001,action,30,5\n", "--allow-missing", "all").stdout, ok.stdout)
        r = self.run_on(hdr + "7,10001,action,30,5\n", "--allow-missing", "item")  # not a prefix match
        self.assertEqual(r.returncode, 1)

    def run_on(self, text, *extra, model=None):
        path = os.path.join(self.d, "edge.csv")
        with open(path, "w", newline="") as f:
            f.write(text)
        return subprocess.run([ARGS.bin, "score", "--model", model or os.path.join(self.d, "models", "demo"),
                               "--data", path, "--quiet", *extra], capture_output=True, text=True)

    def test_csv_edge_cases(self):
        hdr = "user_id,item_id,genre,age,price\n"
        plain = self.run_on(hdr + "7,10001,action,30,5\n\n8,10002,drama,40,6\n")
        self.assertEqual(plain.returncode, 0, plain.stderr)
        # CRLF line ends and a UTF-8 BOM change nothing
        crlf = self.run_on("\ufeff" + (hdr + "7,10001,action,30,5\n8,10002,drama,40,6\n").replace("\n", "\r\n"))
        self.assertEqual(crlf.returncode, 0, crlf.stderr)
        self.assertEqual(crlf.stdout, plain.stdout)
        # a kept cell with a comma or a quote stays one (quoted) field
        q = self.run_on(hdr + '"7,x",10001,action,30,5\n"a""b",10002,drama,40,6\n')
        self.assertEqual(q.returncode, 0, q.stderr)
        rows = list(csv.reader(q.stdout.splitlines()))
        self.assertEqual([r[0] for r in rows[1:]], ["7,x", 'a"b'])
        self.assertTrue(all(len(r) == len(rows[0]) for r in rows))
        # a line over 1 MiB is an error, never read as two rows
        long = self.run_on(hdr + "7,10001,action,30,5\n8,10002," + "x" * (1 << 20) + ",40,6\n")
        self.assertEqual(long.returncode, 1)
        self.assertIn("edge.csv:3: line longer than 1048576 bytes", long.stderr)
        # a failure after good rows leaves no partial --out file
        out = os.path.join(self.d, "scored.csv")
        bad = self.run_on(hdr + "7,10001,action,30,5\n" * 300 + "8,10002,drama,old,6\n",
                          "--out", out, "--batch", "100", "--threads", "1")
        self.assertEqual(bad.returncode, 1)
        # the error names the record's own line, not the start of its chunk
        self.assertIn("edge.csv:302: column 'age' (4): 'old' is not a finite number", bad.stderr)
        self.assertFalse(os.path.exists(out))
        self.assertFalse([n for n in os.listdir(self.d) if n.startswith("scored.csv.tmp")])
        ok = self.run_on(hdr + "7,10001,action,30,5\n", "--out", out)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        with open(out) as f:
            self.assertEqual(f.read(), self.run_on(hdr + "7,10001,action,30,5\n").stdout)

    def test_multi_valued_cells(self):
        with open(os.path.join(self.d, "model.json")) as f:
            mj = f.read()
        one = '{"name": "genre", "table": "genre"}'
        self.assertIn(one, mj)
        mpath = os.path.join(self.d, "model_multi.json")
        with open(mpath, "w") as f:
            f.write(mj.replace(one, '{"name": "genre", "table": "genre", "separator": "|"}'))
        mdir = os.path.join(self.d, "models_multi", "demo")
        subprocess.run([ARGS.bin, "train", "--model-json", mpath, "--data",
                        os.path.join(self.d, "interactions.csv"), "--out", mdir, "--epochs", "1",
                        "--quiet"], check=True, capture_output=True)
        hdr = "user_id,item_id,genre,age,price\n"
        r = self.run_on(hdr + "7,10001,action|comedy,30,5\n7,10001,comedy|action,30,5\n"
                        "7,10001,action,30,5\n", "--keep", "user_id,genre", model=mdir)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = list(csv.DictReader(r.stdout.splitlines()))
        # the kept multi-valued cell comes back whole, not cut at its first value
        self.assertEqual([x["genre"] for x in rows], ["action|comedy", "comedy|action", "action"])
        self.assertEqual(rows[0]["score"], rows[1]["score"])  # a bag: order does not matter
        self.assertNotEqual(rows[0]["score"], rows[2]["score"])
        many = self.run_on(hdr + "7,10001," + "|".join("g%d" % i for i in range(65)) + ",30,5\n",
                           model=mdir)
        self.assertEqual(many.returncode, 1)
        self.assertIn("column 'genre' has more than 64 values", many.stderr)



if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
