#!/usr/bin/python3
"""Mapped embedding tables (graph, double_graph, frequency, lsh) end to end:
`moerec train` builds each table's mapping from the training split and
stores it in the version directory, the server loads it with the model
(GetModelInfo reports kind, rows and collision statistics; a balanced
GraphHash table uses every row and its model.json keys are kept), Score equals
`moerec score` on the same rows, and a Reload to a version whose mapping is
corrupt or missing fails naming the file while the old version keeps
serving."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None

TABLES = '''"tables": [
    {"name": "user", "rows": 16, "dim": 8, "seed": 1, "hash": "graph", "pair": "item"},
    {"name": "item", "rows": 64, "dim": 8, "seed": 2, "hash": "double_graph", "pair": "user",
     "balance": "degree", "resolution": 2},
    {"name": "genre", "rows": 8, "dim": 4, "seed": 3, "hash": "frequency"},
    {"name": "item2", "rows": 32, "dim": 4, "seed": 4, "hash": "lsh", "pair": "user"}
  ],'''


class MappedTablesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "50", "--items", "200",
                        "--rows", "4000"], check=True, capture_output=True)
        with open(os.path.join(d, "model.json")) as f:
            mj = f.read()
        start, end = mj.index('"tables"'), mj.index("],", mj.index('"tables"')) + 2
        mj = mj[:start] + TABLES + mj[end:]
        item = '{"name": "item_id", "table": "item"}'
        assert item in mj
        mj = mj.replace(item, item + ', {"name": "item_lsh", "column": "item_id", "table": "item2"}')
        cls.mjson = os.path.join(d, "mapped.json")
        with open(cls.mjson, "w") as f:
            f.write(mj)
        cls.root = os.path.join(d, "models", "demo")
        r = subprocess.run([ARGS.bin, "train", "--model-json", cls.mjson, "--data",
                            os.path.join(d, "interactions.csv"), "--out", cls.root, "--epochs", "1",
                            "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.train_log = r.stderr
        cls.v1 = os.path.join(cls.root, "1")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start(self):
        srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--log-level", "warn",
                                "--model-dir", os.path.join(self.d, "models")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = srv.stdout.readline().strip()
        self.assertTrue(line.startswith("listening on "), line)
        import grpc
        return srv, grpc.insecure_channel(line[len("listening on "):])

    def stop(self, srv, ch):
        ch.close()
        srv.send_signal(signal.SIGTERM)
        self.assertEqual(srv.wait(timeout=60), 0)
        srv.stdout.close()
        srv.stderr.close()

    def test_version_directory_holds_the_mappings(self):
        for name in ("user.map", "item.map", "genre.map", "item2.map"):
            self.assertTrue(os.path.isfile(os.path.join(self.v1, name)), name)
        self.assertIn("table 'user' (graph)", self.train_log)
        self.assertIn("table 'genre' (frequency)", self.train_log)

    def test_score_equals_the_tool_and_model_info(self):
        out = list(csv.DictReader(subprocess.run(
            [ARGS.bin, "score", "--model", self.root, "--data", os.path.join(self.d, "interactions.csv"),
             "--quiet", "--threads", "1"], capture_output=True, text=True, check=True).stdout.splitlines()))
        with open(os.path.join(self.d, "interactions.csv")) as f:
            rows = list(csv.DictReader(f))
        import moerec_pb2 as pb, moerec_pb2_grpc
        srv, ch = self.start()
        try:
            stub = moerec_pb2_grpc.RecommenderStub(ch)
            info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
            tables = {t.name: t for t in info.tables}
            self.assertEqual([tables[n].kind for n in ("user", "item", "genre", "item2")],
                             ["graph", "double_graph", "frequency", "lsh"])
            self.assertEqual(tables["user"].rows, 16)
            self.assertEqual(tables["user"].mapping, "user.map")
            self.assertEqual(tables["user"].mapped_ids, 50)  # every demo user interacted
            self.assertGreater(tables["user"].occupied_rows, 0)
            self.assertLessEqual(tables["user"].occupied_rows, 16)
            self.assertGreaterEqual(tables["user"].max_load, tables["user"].mean_load)
            # balanced GraphHash rows: every row of the item table is used
            self.assertEqual(tables["item"].occupied_rows, 64)
            with open(os.path.join(self.v1, "model.json")) as f:
                saved = [t for t in json.load(f)["tables"] if t["name"] == "item"][0]
            self.assertEqual((saved["balance"], saved["resolution"]), ("degree", 2))
            self.assertEqual(tables["genre"].mapped_ids, 4)  # the floor(8/2) most frequent genres
            self.assertEqual(tables["genre"].max_load, 1)    # the head owns its rows
            # an unseen user (hash fallback) scores too
            for i in list(range(0, 400, 13)) + [None]:
                r = rows[i if i is not None else 0]
                req = pb.ScoreRequest(user_id=r["user_id"] if i is not None else "no-such-user")
                req.user_features.numeric.add(name="age", value=float(r["age"]))
                c = req.candidates.add(item_id=r["item_id"])
                c.features.categorical.add(name="genre", values=[r["genre"]])
                c.features.categorical.add(name="item_lsh", values=[r["item_id"]])
                c.features.numeric.add(name="price", value=float(r["price"]))
                got = stub.Score(req, timeout=10).items[0]
                if i is None:
                    self.assertTrue(0 <= got.score <= 1)
                    continue
                self.assertAlmostEqual(float(out[i]["score"]), got.score, places=6)
                self.assertAlmostEqual(float(out[i]["click"]), got.tasks[0].value, places=6)
        finally:
            self.stop(srv, ch)

    def test_bad_mapping_fails_the_reload_and_the_old_version_serves(self):
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        srv, ch = self.start()
        v2 = os.path.join(self.root, "2")
        try:
            admin, rec = moerec_pb2_grpc.AdminStub(ch), moerec_pb2_grpc.RecommenderStub(ch)
            self.assertEqual(rec.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).version, "1")
            shutil.copytree(self.v1, v2)
            with open(os.path.join(v2, "item.map"), "r+b") as f:  # flip a byte of the table
                f.seek(100)
                b = f.read(1)
                f.seek(100)
                f.write(bytes([b[0] ^ 0xff]))
            with self.assertRaises(grpc.RpcError) as cm:
                admin.Reload(pb.ReloadRequest(version="2"), timeout=30)
            self.assertIn("item.map", cm.exception.details())
            os.remove(os.path.join(v2, "item.map"))
            with self.assertRaises(grpc.RpcError) as cm:
                admin.Reload(pb.ReloadRequest(version="2"), timeout=30)
            self.assertIn("item.map", cm.exception.details())
            req = pb.ScoreRequest(user_id="1")
            req.candidates.add(item_id="10001")
            self.assertEqual(len(rec.Score(req, timeout=10).items), 1)
            self.assertEqual(rec.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).version, "1")
        finally:
            shutil.rmtree(v2, ignore_errors=True)
            self.stop(srv, ch)

    def test_index_tables_then_train_with_them(self):
        maps = os.path.join(self.d, "maps")
        r = subprocess.run([ARGS.bin, "index", "tables", "--model-json", self.mjson, "--data",
                            os.path.join(self.d, "interactions.csv"), "--out", maps],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        import json
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual([t["name"] for t in summary["tables"]], ["user", "item", "genre", "item2"])
        self.assertEqual(summary["tables"][0]["mapped_ids"], 50)
        root = os.path.join(self.d, "models_from_maps")
        r = subprocess.run([ARGS.bin, "train", "--model-json", self.mjson, "--data",
                            os.path.join(self.d, "interactions.csv"), "--out", root, "--epochs", "1",
                            "--quiet", "--mappings", maps], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(loaded)", r.stderr)
        for name in ("user.map", "item.map", "genre.map", "item2.map"):
            with open(os.path.join(maps, name), "rb") as a, open(os.path.join(root, "1", name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        # usage errors: exit 2; a model without mapped tables: exit 1
        r = subprocess.run([ARGS.bin, "index", "tables", "--model-json", self.mjson], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([ARGS.bin, "index", "tables", "--model-json", os.path.join(self.d, "model.json"),
                            "--data", os.path.join(self.d, "interactions.csv"), "--out", maps],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no frequency, graph, double_graph or lsh table", r.stderr)

    def test_model_json_errors(self):
        with open(self.mjson) as f:
            mj = f.read()
        for old, new, msg in (
                ('"hash": "graph", "pair": "item"', '"hash": "graph"', "tables[0].pair is required"),
                ('"pair": "item"', '"pair": "nope"', "tables[0].pair 'nope' must name another table"),
                ('"seed": 3, "hash": "frequency"', '"seed": 3, "hash": "hash", "mapping": "g.map"',
                 "mapping, pair and vectors belong to"),
                ('"seed": 3, "hash": "frequency"', '"seed": 3, "hash": "frequency", "mapping": "../x"',
                 "must be a plain file name"),
                ('"hash": "lsh", "pair": "user"', '"hash": "lsh"', "exactly one of vectors")):
            self.assertIn(old, mj)
            bad = os.path.join(self.d, "bad.json")
            with open(bad, "w") as f:
                f.write(mj.replace(old, new, 1))
            r = subprocess.run([ARGS.bin, "train", "--model-json", bad, "--data",
                                os.path.join(self.d, "interactions.csv"), "--out",
                                os.path.join(self.d, "bad_models"), "--epochs", "1", "--quiet"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, new)
            self.assertIn(msg, r.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
