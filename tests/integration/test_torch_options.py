"""moerec_torch accepts every model.json moerec accepts, with the same
meaning, and refuses what moerec refuses naming the field
(python/moerec_torch/config.py, records.py; docs/pytorch.md, "model.json
options").

  1. a model whose tasks use a text label rule ("positive") and a
     threshold, trained by `moerec train` with the options PyTorch used to
     refuse or ignore (positive, loss_decay, lbl_coef, entropy_coef,
     task_groups on a non-HoME arch, swish, two expert layers, no tower
     hidden layer, openblas_fp32), loads into PyTorch with `moerec score`'s
     outputs within 1e-5, reading the same CSV through encode_records
     (columns, separators, missing cells);
  2. moerec_torch's label rule is moerec's: a model trained by moerec on the
     text labels and one trained on the 0/1 labels moerec_torch.labels()
     made of them have the same weights;
  3. the training loss: masked rows, loss_decay^epoch, the gates'
     load-balancing and entropy losses; model.loss equals the loss
     `moerec train` reports for the same full batch;
  4. each model.json moerec refuses is refused by PyTorch too, naming the
     field (and `moerec train` refuses the same file);
  5. 150 seeded random edits of model.json: PyTorch refuses exactly what
     moerec refuses, and where both accept it resolves the model.json
     moerec writes and scores as `moerec score`.
Run: python3 test_torch_options.py --bin PATH/TO/moerec (PYTHONPATH holding python/)."""
import copy
import csv
import io
import json
import math
import os
import random
import re
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

ARGS = None
TOL = 1e-5
GENRES = ["drama", "comedy", "horror", "scifi"]
ACTIONS = ["buy", "view", "cart", "buy now"]

CFG = {
    "name": "opts",
    "tables": [{"name": "user", "rows": 40, "dim": 4},
               {"name": "item", "rows": 90, "dim": 4, "hash": "double"},
               {"name": "genre", "rows": 12, "dim": 3}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "column": "item", "table": "item"},
                                 {"name": "genres", "table": "genre", "combiner": "mean",
                                  "separator": "|"}],
                 "numeric": [{"name": "price", "mean": 5.0, "std": 2.0},
                             {"name": "age", "column": "user_age", "fill": 35.0}]},
    "tasks": [{"name": "buy", "label": "action", "positive": "buy", "loss_decay": 0.8},
              {"name": "like", "label": "stars", "threshold": 4, "weight": 0.5},
              {"name": "spend", "kind": "regression", "weight": 0.1, "loss_weight": 0.5}],
    "arch": {"type": "mmoe", "experts": 4, "expert_hidden": [8, 6], "tower_hidden": [],
             "activation": "swish", "task_groups": [0, 1, 0], "lbl_coef": 0.01,
             "entropy_coef": 0.001, "gate": {"type": "topk", "k": 2, "null_experts": 1}},
    "precision": "openblas_fp32",
    "train": {"epochs": 2, "threads": 1, "seed": 3},
}
COLUMNS = ["user_id", "item", "genres", "price", "user_age", "action", "stars", "spend"]


def make_records(n, seed):
    """CSV records with text labels, missing label cells and missing numerics."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        g = rng.sample(GENRES, rng.randint(0, 2))
        price = round(rng.uniform(1, 10), 3)
        buy = ("drama" in g) != (price > 6)
        out.append({
            "user_id": "u%d" % rng.randrange(25), "item": "i%d" % rng.randrange(60),
            "genres": "|".join(g) + ("|" if rng.random() < 0.1 else ""),
            "price": str(price), "user_age": "" if rng.random() < 0.3 else str(rng.randint(18, 70)),
            "action": "" if rng.random() < 0.1 else "buy" if buy else rng.choice(ACTIONS[1:]),
            "stars": "NA" if rng.random() < 0.1 else str(rng.randint(1, 5)),
            "spend": "%.3f" % (price * buy)})
    return out


def write_csv(path, records, columns=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(records)


def moerec(*args, check=True):
    r = subprocess.run([ARGS.bin] + list(args), capture_output=True, text=True)
    if check:
        assert r.returncode == 0, r.stderr
    return r


# random edits of model.json (test_random_edits_agree_with_moerec)
ARCH_VARIANTS = [
    CFG["arch"],
    {"type": "home", "experts": 1, "task_experts": 2, "expert_hidden": [6], "tower_hidden": [4],
     "task_groups": [0, 0, 1], "feature_gate_rank": 2, "self_gate": True,
     "gate": {"type": "topk", "k": 2}},
    {"type": "ple", "levels": 2, "experts": 2, "task_experts": 1, "expert_hidden": [8],
     "gate": {"type": "topp", "p": 0.6, "null_experts": 1}},
    {"type": "shared_bottom", "expert_hidden": [8], "tower_hidden": [4]},
    {"type": "cgc", "experts": 1, "task_experts": 2, "gate": {"type": "dense", "always_on": 1}},
    {"type": "omoe", "experts": 3, "gate": {"type": "topk", "k": 1}},
]
EDIT_VALUES = [None, True, False, 0, 1, 2, -1, 3, 64, 65, 4097, 2.5, 0.5, 1e39, 1e-50, "", "x",
               "sum", "mean", "relu", "swish", "topk", "topp", "dense", "binary", "regression",
               "buy", "hash", "double", "frequency", "store", "memory", "fp16", [], [0], [8],
               [0, 0, 0], [0, 1, 2], {}, 2 ** 31 + 1, "user", "item", "|", "||", "shared_bottom",
               "home", "ple", "cgc", "omoe", 16, 7]


def edited_config(rng):
    """CFG over a random architecture (and mapped genre table), with one or
    two fields set to a random value (often of the field's own type),
    removed, or an unknown one added."""
    cfg = copy.deepcopy(CFG)
    cfg["train"] = {"epochs": 1, "threads": 1}
    cfg["arch"] = copy.deepcopy(rng.choice(ARCH_VARIANTS))
    if rng.random() < 0.3:
        cfg["tables"][2].update(hash=rng.choice(["frequency", "lsh", "graph"]), pair="user")

    def paths(o, p=()):
        yield p
        for k, v in (o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list)
                     else ()):
            yield from paths(v, p + (k,))
    for _ in range(rng.randint(1, 2)):
        p = rng.choice([p for p in paths(cfg) if p and p[0] != "train"])
        parent = cfg
        try:
            for k in p[:-1]:
                parent = parent[k]
            r = rng.random()
            if r < 0.15 and isinstance(parent, dict):
                del parent[p[-1]]
            elif r < 0.2 and isinstance(parent, dict):
                parent["bogus"] = 1
            elif r < 0.6:
                parent[p[-1]] = copy.deepcopy(rng.choice(EDIT_VALUES))
            else:  # a value of the field's own type, more often valid
                old = parent[p[-1]]
                parent[p[-1]] = (not old if isinstance(old, bool)
                                 else rng.randint(0, 9) if isinstance(old, int)
                                 else round(rng.uniform(0, 2), 2) if isinstance(old, float)
                                 else rng.choice([v for v in EDIT_VALUES if isinstance(v, str)])
                                 if isinstance(old, str)
                                 else [rng.randint(1, 9) for _ in range(rng.randint(0, 3))]
                                 if isinstance(old, list) else old)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed the path
    return cfg


def f32_all(o):
    """A model.json with every number as the float32 moerec keeps."""
    if isinstance(o, float) and abs(o) <= 3.4e38:
        return moerec_torch.config.f32(o)
    if isinstance(o, dict):
        return {k: f32_all(v) for k, v in o.items()}
    if isinstance(o, list):
        return [f32_all(v) for v in o]
    return o


def max_err(a, b):
    return float((np.abs(a - b) / np.maximum(np.abs(b), 1.0)).max())


class TorchOptionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        cls.records, cls.eval_records = make_records(300, 1), make_records(50, 2)
        cls.train_csv, cls.eval_csv = os.path.join(d, "train.csv"), os.path.join(d, "eval.csv")
        write_csv(cls.train_csv, cls.records)
        write_csv(cls.eval_csv, cls.eval_records)
        cls.root = os.path.join(d, "models")
        mj = os.path.join(d, "opts.json")
        with open(mj, "w") as f:
            json.dump(CFG, f)
        moerec("train", "--model-json", mj, "--data", cls.train_csv, "--out",
               os.path.join(cls.root, "text"), "--quiet")
        cls.text_dir = os.path.join(cls.root, "text", "1")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_positive_model_loads_with_moerec_score(self):
        m = moerec_torch.load(self.text_dir)
        self.assertEqual(m.cfg["tasks"][0]["positive"], "buy")
        self.assertEqual(m.cfg["tasks"][1]["threshold"], 4.0)
        with torch.no_grad():
            out = m(m.encode_records(self.eval_records)).double()
            score = m.final_score(out).numpy()
        tool = list(csv.DictReader(io.StringIO(moerec(
            "score", "--model", self.text_dir, "--data", self.eval_csv, "--quiet",
            "--threads", "1").stdout)))
        self.assertEqual(len(tool), len(self.eval_records))
        want = np.array([[float(r[t]) for t in ("buy", "like", "spend")] for r in tool])
        e1 = max_err(want, out.numpy())
        e2 = max_err(np.array([float(r["score"]) for r in tool]), score)
        print("positive-rule model, moerec score vs PyTorch: tasks %.2e, score %.2e" % (e1, e2))
        self.assertLessEqual(e1, TOL)
        self.assertLessEqual(e2, TOL)
        self.assertGreater(float(out[:, 0].std()), 1e-4)  # not a constant model
        # the version directory round trip keeps the rule and every option
        with tempfile.TemporaryDirectory() as d:
            vd = moerec_torch.save(m, os.path.join(d, "copy"))
            with open(os.path.join(vd, "model.json")) as f:
                j = json.load(f)
            self.assertEqual(j["tasks"][0]["positive"], "buy")
            self.assertNotIn("threshold", j["tasks"][0])
            self.assertAlmostEqual(j["tasks"][0]["loss_decay"], 0.8, places=6)
            self.assertEqual(j["arch"]["tower_hidden"], [])
            self.assertEqual(j["precision"], "openblas_fp32")
            m2 = moerec_torch.load(vd)
            self.assertEqual(m2.cfg, m.cfg)
            # moerec reads PyTorch's copy back and scores it the same
            r = moerec("score", "--model", vd, "--data", self.eval_csv, "--quiet",
                       "--threads", "1").stdout
            self.assertEqual(r, moerec("score", "--model", self.text_dir, "--data",
                                       self.eval_csv, "--quiet", "--threads", "1").stdout)

    def test_label_rule_is_moerecs(self):
        """moerec trains the same weights on the text labels as on
        moerec_torch.labels()'s 0/1 (missing cells left empty)."""
        m = moerec_torch.load(self.text_dir)
        y, mask = m.labels(self.records)
        self.assertEqual(float(mask[:, 0].min()), 0.0)  # the empty action cells
        self.assertEqual(float(mask[:, 1].min()), 0.0)  # the NA stars
        self.assertTrue(0 < float(y[:, 0].sum()) < len(self.records))
        num = []
        for r, yy, mk in zip(self.records, y.tolist(), mask.tolist()):
            num.append(dict(r, action="%d" % yy[0] if mk[0] else "",
                            stars="%d" % yy[1] if mk[1] else ""))
        num_csv = os.path.join(self.d, "numeric.csv")
        write_csv(num_csv, num)
        cfg = copy.deepcopy(CFG)
        del cfg["tasks"][0]["positive"]
        del cfg["tasks"][1]["threshold"]
        mj = os.path.join(self.d, "numeric.json")
        with open(mj, "w") as f:
            json.dump(cfg, f)
        moerec("train", "--model-json", mj, "--data", num_csv, "--out",
               os.path.join(self.root, "numeric"), "--quiet")
        a, _ = safetensors.read(os.path.join(self.text_dir, "weights.safetensors"))
        b, _ = safetensors.read(os.path.join(self.root, "numeric", "1", "weights.safetensors"))
        self.assertEqual(sorted(a), sorted(b))
        worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        print("text-label vs labels()-label training: worst weight difference %.2e" % worst)
        self.assertEqual(worst, 0.0)
        # a text cell in a task without "positive" is refused, naming the column
        with self.assertRaisesRegex(ValueError, "label column 'action' is not a number"):
            moerec_torch.MoERanker(cfg).labels(self.records[:20])
        with self.assertRaisesRegex(ValueError, "binary but label is 3"):
            moerec_torch.MoERanker(cfg).labels([{"action": "1", "stars": "3", "spend": "0"}])

    def test_loss_mask_decay_and_gate_losses(self):
        m = moerec_torch.load(self.text_dir)
        batch = m.encode_records(self.records)
        y, mask = m.labels(self.records)
        with torch.no_grad():
            z = m.logits(m.inputs(batch))
            aux = float(m.aux_loss())
            l0 = float(m.loss(batch, y, mask))
            l2 = float(m.loss(batch, y, mask, epoch=2))
        # by hand: masked means, decay on task 0 only (0.8^2), plus the aux losses
        per = []
        for k, t in enumerate(m.cfg["tasks"]):
            keep = mask[:, k] > 0
            zk, yk = z[keep, k].double(), y[keep, k].double()
            if t["kind"] == "binary":
                lk = (torch.log1p(torch.exp(-zk.abs())) + zk.clamp(min=0) - zk * yk).mean()
            else:
                lk = ((zk - yk) ** 2).mean()
            per.append(float(lk) * t["loss_weight"])
        self.assertAlmostEqual(l0, sum(per) + aux, places=4)
        self.assertAlmostEqual(l2, per[0] * 0.8 ** 2 + per[1] + per[2] + aux, places=4)
        # a row with no label adds nothing: its label may be anything
        y2 = y.clone()
        y2[mask == 0] = 7.0
        self.assertAlmostEqual(float(m.loss(batch, y2, mask)), l0, places=5)
        # gate losses: routers at zero give uniform P over L logits: load balancing
        # L * sum_i frac_i / L = 1 per gate, entropy log L per gate
        for p in m.params:
            if ".gate" in p.replace("__", "."):
                with torch.no_grad():
                    m.params[p].zero_()
        with torch.no_grad():
            m.logits(m.inputs(batch))
        gates = m.last_router
        self.assertEqual(len(gates), 3)  # one per task (mmoe)
        L = gates[0][1].shape[1]
        self.assertEqual(L, 4 + 1)  # 4 routed + 1 null
        want = 0.01 * 3 * 1.0 + 0.001 * 3 * math.log(L)
        self.assertAlmostEqual(float(m.aux_loss()), want, places=5)
        # and they train the routers (their gradient reaches the gate weights)
        m.zero_grad()
        m.logits(m.inputs(batch))
        m.aux_loss().backward()
        self.assertGreater(float(m.p("l0.gate0.w").grad.abs().max()), 0.0)

    def test_loss_equals_moerec_train(self):
        """moerec's training loss of one full batch at (all but) the initial
        weights, gate losses included, is model.loss on the same rows."""
        cfg = copy.deepcopy(CFG)
        cfg["arch"].update(lbl_coef=1.0, entropy_coef=0.5)
        cfg["train"] = {"epochs": 1, "threads": 1, "seed": 4, "batch": 1000, "lr": 1e-12,
                        "emb_lr": 1e-12}
        mj, val = os.path.join(self.d, "loss.json"), os.path.join(self.d, "val.csv")
        with open(mj, "w") as f:
            json.dump(cfg, f)
        write_csv(val, make_records(30, 7))  # every --data row trains
        out = json.loads(moerec("train", "--model-json", mj, "--data", self.train_csv,
                                "--val-data", val, "--out", os.path.join(self.root, "loss"),
                                "--quiet").stdout.strip().splitlines()[-1])
        m = moerec_torch.load(os.path.join(self.root, "loss", "1"))
        y, mask = m.labels(self.records)
        with torch.no_grad():
            got = float(m.loss(m.encode_records(self.records), y, mask))
            aux = float(m.aux_loss())
        print("moerec train loss %.7f, PyTorch %.7f (gate losses %.4f)"
              % (out["train_loss"], got, aux))
        self.assertGreater(aux, 1.0)  # the gate losses are a large part of it
        self.assertLessEqual(abs(got - out["train_loss"]) / out["train_loss"], TOL)

    def test_long_table_name_mapping(self):
        """A mapped table's default mapping name "<name>.map" is cut to 63
        bytes as moerec cuts it, so PyTorch finds the file moerec wrote."""
        cfg = copy.deepcopy(CFG)
        long_name = "g" * 62
        cfg["tables"][2].update(name=long_name, hash="frequency")
        cfg["features"]["categorical"][2]["table"] = long_name
        mj = os.path.join(self.d, "long.json")
        with open(mj, "w") as f:
            json.dump(cfg, f)
        moerec("train", "--model-json", mj, "--data", self.train_csv, "--out",
               os.path.join(self.root, "long"), "--quiet")
        vd = os.path.join(self.root, "long", "1")
        self.assertTrue(os.path.isfile(os.path.join(vd, long_name + ".")))
        m = moerec_torch.load(vd)
        self.assertEqual(m.cfg["tables"][2]["mapping"], long_name + ".")
        self.assertIn(long_name, m.mappings)
        with torch.no_grad():
            out = m(m.encode_records(self.eval_records)).double()
        tool = list(csv.DictReader(io.StringIO(moerec(
            "score", "--model", vd, "--data", self.eval_csv, "--quiet", "--threads", "1").stdout)))
        want = np.array([[float(r[t]) for t in ("buy", "like", "spend")] for r in tool])
        self.assertLessEqual(max_err(want, out.numpy()), TOL)

    def test_random_edits_agree_with_moerec(self):
        """150 seeded random edits of model.json over six architectures:
        PyTorch refuses exactly the files moerec's loader refuses (as
        `moerec train` reports it), and of those both accept and moerec
        trains, PyTorch resolves the model.json moerec writes (every default)
        and scores as `moerec score`."""
        rng = random.Random(16)
        small = os.path.join(self.d, "small.csv")
        write_csv(small, self.records[:60])
        recs = self.records[:60]
        refused = compared = 0
        for i in range(150):
            cfg = edited_config(rng)
            try:
                moerec_torch.config.Layout(moerec_torch.config.resolve(cfg))
                why = None
            except ValueError as e:
                why = str(e)
            mj = os.path.join(self.d, "edit.json")
            with open(mj, "w") as f:
                json.dump(cfg, f)
            out = os.path.join(self.d, "edits")
            r = moerec("train", "--model-json", mj, "--data", small, "--out", out, "--quiet",
                       "--no-fit-numeric", check=False)
            if "model.json train." in r.stderr:
                continue  # moerec train's own options, not the model format
            c_refused = r.returncode != 0 and re.match(r"moerec train: (model\.json: |arch|tasks)",
                                                       r.stderr) is not None
            self.assertEqual(why is not None, c_refused, "edit %d: %s\nPyTorch: %s\nmoerec: %s"
                             % (i, json.dumps(cfg), why, r.stderr))
            refused += why is not None
            if why is not None or r.returncode:  # refused, or moerec found the data wrong
                continue
            vd = json.loads(r.stdout.strip().splitlines()[-1])["model_dir"]
            with open(os.path.join(vd, "model.json")) as f:
                written = json.load(f)
            mine = moerec_torch.config.to_json_dict(moerec_torch.config.resolve(cfg))
            self.assertEqual(f32_all(mine), f32_all(written), "edit %d" % i)
            m = moerec_torch.load(vd)
            tool = list(csv.DictReader(io.StringIO(moerec(
                "score", "--model", vd, "--data", small, "--quiet", "--threads", "1").stdout)))
            with torch.no_grad():
                score = m.final_score(m(m.encode_records(recs))).double().numpy()
            self.assertLessEqual(max_err(np.array([float(x["score"]) for x in tool]), score), TOL,
                                 "edit %d" % i)
            compared += 1
        print("random edits: %d refused by both, %d trained and compared" % (refused, compared))
        self.assertGreater(refused, 50)
        self.assertGreater(compared, 5)

    def test_refused_like_moerec(self):
        """Each model.json moerec refuses: PyTorch names the field, and
        `moerec train` refuses the same file."""
        base = copy.deepcopy(CFG)

        def t0(c):
            return c["tables"][0]

        def sb(c, **arch):
            c["arch"] = dict({"type": "shared_bottom"}, **arch)

        cases = [
            (lambda c: c.update(format_version=2), "format_version 2 not supported"),
            (lambda c: c.update(train="fast"), "train must be an object"),
            (lambda c: c.update(precision="fp16"), "precision must be"),
            (lambda c: t0(c).update(rows=1), r"tables\[0\]\.rows must be an integer"),
            (lambda c: t0(c).update(rows=40.5), r"tables\[0\]\.rows must be an integer"),
            (lambda c: t0(c).update(dim=0), r"tables\[0\]\.dim must be an integer in \[1, 4096\]"),
            (lambda c: t0(c).update(seed="x"), r"tables\[0\]\.seed must be an integer"),
            (lambda c: c["tables"][1].update(name="user"),
             r"tables\[1\]\.name 'user' is used twice"),
            (lambda c: c["features"]["categorical"][2].update(combiner="max"),
             r"features\.categorical\[2\]\.combiner 'max'"),
            (lambda c: c["features"]["categorical"][2].update(separator="||"),
             r"features\.categorical\[2\]\.separator must be one character"),
            (lambda c: c["features"]["numeric"][0].update(std=0), r"numeric\[0\]\.std must be > 0"),
            (lambda c: c["features"]["numeric"][0].update(name="user_id"),
             "feature name 'user_id' is used twice"),
            (lambda c: c["features"].update(extra_dim=-1),
             r"features\.extra_dim must be an integer"),
            (lambda c: c["features"].update(extra_dim=5, history_actions=["like", "like"]),
             "features.history_actions: 'like' is listed twice"),
            (lambda c: c["features"].update(extra_dim=5, history_actions=["like", "love"]),
             r"extra_dim 5 must be 2 d \+ 2"),
            (lambda c: c["features"].update(history_actions=[]),
             r"features\.history_actions must be a list of 1\.\.16"),
            (lambda c: c["tasks"][2].update(kind="ranking"), r"tasks\[2\]\.kind 'ranking'"),
            (lambda c: c["tasks"][0].update(threshold=1), r"tasks\[0\]\.positive needs a binary"),
            (lambda c: c["tasks"][0].update(positive=""), r"tasks\[0\]\.positive needs a binary"),
            (lambda c: c["tasks"][2].update(positive="x"), r"tasks\[2\]\.positive needs a binary"),
            (lambda c: c["tasks"][0].update(positive=1), r"tasks\[0\]\.positive must be a string"),
            (lambda c: c["tasks"][1].update(name="buy"), r"tasks\[1\]\.name 'buy' is used twice"),
            (lambda c: c["tasks"][0].update(loss_decay=2), r"tasks\[0\]\.loss_decay must be in"),
            (lambda c: c["tasks"][0].update(weight="1"), r"tasks\[0\]\.weight must be a number"),
            (lambda c: c["arch"].update(activation="gelu"), "arch.activation 'gelu'"),
            (lambda c: c["arch"].update(expert_hidden=[]), "arch.expert_hidden: 1..6 layers"),
            (lambda c: c["arch"].update(expert_hidden=[0]), r"arch\.expert_hidden\[0\] must be"),
            (lambda c: c["arch"].update(levels=5), r"arch\.levels must be an integer in \[1, 4\]"),
            (lambda c: c["arch"].update(expert_norm=1), "arch.expert_norm must be true or false"),
            (lambda c: c["arch"].update(task_groups=[0, 3, 0]),
             r"arch\.task_groups\[1\] must be an integer in \[0, 2\]"),
            (lambda c: c["arch"].update(task_groups=[0]), "task_groups must list a group per task"),
            (lambda c: c["arch"]["gate"].update(k=0),
             r"arch\.gate\.k must be an integer in \[1, 64\]"),
            (lambda c: c["arch"]["gate"].update(k=6),
             "arch.gate.k is 6 but a gate chooses among 5"),
            (lambda c: c["arch"]["gate"].update(type="topp", p=1.5), r"arch\.gate\.p must be in"),
            (lambda c: sb(c, experts=3), "arch.experts does not apply to shared_bottom"),
            (lambda c: sb(c, gate={"type": "topk"}), "arch.gate does not apply to shared_bottom"),
            (lambda c: sb(c, task_groups=[0, 0, 0]), "arch.task_groups does not apply"),
            (lambda c: sb(c, lbl_coef=0.5), "arch.lbl_coef does not apply to shared_bottom"),
            (lambda c: c.update(features={}), "features give an empty input"),
            (lambda c: c.update(features=None), "features must be an object"),
            (lambda c: c.update(tables=None), "tables must be a list of at most 64"),
            (lambda c: c["arch"].update(gate=None), "arch.gate must be an object"),
        ]
        for i, (edit, msg) in enumerate(cases):
            with self.subTest(msg=msg):
                cfg = copy.deepcopy(base)
                edit(cfg)
                with self.assertRaisesRegex(ValueError, msg):
                    moerec_torch.MoERanker(cfg)
                mj = os.path.join(self.d, "bad%d.json" % i)
                with open(mj, "w") as f:
                    json.dump(cfg, f)
                r = moerec("train", "--model-json", mj, "--data", self.train_csv, "--out",
                           os.path.join(self.d, "bad"), "--quiet", check=False)
                self.assertNotEqual(r.returncode, 0, msg)
                self.assertRegex(r.stderr, msg)


if __name__ == "__main__":
    torch.set_num_threads(1)
    moerec_world.main(globals())
