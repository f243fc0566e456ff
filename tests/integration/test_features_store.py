#!/usr/bin/python3
"""Counting features from the store (issue 13): `moerec index features`
on a small log writes the training columns, the test rows' columns
(--as-of T) and the same values into the store (--store, read at T); a
model trained on the columns then gives, for every test row, bit for bit
the same predictions from `moerec score` (features in the file) and from
Score over gRPC (only user_id and item_id in the request: the server adds
the stored user profile and item feature rows). Item features written by
UpsertItems before survive the merge; a stored profile is skipped for
fields the model lacks. With --category-column, the (user, category)
rows give the same bit-for-bit equality."""
import csv
import json
import os
import random
import signal
import struct
import subprocess
import tempfile
import unittest

ARGS = None


def write_model(d, model):
    """d/model.json: model's tables and features, one like task, a small MMoE."""
    model.update({"tasks": [{"name": "like"}],
                  "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [8], "tower_hidden": [4]},
                  "train": {"epochs": 2, "batch": 64}})
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(model, f)


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def write_log(d):
    random.seed(5)
    rows = []
    for u in range(30):
        taste = random.random()
        t = 1000 + u
        for _ in range(40):
            it = random.randrange(60)
            t += random.randrange(1, 500)
            like = int(random.random() < 0.3 + 0.4 * taste * (it % 3 == 0) + 0.2 * (it < 20))
            rows.append((u, it, t, like, "g%d" % (it % 4)))
    by_user = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    tr, te = [], []
    for u, rs in by_user.items():
        rs.sort(key=lambda r: r[2])
        cut = len(rs) - len(rs) // 5
        tr += rs[:cut]
        te += rs[cut:]
    for name, part in (("train.csv", tr), ("test.csv", te)):
        with open(os.path.join(d, name), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "item_id", "ts", "like", "genre"])
            w.writerows(part)
    return max(r[2] for r in tr), te


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def random_log(seed, users, per_user, items, gap, test_from, cats, love=False):
    """(train, test) rows (user, item, ts, like[, love], categories): per user
    per_user events at increasing times, the ones from index test_from on in
    test; love (with love=True) empty on some rows (no label)."""
    random.seed(seed)
    tr, te = [], []
    for u in range(users):
        t = 1000 + u
        for k in range(per_user):
            it = random.randrange(items)
            t += random.randrange(1, gap)
            like = int(random.random() < 0.2 + 0.5 * ((u + it) % 3 == 0))
            extra = ("" if k % 7 == 3 else int(like and random.random() < 0.5),) if love else ()
            (te if k >= test_from else tr).append((u, it, t, like) + extra + (cats(it),))
    return tr, te


class FeaturesStoreTest(unittest.TestCase):
    def serve(self, d, models=True, config=None):
        extra = []
        if config is not None:
            with open(os.path.join(d, "serve.json"), "w") as f:
                json.dump(config, f)
            extra = ["--config", os.path.join(d, "serve.json")]
        srv = subprocess.Popen([ARGS.bin, "serve"] + extra + ["--port", "0", "--log-level", "warn", "--data-dir",
                                os.path.join(d, "store"), "--item-dim", "4"] +
                               (["--model-dir", os.path.join(d, "models")] if models else []),
                               stdout=subprocess.PIPE, text=True)
        line = srv.stdout.readline().strip()
        self.assertTrue(line.startswith("listening on "), line)
        import grpc
        import moerec_pb2_grpc
        ch = grpc.insecure_channel(line[len("listening on "):])
        return srv, ch, moerec_pb2_grpc.RecommenderStub(ch)

    def stop(self, srv, ch):
        ch.close()
        srv.send_signal(signal.SIGTERM)
        self.assertEqual(srv.wait(timeout=60), 0)
        srv.stdout.close()

    def score_file(self, d, name):
        """`moerec score` of d/name with model d/models/m, one row per batch."""
        r = subprocess.run([ARGS.bin, "score", "--model", os.path.join(d, "models", "m"), "--data",
                            os.path.join(d, name), "--batch", "1", "--threads", "1", "--quiet"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return list(csv.DictReader(r.stdout.splitlines()))

    def check_ids_only(self, stub, rows, want):
        """Score with only user_id and item_id of each (user, item, ...) row
        answers the file's prediction bit for bit."""
        import moerec_pb2 as pb
        for i, row in enumerate(rows):
            req = pb.ScoreRequest(user_id=str(row[0]))
            req.candidates.add(item_id=str(row[1]))
            got = stub.Score(req, timeout=10).items[0]
            self.assertEqual(f32(float(want[i]["like"])), f32(got.tasks[0].value),
                             "row %d: file %s, server %r" % (i, want[i]["like"], got.tasks[0].value))

    def check_blank_differs(self, d, cols, want):
        """d/test_feat.csv with the cols emptied (the model's fill instead)
        scores differently on most rows: the values matter."""
        with open(os.path.join(d, "test_feat.csv")) as f:
            rows = list(csv.DictReader(f))
        with open(os.path.join(d, "blank.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            for x in rows:
                w.writerow({k: ("" if k in cols else v) for k, v in x.items()})
        blank = self.score_file(d, "blank.csv")
        self.assertGreater(sum(a["like"] != b["like"] for a, b in zip(want, blank)), len(want) * 9 // 10)

    def test_store_equals_file(self):
        import moerec_pb2 as pb
        with tempfile.TemporaryDirectory() as d:
            t_end, test_rows = write_log(d)
            cols = ["u_cnt_all", "u_like_rate_all", "u_recency", "i_cnt_all", "i_like_rate_all", "i_recency"]
            model = {"tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 128, "dim": 4},
                                {"name": "genre", "rows": 16, "dim": 2}],
                     "features": {"categorical": [{"name": "user_id", "table": "user"},
                                                  {"name": "item_id", "table": "item"},
                                                  {"name": "genre", "table": "genre"}],
                                  "numeric": [{"name": c} for c in cols]}}
            write_model(d, model)
            # 1. an UpsertItems write of the items' genre, before the tool runs
            srv, ch, stub = self.serve(d, models=False)
            try:
                req = pb.UpsertItemsRequest()
                for it in range(60):
                    x = req.items.add(item_id=str(it))
                    x.features.categorical.add(name="genre", values=["g%d" % (it % 4)])
                    x.features.numeric.add(name="i_cnt_all", value=-99.0)  # replaced by the tool
                self.assertEqual(stub.UpsertItems(req, timeout=10).upserted, 60)
            finally:
                self.stop(srv, ch)
            # 2. features: training columns, test columns at T, and the store at T
            r = subprocess.run([ARGS.bin, "index", "features", "--log", os.path.join(d, "train.csv"),
                                "--out", os.path.join(d, "train_feat.csv"), "--apply", os.path.join(d, "test.csv"),
                                "--apply-out", os.path.join(d, "test_feat.csv"), "--as-of", str(t_end),
                                "--store", os.path.join(d, "store"), "--user-column", "user_id",
                                "--item-column", "item_id", "--time-column", "ts", "--task", "like:like"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            summary = json.loads(r.stdout.splitlines()[-1])
            self.assertEqual(summary["stored_users"], 30)
            self.assertEqual(summary["store_as_of"], t_end)
            # 3. train on the columns, score the test file one row per batch
            r = subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                                os.path.join(d, "train_feat.csv"), "--out", os.path.join(d, "models", "m"),
                                "--quiet"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            want = self.score_file(d, "test_feat.csv")
            self.assertEqual(len(want), len(test_rows))
            # the same rows without the feature values (fill values instead) score
            # differently, so equality below means the server used the stored values
            self.check_blank_differs(d, cols, want)
            # 4. Score with ids only: features come from the store
            srv, ch, stub = self.serve(d)
            try:
                self.check_ids_only(stub, test_rows, want)
                # the stored profile must be what changes the answer: a request that
                # overrides u_cnt_all differs
                req = pb.ScoreRequest(user_id=str(test_rows[0][0]))
                req.user_features.numeric.add(name="u_cnt_all", value=50.0)
                req.candidates.add(item_id=str(test_rows[0][1]))
                self.assertNotEqual(f32(stub.Score(req, timeout=10).items[0].tasks[0].value),
                                    f32(float(want[0]["like"])))
            finally:
                self.stop(srv, ch)

    def test_user_category_rows(self):
        """(user, category) rows (issue 13): with --category-column the store
        holds each user's per-category blocks and each item's categories; Score
        with ids only adds, per candidate, the mean over its categories that the
        test file's uc_ columns hold: every prediction equals the file's."""
        import moerec_pb2 as pb
        with tempfile.TemporaryDirectory() as d:
            cats = lambda it: "g%d|h%d" % (it % 25, it % 3) + ("|g%d" % (it % 25) if it % 5 == 0 else "")
            tr, te = random_log(9, 30, 40, 50, 500, 32, cats)
            self.assertEqual({r[1] for r in te} - {r[1] for r in tr}, set())  # every test item has a stored row
            for name, part in (("train.csv", tr), ("test.csv", te)):
                with open(os.path.join(d, name), "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["user_id", "item_id", "ts", "like", "genre"])
                    w.writerows(part)
            t_end = max(r[2] for r in tr)
            ucols = ["uc_cnt_all", "uc_like_rate_all", "uc_recency"]
            cols = ["u_cnt_all", "u_like_rate_all", "i_cnt_all", "i_like_rate_all"] + ucols
            model = {"tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 128, "dim": 4}],
                     "features": {"categorical": [{"name": "user_id", "table": "user"},
                                                  {"name": "item_id", "table": "item"}],
                                  "numeric": [{"name": c} for c in cols]}}
            write_model(d, model)
            r = subprocess.run([ARGS.bin, "index", "features", "--log", os.path.join(d, "train.csv"),
                                "--out", os.path.join(d, "train_feat.csv"), "--apply", os.path.join(d, "test.csv"),
                                "--apply-out", os.path.join(d, "test_feat.csv"), "--as-of", str(t_end),
                                "--store", os.path.join(d, "store"), "--user-column", "user_id",
                                "--item-column", "item_id", "--time-column", "ts", "--task", "like:like",
                                "--category-column", "genre"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            summary = json.loads(r.stdout.splitlines()[-1])
            pairs = {(u, c) for u, it, _, _, cs in tr for c in cs.split("|")}
            self.assertEqual(summary["stored_user_categories"], len(pairs))
            r = subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                                os.path.join(d, "train_feat.csv"), "--out", os.path.join(d, "models", "m"),
                                "--quiet"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            want = self.score_file(d, "test_feat.csv")
            with open(os.path.join(d, "test_feat.csv")) as f:
                rows = list(csv.DictReader(f))
            # some test rows hold a category the user never had (the "@" block)
            self.assertTrue(any((int(x["user_id"]), c) not in pairs for x in rows for c in x["genre"].split("|")))
            self.check_blank_differs(d, ucols, want)
            srv, ch, stub = self.serve(d)
            try:
                self.check_ids_only(stub, te, want)
                # several candidates in one request: each gets its own categories' values
                req = pb.ScoreRequest(user_id=str(te[0][0]))
                idx = [i for i, x in enumerate(te) if x[0] == te[0][0]]
                for i in idx:
                    req.candidates.add(item_id=str(te[i][1]))
                got = stub.Score(req, timeout=10).items
                for k, i in enumerate(idx):
                    self.assertEqual(f32(float(want[i]["like"])), f32(got[k].tasks[0].value))
            finally:
                self.stop(srv, ch)

    def features(self, d, log, t, extra):
        """`moerec index features` over d/log: training columns, the test rows'
        columns read at t (d/test_feat.csv), extra flags (--store)."""
        r = subprocess.run([ARGS.bin, "index", "features", "--log", os.path.join(d, log),
                            "--out", os.path.join(d, "train_feat.csv"), "--apply", os.path.join(d, "test.csv"),
                            "--apply-out", os.path.join(d, "test_feat.csv"), "--as-of", str(t),
                            "--user-column", "user_id", "--item-column", "item_id", "--time-column", "ts",
                            "--task", "like:like", "--task", "love:love", "--windows", "all,2000s",
                            "--category-column", "genre", "--quiet"] + extra, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout.splitlines()[-1])

    def test_online_counts(self):
        """AppendEvents with labels and online_counts (issue 13): the user, item
        and (user, category) counters and the global prior are updated with the
        events, so Score with ids only answers, bit for bit, what `moerec score`
        gives on test rows whose columns `moerec index features` computed over
        the log plus those events (read at the new latest time). Bad labels
        (unknown task, a value not 0/1, a task twice) are INVALID_ARGUMENT and
        change nothing; without online_counts labels change nothing either."""
        import grpc
        import moerec_pb2 as pb
        with tempfile.TemporaryDirectory() as d:
            cats = lambda it: "g%d|h%d" % (it % 7, it % 3)
            tr, te = random_log(13, 24, 30, 40, 300, 24, cats, love=True)  # some love labels empty
            header = ["user_id", "item_id", "ts", "like", "love", "genre"]
            write = lambda name, rows: write_csv(os.path.join(d, name), header, rows)
            write("train.csv", tr)
            write("test.csv", te)
            t_end = max(r[2] for r in tr)
            kinds = ["cnt_all", "like_rate_all", "love_rate_all", "cnt_2000s", "like_rate_2000s", "recency"]
            cols = ["%s_%s" % (p, k) for p in ("u", "i", "uc") for k in kinds]
            model = {"tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 128, "dim": 4}],
                     "features": {"categorical": [{"name": "user_id", "table": "user"},
                                                  {"name": "item_id", "table": "item"}],
                                  "numeric": [{"name": c} for c in cols]}}
            write_model(d, model)
            # a store without counting features: labels are FAILED_PRECONDITION, plain events pass
            srv, ch, stub = self.serve(d, models=False, config={"online_counts": True})
            try:
                req = pb.AppendEventsRequest()
                req.events.add(user_id="0", item_id=str(tr[0][1]), timestamp_ms=500 * 1000)
                self.assertEqual(stub.AppendEvents(req, timeout=10).appended, 1)
                req.events[0].labels.add(task="like", value=1.0)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.AppendEvents(req, timeout=10)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertIn("moerec index features --store", cm.exception.details())
                # a malformed label is INVALID_ARGUMENT on this store too (the request's own
                # checks come before the store's state)
                for bad in ({"task": "like", "value": 0.5}, {"task": "", "value": 1.0}):
                    req = pb.AppendEventsRequest()
                    req.events.add(user_id="0", item_id=str(tr[1][1]), timestamp_ms=501 * 1000)
                    req.events[0].labels.add(**bad)
                    with self.assertRaises(grpc.RpcError) as cm:
                        stub.AppendEvents(req, timeout=10)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, cm.exception.details())
                    self.assertIn("events[0].labels[0]", cm.exception.details())
            finally:
                self.stop(srv, ch)
            self.features(d, "train.csv", t_end, ["--store", os.path.join(d, "store")])
            r = subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                                os.path.join(d, "train_feat.csv"), "--out", os.path.join(d, "models", "m"),
                                "--quiet"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            before = self.score_file(d, "test_feat.csv")
            # new events after the log: known and new users, labelled, partly and not labelled
            new = []
            t = t_end
            items = sorted({r[1] for r in tr})  # items with a stored row (their categories)
            for k in range(40):
                u, it = (k * 5) % 26, items[(k * 11) % len(items)]  # users 24, 25 are new
                t += 1 + k * 37
                like, love = k % 3 == 0, (k % 6 == 0) if k % 5 else ""
                new.append((u, it, t, int(like), "" if love == "" else int(love), cats(it)))
            new.append((new[0][0], new[0][1], new[-1][2], "", "", cats(new[0][1])))  # no labels, tied time
            t_new = max(r[2] for r in new)

            def append(stub, rows, bad=None):
                req = pb.AppendEventsRequest()
                for u, it, ts, like, love, _ in rows:
                    e = req.events.add(user_id=str(u), item_id=str(it), timestamp_ms=ts * 1000)
                    if like != "":
                        e.labels.add(task="like", value=float(like))
                    if love != "":
                        e.labels.add(task="love", value=float(love))
                if bad:
                    req.events[len(rows) // 2].labels.add(**bad)
                return stub.AppendEvents(req, timeout=10)
            srv, ch, stub = self.serve(d, config={"online_counts": True})
            try:
                self.check_ids_only(stub, te, before)
                for bad in ({"task": "buy", "value": 1.0}, {"task": "like", "value": 0.5},
                            {"task": "like", "value": 1.0}, {"task": "", "value": 1.0}):
                    with self.assertRaises(grpc.RpcError) as cm:  # like 1.0: every event has like already
                        append(stub, new, bad)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, cm.exception.details())
                self.check_ids_only(stub, te, before)  # nothing changed
                self.assertEqual(append(stub, new).appended, len(new))
                write("log2.csv", tr + [x for x in new])
                self.features(d, "log2.csv", t_new, [])
                after = self.score_file(d, "test_feat.csv")
                self.assertGreater(sum(a["like"] != b["like"] for a, b in zip(before, after)), len(te) // 2)
                self.check_ids_only(stub, te, after)
                # a new user of the appended events: their rows exist now
                req = pb.ScoreRequest(user_id="25")
                req.candidates.add(item_id=str(te[0][1]))
                stub.Score(req, timeout=10)
            finally:
                self.stop(srv, ch)
            # without online_counts labels are accepted and count nothing
            srv, ch, stub = self.serve(d)
            try:
                self.assertEqual(append(stub, new[:5]).appended, 5)
                self.check_ids_only(stub, te, after)
                with self.assertRaises(grpc.RpcError) as cm:
                    append(stub, new[:5], {"task": "like", "value": 2.0})
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            finally:
                self.stop(srv, ch)


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
