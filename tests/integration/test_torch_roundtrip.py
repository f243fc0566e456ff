"""Train in PyTorch, serve in moerec — and back (python/moerec_torch).

For every architecture and gate kind of the model format (MMoE with dense,
top-k + null experts and top-p + always-on gates, OMoE, shared-bottom,
CGC, two-level PLE, HoME with task groups, feature gates, self-gates, row
norm and swish) on a schema with hashed and double-hashed tables, a
multi-valued mean-combined field, numeric fields with a fill, and binary
and regression tasks:

  1. a MoERanker trained a few steps in PyTorch and saved as a version
     directory is served by `moerec serve`: Score equals the PyTorch forward
     within 1e-5 (per task and final score) on the same rows;
  2. a model trained by `moerec train` on the same rows, loaded into
     PyTorch, gives the server's outputs within 1e-5.

Plus: a model with an extra input block (SDIM, extra_dim = 2 x item dim)
served with a store, for users with no history (a zero block); the
version directory round trip is exact; bad weights are refused naming the
tensor. Run: VENV/bin/python test_torch_roundtrip.py --bin PATH/TO/moerec
(PYTHONPATH holding python/)."""
import copy
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import moerec_world  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import moerec_torch  # noqa: E402
from moerec_torch import safetensors  # noqa: E402
from moerec_client import Client  # noqa: E402

ARGS = None
TOL = 1e-5
GENRES = ["drama", "comedy", "horror", "scifi", "romance", "action"]

BASE = {
    "format": "moerec.model", "format_version": 1,
    "tables": [{"name": "user", "rows": 50, "dim": 4},
               {"name": "item", "rows": 200, "dim": 4, "hash": "double", "seed": 7},
               {"name": "genre", "rows": 16, "dim": 3}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "table": "item"},
                                 {"name": "genres", "table": "genre", "combiner": "mean",
                                  "separator": "|"}],
                 "numeric": [{"name": "price", "mean": 5.0, "std": 2.0},
                             {"name": "age", "mean": 30.0, "std": 10.0, "fill": 35.0}]},
    "tasks": [{"name": "click", "weight": 1.0}, {"name": "like", "weight": 0.5},
              {"name": "rating", "kind": "regression", "weight": 0.1}],
}
ARCHS = {
    "mmoe_dense": {"type": "mmoe", "experts": 3, "expert_hidden": [8], "tower_hidden": [4]},
    "mmoe_topk_null": {"type": "mmoe", "experts": 4, "expert_hidden": [8], "tower_hidden": [4],
                       "gate": {"type": "topk", "k": 2, "null_experts": 1}},
    "mmoe_topp_always": {"type": "mmoe", "experts": 4, "expert_hidden": [8, 6],
                         "tower_hidden": [4], "gate": {"type": "topp", "p": 0.5, "always_on": 1}},
    "omoe_topk": {"type": "omoe", "experts": 3, "expert_hidden": [8], "tower_hidden": [4],
                  "gate": {"type": "topk", "k": 1}},
    "shared_bottom": {"type": "shared_bottom", "expert_hidden": [8], "tower_hidden": [4]},
    "cgc_topk": {"type": "cgc", "experts": 1, "task_experts": 2, "expert_hidden": [8],
                 "tower_hidden": [4], "gate": {"type": "topk", "k": 2}},
    "ple_topp_null": {"type": "ple", "levels": 2, "experts": 2, "task_experts": 1,
                      "expert_hidden": [8], "tower_hidden": [4],
                      "gate": {"type": "topp", "p": 0.6, "null_experts": 1}},
    "home": {"type": "home", "experts": 1, "task_experts": 2, "expert_hidden": [6],
             "tower_hidden": [4], "task_groups": [0, 0, 1], "feature_gate_rank": 2,
             "self_gate": True, "gate": {"type": "topk", "k": 2}},
}


def make_rows(n, seed):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        r = {"user_id": "u%d" % rng.randrange(30), "item_id": "i%d" % rng.randrange(100),
             "price": round(rng.uniform(1, 10), 3)}
        if rng.random() < 0.8:
            r["genres"] = rng.sample(GENRES, rng.randint(1, 3))
        if rng.random() < 0.7:
            r["age"] = float(rng.randint(18, 70))
        rows.append(r)
    return rows


def labels(rows):
    out = []
    for r in rows:
        g = r.get("genres", [])
        click = 1.0 if ("drama" in g) != (r["price"] > 6) else 0.0
        like = 1.0 if r.get("age", 35) > 40 and click else 0.0
        out.append([click, like, r["price"] / 10.0])
    return out


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "genres", "price", "age", "click", "like", "rating"])
        for r, y in zip(rows, labels(rows)):
            w.writerow([r["user_id"], r["item_id"], "|".join(r.get("genres", [])), r["price"],
                        r.get("age", ""), int(y[0]), int(y[1]), y[2]])


def model_json(name, arch, **features):
    cfg = copy.deepcopy(BASE)
    cfg["name"], cfg["arch"] = name, copy.deepcopy(arch)
    cfg["features"].update(features)
    return cfg


def train_torch(cfg, rows, steps=25, seed=1):
    m = moerec_torch.MoERanker(cfg, seed=seed)
    batch = m.encode(rows)
    y = torch.tensor(labels(rows))
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    first = None
    for _ in range(steps):
        opt.zero_grad()
        loss = m.loss(batch, y)
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
    return m, first, float(loss)


def served(client, model, rows, cand_keys=("genres", "price")):
    """Score the rows through the server, grouped by user, in row order:
    (outputs (N, T), final scores (N,)); cand_keys: the candidate features."""
    outs, scores = [None] * len(rows), [None] * len(rows)
    by_user = {}
    for i, r in enumerate(rows):
        by_user.setdefault((r["user_id"], r.get("age")), []).append(i)
    for (user, age), idx in by_user.items():
        cands = [(rows[i]["item_id"], {k: v for k, v in rows[i].items()
                                       if k in cand_keys}) for i in idx]
        resp = client.score(user, cands, user_features=None if age is None else {"age": age},
                            model=model)
        for i, it in zip(idx, resp.items):
            outs[i] = [t.value for t in it.tasks]
            scores[i] = it.score
    return np.array(outs, dtype=np.float64), np.array(scores, dtype=np.float64)


def max_err(a, b):
    return float((np.abs(a - b) / np.maximum(np.abs(b), 1.0)).max())


class TorchRoundTripTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        # two model roots (a server serves at most 16 models): t_* PyTorch-trained, m_* moerec
        d = cls.models_root = os.path.join(cls.tmp.name, "models-t")
        dm = cls.models_m = os.path.join(cls.tmp.name, "models-m")
        os.makedirs(d)
        os.makedirs(dm)
        cls.train_rows, cls.eval_rows = make_rows(400, 1), make_rows(60, 2)
        write_csv(os.path.join(cls.tmp.name, "train.csv"), cls.train_rows)
        cls.losses = {}
        for name, arch in ARCHS.items():
            # 1. PyTorch-trained, saved as version 1 of t_<name>
            m, l0, l1 = train_torch(model_json("t_" + name, arch), cls.train_rows)
            cls.losses[name] = (l0, l1)
            moerec_torch.save(m, os.path.join(d, "t_" + name))
            # 2. moerec-trained m_<name>
            mj = os.path.join(cls.tmp.name, "m_%s.json" % name)
            with open(mj, "w") as f:
                json.dump(dict(model_json("m_" + name, arch), train={"epochs": 2}), f)
            subprocess.run([ARGS.bin, "train", "--model-json", mj, "--data",
                            os.path.join(cls.tmp.name, "train.csv"), "--out",
                            os.path.join(dm, "m_" + name), "--quiet"], check=True,
                           capture_output=True)
        # 3. an extra (SDIM) input block: extra_dim = 2 x the store's item dim
        cls.sdim_cfg = model_json("t_sdim", ARCHS["mmoe_dense"], extra_dim=8)
        moerec_torch.save(train_torch(cls.sdim_cfg, cls.train_rows, steps=5)[0],
                          os.path.join(d, "t_sdim"))
        cls.srv = moerec_world.Server(ARGS.bin, cls.tmp.name, {
            "model_dir": d, "item_dim": 4, "default_model": "t_mmoe_dense"}, tag="t")
        cls.srv_m = moerec_world.Server(ARGS.bin, cls.tmp.name, {
            "model_dir": dm, "item_dim": 4, "default_model": "m_mmoe_dense"}, tag="m")
        cls.clients = {"t": Client(cls.srv.target, timeout=30),
                       "m": Client(cls.srv_m.target, timeout=30)}

    @classmethod
    def tearDownClass(cls):
        for c in cls.clients.values():
            c.close()
        cls.srv.stop()
        cls.srv_m.stop()
        cls.tmp.cleanup()

    def check(self, model, m):
        with torch.no_grad():
            out = m(m.encode(self.eval_rows)).double()
            score = m.final_score(out)
        got, got_score = served(self.clients[model[0]], model, self.eval_rows)
        e1, e2 = max_err(got, out.numpy()), max_err(got_score, score.numpy())
        print("%-22s served vs PyTorch: max err tasks %.2e, score %.2e" % (model, e1, e2))
        self.assertLessEqual(e1, TOL, model)
        self.assertLessEqual(e2, TOL, model)
        return out

    def test_pytorch_trained_served(self):
        for name in ARCHS:
            with self.subTest(arch=name):
                l0, l1 = self.losses[name]
                self.assertLess(l1, l0, "PyTorch training did not lower the loss")
                info = self.clients["t"].get_model_info("t_" + name)
                self.assertEqual(info.architecture, ARCHS[name]["type"])
                self.check("t_" + name, moerec_torch.load(os.path.join(self.models_root,
                                                                       "t_" + name, "1")))

    def test_moerec_trained_loaded(self):
        for name in ARCHS:
            with self.subTest(arch=name):
                vd = os.path.join(self.models_m, "m_" + name, "1")
                m = moerec_torch.load(vd)
                out = self.check("m_" + name, m)
                # the outputs depend on the inputs (not a constant model)
                self.assertGreater(float(out[:, 0].std()), 1e-4)

    def test_gate_kinds_route(self):
        # top-k keeps exactly k of the routed + null logits per row
        m = moerec_torch.load(os.path.join(self.models_root, "t_mmoe_topk_null", "1"))
        with torch.no_grad():
            m(m.encode(self.eval_rows))
        for name, w in m.last_gates:
            if w is not None:
                kept = (w > 0).sum(1)
                self.assertTrue(bool((kept <= 2).all()), name)

    def test_extra_block(self):
        m = moerec_torch.load(os.path.join(self.models_root, "t_sdim", "1"))
        self.assertEqual(m.lay.in_dim, 4 + 4 + 3 + 2 + 8)
        rows = [dict(r, user_id="nobody%d" % i) for i, r in enumerate(self.eval_rows[:10])]
        with torch.no_grad():
            out = m(m.encode(rows)).double()
        got, _ = served(self.clients["t"], "t_sdim", rows)
        self.assertLessEqual(max_err(got, out.numpy()), TOL)
        # a non-zero block changes the outputs
        with torch.no_grad():
            out2 = m(m.encode([dict(r, extra=[0.5] * 8) for r in rows])).double()
        self.assertGreater(float((out2 - out).abs().max()), 1e-4)

    def test_version_dir_round_trip_and_errors(self):
        src = os.path.join(self.models_m, "m_home", "1")
        m = moerec_torch.load(src)
        with tempfile.TemporaryDirectory() as d:
            vd = moerec_torch.save(m, os.path.join(d, "copy"))
            self.assertTrue(vd.endswith(os.path.join("copy", "1")))
            a, _ = safetensors.read(os.path.join(src, "weights.safetensors"))
            b, meta = safetensors.read(os.path.join(vd, "weights.safetensors"))
            self.assertEqual(sorted(a), sorted(b))
            for k in a:
                self.assertTrue(np.array_equal(a[k], b[k]), k)
            self.assertEqual(meta["arch"], "home")
            with open(os.path.join(src, "model.json")) as f1, \
                    open(os.path.join(vd, "model.json")) as f2:
                j1, j2 = json.load(f1), json.load(f2)
            self.assertEqual(j1["tables"], j2["tables"])  # seeds survive (signed int64)
            self.assertEqual(moerec_torch.latest_version(os.path.join(d, "copy")), 1)
            # the header is 8-byte aligned, as moerec writes it
            with open(os.path.join(vd, "weights.safetensors"), "rb") as f:
                self.assertEqual(int.from_bytes(f.read(8), "little") % 8, 0)
            # refused: a missing tensor, a wrong shape, an unknown one
            t = m.tensors()
            bad = dict(t)
            del bad["tower0.fc0.w"]
            with self.assertRaisesRegex(ValueError, "tower0.fc0.w is missing"):
                m.load_tensors(bad)
            bad = dict(t, **{"tower0.fc0.w": np.zeros((1, 1), np.float32)})
            with self.assertRaisesRegex(ValueError, "tower0.fc0.w has shape"):
                m.load_tensors(bad)
            with self.assertRaisesRegex(ValueError, "not part of this architecture"):
                m.load_tensors(dict(t, **{"l9.e9.fc0.w": np.zeros((1, 1), np.float32)}))
            with self.assertRaisesRegex(ValueError, "not in the model's schema"):
                m.encode([{"user_id": "u", "nope": 1.0}])
            with self.assertRaisesRegex(ValueError, "unknown field"):
                moerec_torch.MoERanker(dict(model_json("x", ARCHS["home"]), bogus=1))

    def test_docs_snippet(self):
        """docs/pytorch.md's first snippet runs as written and saves a version
        moerec loads (Admin/Reload of a server over that model root)."""
        doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                           "pytorch.md")
        with open(doc) as f:
            text = f.read()
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        with tempfile.TemporaryDirectory() as d:
            cwd = os.getcwd()
            os.chdir(d)
            try:
                exec(compile(code, "docs/pytorch.md", "exec"), {})
            finally:
                os.chdir(cwd)
            m = moerec_torch.load(os.path.join(d, "models", "shop", "1"))
            self.assertEqual(m.cfg["arch"]["gate"]["type"], "topk")
            srv = moerec_world.Server(ARGS.bin, d, {"model_dir": os.path.join(d, "models"),
                                                    "item_dim": 4}, tag="doc")
            try:
                with Client(srv.target) as c:
                    r = c.score("u1", [("i7", {"genres": ["drama"], "price": 3.5})], model="shop")
                    with torch.no_grad():
                        want = m.final_score(m(m.encode([{"user_id": "u1", "item_id": "i7",
                                                           "genres": ["drama"], "price": 3.5}])))
                    self.assertAlmostEqual(r.items[0].score, float(want[0]), delta=TOL)
            finally:
                srv.stop()


if __name__ == "__main__":
    torch.set_num_threads(1)
    moerec_world.main(globals())
