"""moerec_torch with mapped tables (python/moerec_torch/mapping.py): a model
whose tables are `graph` (balanced by degree, 3 hubs), `double_graph`, `frequency`
and `lsh` (MinHash of the user set; SimHash of content vectors, which also
maps items never rated), on test_torch_roundtrip's schema.

  1. `moerec train` builds the mappings and writes the version; loaded into
     PyTorch, its outputs equal the server's Score and `moerec score` within
     1e-5, also for users, items and genres the mappings never saw (the
     hash fallback);
  2. a MoERanker built over `moerec index tables` mappings, trained in
     PyTorch and saved, is served by moerec with Score equal to the PyTorch
     forward within 1e-5, and its version directory holds byte-identical
     mapping files;
  3. bad mappings and model.json options are refused naming the table or
     the file.
Run: VENV/bin/python test_torch_mapped.py --bin PATH/TO/moerec."""
import copy
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import moerec_world  # noqa: E402
import test_torch_roundtrip as rt  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import moerec_torch  # noqa: E402
from moerec_torch.mapping import Mapping  # noqa: E402
from moerec_client import Client  # noqa: E402

ARGS = None
TOL = 1e-5
CAND = ("genres", "price", "item_lsh", "item_vec")
ARCH = {"type": "mmoe", "experts": 3, "expert_hidden": [8], "tower_hidden": [4],
        "gate": {"type": "topk", "k": 2}}
TABLES = [
    {"name": "user", "rows": 8, "dim": 4, "hash": "graph", "pair": "item", "balance": "degree",
     "hubs": 3},
    {"name": "item", "rows": 40, "dim": 4, "hash": "double_graph", "pair": "user", "seed": 7},
    {"name": "genre", "rows": 10, "dim": 3, "hash": "frequency"},
    {"name": "item2", "rows": 16, "dim": 3, "hash": "lsh", "pair": "user"},
    {"name": "item3", "rows": 16, "dim": 2, "hash": "lsh", "vectors": "vectors.csv"},
]


def model_json(name):
    cfg = rt.model_json(name, ARCH)
    cfg["tables"] = copy.deepcopy(TABLES)
    cfg["features"]["categorical"] += [
        {"name": "item_lsh", "column": "item_id", "table": "item2"},
        {"name": "item_vec", "column": "item_id", "table": "item3"}]
    return cfg


def with_lsh(rows):
    return [dict(r, item_lsh=r["item_id"], item_vec=r["item_id"]) for r in rows]


def write_vectors(path):
    """Content vectors of items i0..i119 (i100.. never rated): SimHash rows
    for every one of them; the eval rows' new items have none."""
    rng = np.random.default_rng(5)
    with open(path, "w") as f:
        f.write("item_id,e0,e1,e2,e3\n")
        for i in range(120):
            f.write("i%d,%s\n" % (i, ",".join("%.4f" % x for x in rng.normal(size=4))))


def eval_rows():
    """Seen rows, then rows whose user, item or genre no mapping holds."""
    rows = rt.make_rows(60, 2)
    for i, r in enumerate(rows[40:]):
        if i % 3 == 0:
            r["user_id"] = "new-user-%d" % i
        if i % 3 == 1:
            r["item_id"] = "new-item-%d" % i
        if i % 3 == 2:
            r["genres"] = [["western"], ["noir", "drama"], ["anime"]][i % 9 // 3]
    return with_lsh(rows)


def moerec(*args):
    r = subprocess.run([ARGS.bin] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


class TorchMappedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        cls.root = os.path.join(d, "models")
        cls.train_rows, cls.eval_rows = with_lsh(rt.make_rows(400, 1)), eval_rows()
        cls.train_csv, cls.eval_csv = os.path.join(d, "train.csv"), os.path.join(d, "eval.csv")
        rt.write_csv(cls.train_csv, cls.train_rows)
        rt.write_csv(cls.eval_csv, cls.eval_rows)
        write_vectors(os.path.join(d, "vectors.csv"))  # model.json's "vectors", beside it
        # 1. moerec-trained m_mapped (mappings built by train)
        mj = os.path.join(d, "m_mapped.json")
        with open(mj, "w") as f:
            json.dump(dict(model_json("m_mapped"), train={"epochs": 2}), f)
        moerec("train", "--model-json", mj, "--data", cls.train_csv, "--out",
               os.path.join(cls.root, "m_mapped"), "--quiet")
        cls.m_dir = os.path.join(cls.root, "m_mapped", "1")
        # 2. mappings from `moerec index tables`, model trained in PyTorch
        tj = os.path.join(d, "t_mapped.json")
        with open(tj, "w") as f:
            json.dump(model_json("t_mapped"), f)
        cls.maps = os.path.join(d, "maps")
        moerec("index", "tables", "--model-json", tj, "--data", cls.train_csv, "--out", cls.maps)
        m = moerec_torch.MoERanker(model_json("t_mapped"), seed=1, mappings=cls.maps)
        batch, y = m.encode(cls.train_rows), torch.tensor(rt.labels(cls.train_rows))
        opt = torch.optim.Adam(m.parameters(), lr=0.02)
        cls.losses = []
        for _ in range(25):
            opt.zero_grad()
            loss = m.loss(batch, y)
            loss.backward()
            opt.step()
            cls.losses.append(float(loss))
        cls.t_dir = moerec_torch.save(m, os.path.join(cls.root, "t_mapped"))
        cls.srv = moerec_world.Server(ARGS.bin, d, {"model_dir": cls.root, "item_dim": 4,
                                                    "default_model": "m_mapped"})
        cls.client = Client(cls.srv.target, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.srv.stop()
        cls.tmp.cleanup()

    def forward(self, m, rows):
        with torch.no_grad():
            out = m(m.encode(rows)).double()
            return out.numpy(), m.final_score(out).numpy()

    def check_served(self, name, m):
        out, score = self.forward(m, self.eval_rows)
        got, got_score = rt.served(self.client, name, self.eval_rows, CAND)
        e1, e2 = rt.max_err(got, out), rt.max_err(got_score, score)
        print("%s served vs PyTorch: max err tasks %.2e, score %.2e" % (name, e1, e2))
        self.assertLessEqual(e1, TOL)
        self.assertLessEqual(e2, TOL)
        return out

    def test_moerec_trained_loaded(self):
        m = moerec_torch.load(self.m_dir)
        self.assertEqual([t["hash"] for t in m.cfg["tables"]],
                         ["graph", "double_graph", "frequency", "lsh", "lsh"])
        out = self.check_served("m_mapped", m)
        self.assertGreater(float(out[:, 0].std()), 1e-4)  # not a constant model
        # `moerec score` on the same rows (CSV columns) agrees too
        tool = list(csv.DictReader(io.StringIO(moerec(
            "score", "--model", os.path.join(self.root, "m_mapped"), "--data", self.eval_csv,
            "--quiet", "--threads", "1"))))
        _, score = self.forward(m, self.eval_rows)
        want = np.array([float(r["score"]) for r in tool])
        self.assertEqual(len(want), len(self.eval_rows))
        self.assertLessEqual(rt.max_err(want, score), TOL)
        clicks = np.array([float(r["click"]) for r in tool])
        self.assertLessEqual(rt.max_err(clicks, self.forward(m, self.eval_rows)[0][:, 0]), TOL)

    def test_fallback_and_mapped_ids_both_scored(self):
        """The eval rows hit stored ids and the hash fallback of each table;
        the Python reader counts the ids the server reports."""
        m = moerec_torch.load(self.m_dir)
        info = {t.name: t for t in self.client.get_model_info("m_mapped").tables}
        fields = {"user": "user_id", "item": "item_id", "genre": "genres", "item2": "item_lsh",
                  "item3": "item_vec"}
        for t in m.cfg["tables"]:
            mp = m.mappings[t["name"]]
            self.assertEqual(len(mp.ids), info[t["name"]].mapped_ids, t["name"])
            vals = set()
            for r in self.eval_rows:
                v = r.get(fields[t["name"]], [])
                vals.update([v] if isinstance(v, str) else v)
            found = [mp.lookup(moerec_torch.field_id(fields[t["name"]], v, t["seed"]))[0]
                     for v in sorted(vals)]
            self.assertTrue(any(found) and not all(found), t["name"])
        # frequency: the floor(10/2) most frequent genres own rows 0..4, the
        # rest (scifi, never seen ones) hash into rows 5..9
        g = [t for t in m.cfg["tables"] if t["name"] == "genre"][0]
        self.assertEqual(len(m.mappings["genre"].ids), 5)
        for v in ("western", "noir", "anime"):
            self.assertGreaterEqual(moerec_torch.value_rows(g, "genres", v,
                                                            m.mappings["genre"])[0], 5)
        # SimHash rows for every item of the vectors file, rated or not
        self.assertEqual(len(m.mappings["item3"].ids), 120)
        # "hubs": 3: the three heaviest users own rows 0..2 alone
        per_row = np.bincount(m.mappings["user"].rows, minlength=8)
        self.assertEqual(list(per_row[:3]), [1, 1, 1])
        self.assertGreater(int(per_row[3:].min()), 0)  # balanced: every other row used
        # double_graph: two distinct rows per value, stored or not
        it = [t for t in m.cfg["tables"] if t["name"] == "item"][0]
        for v in ("i1", "new-item-1"):
            r = moerec_torch.value_rows(it, "item_id", v, m.mappings["item"])
            self.assertEqual(len(r), 2)
            self.assertNotEqual(r[0], r[1])

    def test_pytorch_trained_served(self):
        self.assertLess(self.losses[-1], self.losses[0])
        for name in ("user.map", "item.map", "genre.map", "item2.map", "item3.map"):
            with open(os.path.join(self.maps, name), "rb") as a, \
                    open(os.path.join(self.t_dir, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        with open(os.path.join(self.t_dir, "model.json")) as f:
            saved = {t["name"]: t for t in json.load(f)["tables"]}
        self.assertEqual((saved["user"]["balance"], saved["user"]["pair"], saved["user"]["hubs"]),
                         ("degree", "item", 3))
        self.assertEqual(saved["genre"]["mapping"], "genre.map")
        self.check_served("t_mapped", moerec_torch.load(self.t_dir))
        # the version directory round trip keeps model.json's tables as moerec wrote them
        with open(os.path.join(self.m_dir, "model.json")) as f:
            want = json.load(f)["tables"]
        with tempfile.TemporaryDirectory() as d:
            vd = moerec_torch.save(moerec_torch.load(self.m_dir), d)
            with open(os.path.join(vd, "model.json")) as f:
                self.assertEqual(json.load(f)["tables"], want)

    def test_bad_mappings_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            vd = os.path.join(d, "1")
            shutil.copytree(self.m_dir, vd)
            path = os.path.join(vd, "item.map")
            with open(path, "r+b") as f:  # flip a byte of the table
                f.seek(100)
                b = f.read(1)
                f.seek(100)
                f.write(bytes([b[0] ^ 0xFF]))
            with self.assertRaisesRegex(ValueError, r"table 'item' \(double_graph\).*item\.map.*"
                                                    "checksum mismatch"):
                moerec_torch.load(vd)
            os.remove(path)
            with self.assertRaisesRegex(ValueError, r"item\.map: cannot read the mapping"):
                moerec_torch.load(vd)
            shutil.copy(os.path.join(vd, "user.map"), path)  # another table's mapping
            with self.assertRaisesRegex(ValueError, "mapping has 8 rows, table 'item' has 40"):
                moerec_torch.load(vd)
            with open(path, "wb") as f:
                f.write(b"MRGHASH\x00" + b"\x00" * 10)
            with self.assertRaisesRegex(ValueError, "shorter than the header"):
                moerec_torch.load(vd)
        with self.assertRaisesRegex(ValueError, r"table 'user' \(graph\) needs its mapping file "
                                                "'user.map'"):
            moerec_torch.MoERanker(model_json("x"))
        # a head as large as the frequency table is refused as moerec refuses it
        head = Mapping.from_tables(range(10), range(10), 10, 3)
        with self.assertRaisesRegex(ValueError, "frequency head of 10 ids, table has 10 rows"):
            moerec_torch.MoERanker(model_json("x"), mappings=dict(
                {n: os.path.join(self.maps, n + ".map") for n in ("user", "item", "item2", "item3")},
                genre=head))

    def test_model_json_options_checked(self):
        def bad(edit, msg):
            cfg = model_json("x")
            edit(cfg["tables"])
            with self.assertRaisesRegex(ValueError, msg):
                moerec_torch.MoERanker(cfg, mappings=self.maps)
        bad(lambda t: t[0].pop("pair"), r"tables\[0\]\.pair is required for 'graph'")
        bad(lambda t: t[0].update(pair="nope"), r"tables\[0\]\.pair 'nope' must name another")
        bad(lambda t: t[3].pop("pair"), "an lsh table needs exactly one of vectors")
        bad(lambda t: t[2].update(balance="degree"), "resolution, balance and hubs belong to the")
        bad(lambda t: t[0].update(hubs=8), r"tables\[0\]\.hubs must be an integer in \[0, 7\]")
        bad(lambda t: t[0].update(balance="size"), "balance 'size' must be")
        bad(lambda t: t[1].update(resolution=0), r"tables\[1\]\.resolution must be in")
        bad(lambda t: t[2].update(mapping="../g.map"), "must be a plain file name")
        bad(lambda t: t[2].update(mapping="user.map"), r"mapping 'user.map' is used twice")
        bad(lambda t: t[2].update(hash="hash", mapping="g.map"), "mapping, pair and vectors belong to")
        bad(lambda t: t[2].update(hash="cuckoo"), "unknown hashing kind 'cuckoo'")


if __name__ == "__main__":
    torch.set_num_threads(1)
    moerec_world.main(globals())
