#!/usr/bin/python3
"""Retrieve and Recommend end to end through Debian's python3-grpcio: the
index tool builds a retriever set (one FAISS expert per group, k-means
pilots, a popularity fallback) beside a model version; the server (model
dir + store) answers Retrieve from the user's events or an explicit query
vector, routed to the right expert, and Recommend ranks those candidates
exactly as Score ranks them. Bad input gets INVALID_ARGUMENT; a model
without retrievers says how to build them."""
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None
D, GROUPS, PER_GROUP = 8, 4, 30

MODEL_JSON = {
    "format": "moerec.model", "format_version": 1, "name": "rec",
    "tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 256, "dim": 4}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "table": "item"}]},
    "tasks": [{"name": "click", "weight": 1.0}],
    "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [4], "tower_hidden": [2]},
}


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


class RecommendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        cls.grpc, cls.pb = grpc, pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        rng = random.Random(5)
        # items: group g lives around its own axis pair; ids 1..N (numeric ids)
        cls.vec, cls.group = {}, {}
        rows = ["item_id,group," + ",".join("e%d" % j for j in range(D))]
        for g in range(GROUPS):
            for i in range(PER_GROUP):
                iid = 1 + g * PER_GROUP + i
                base = [0.0] * D
                base[2 * g] = 1.0
                base[2 * g + 1] = 0.5
                v = unit([b + rng.gauss(0, 0.15) for b in base])
                cls.vec[iid], cls.group[iid] = v, g
                rows.append("%d,%d,%s" % (iid, g, ",".join("%.6f" % x for x in v)))
        write(os.path.join(d, "items.csv"), "\n".join(rows) + "\n")
        ev = ["user_id,item_id,ts_ms"] + ["%d,%d,%d" % (u, 1 + (u * 7 + t) % (GROUPS * PER_GROUP), t)
                                          for u in range(50) for t in range(5)]
        write(os.path.join(d, "events.csv"), "\n".join(ev) + "\n")
        # the model (random init is enough to rank), and one version without retrievers
        for ver in ("1",):
            os.makedirs(os.path.join(d, "models", "rec"), exist_ok=True)
        write(os.path.join(d, "model.json"), json.dumps(MODEL_JSON))
        train = ["user_id,item_id,click"] + ["%d,%d,%d" % (u, i, (u + i) % 2)
                                             for u in range(20) for i in range(1, 40)]
        write(os.path.join(d, "train.csv"), "\n".join(train) + "\n")
        subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"),
                        "--data", os.path.join(d, "train.csv"), "--out",
                        os.path.join(d, "models", "rec"), "--epochs", "1", "--quiet"],
                       check=True, capture_output=True)
        out = subprocess.run([ARGS.bin, "index", "retrievers", "--items", os.path.join(d, "items.csv"),
                              "--expert-column", "group", "--pilots", "2", "--events",
                              os.path.join(d, "events.csv"), "--popularity", "--top-p", "0.5",
                              "--out", os.path.join(d, "models", "rec", "1", "retrievers"),
                              "--quiet"], check=True, capture_output=True, text=True).stdout
        cls.index_summary = json.loads(out.strip().splitlines()[-1])
        cfg = {"model_dir": os.path.join(d, "models"), "data_dir": os.path.join(d, "db"),
               "item_dim": D, "query_events": 5, "max_k": 50, "log_level": "warn"}
        write(os.path.join(d, "moerec.json"), json.dumps(cfg))
        cls.srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0", "--config",
                                    os.path.join(d, "moerec.json")], stdout=subprocess.PIPE, text=True)
        line = cls.srv.stdout.readline().strip()
        assert line.startswith("listening on "), line
        cls.ch = grpc.insecure_channel(line[len("listening on "):])
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)
        # the store gets the same item vectors (the query space)
        req = pb.UpsertItemsRequest()
        for iid, v in cls.vec.items():
            req.items.add(item_id=str(iid), embedding=v)
        assert cls.rec.UpsertItems(req, timeout=10).upserted == len(cls.vec)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.srv.send_signal(signal.SIGTERM)
        rc = cls.srv.wait(timeout=60)
        cls.srv.stdout.close()
        cls.tmp.cleanup()
        assert rc == 0, rc

    def expect(self, code, fn, *a, needle=None):
        with self.assertRaises(self.grpc.RpcError) as cm:
            fn(*a, timeout=10)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if needle:
            self.assertIn(needle, cm.exception.details())

    def test_query_vector_routes_to_its_expert(self):
        pb = self.pb
        for iid in (3, 47, 95, 110):
            g = self.group[iid]
            r = self.rec.Retrieve(pb.RetrieveRequest(query_vector=self.vec[iid], k=10, debug=True),
                                  timeout=10)
            self.assertEqual(r.items[0].item_id, str(iid))  # IP on unit vectors: itself first
            self.assertIn("group_%d" % g, r.items[0].retrievers)
            # most results come from the query's group
            same = sum(self.group[int(x.item_id)] == g for x in r.items)
            self.assertGreaterEqual(same, 7)
            routes = {x.retriever: x for x in r.debug.routes}
            self.assertTrue(routes["group_%d" % g].selected)
            self.assertAlmostEqual(sum(x.weight for x in r.debug.routes), 1.0, places=3)
            self.assertTrue(routes["popular"].selected)  # the fallback is always on
            # scores are best first
            s = [x.score for x in r.items]
            self.assertEqual(s, sorted(s, reverse=True))

    def test_user_events_make_the_query(self):
        pb = self.pb
        g = 2
        items = [iid for iid in self.vec if self.group[iid] == g][:6]
        ev = pb.AppendEventsRequest()
        for t, iid in enumerate(items):
            ev.events.add(user_id="alice", item_id=str(iid), timestamp_ms=1000 + t)
        self.assertEqual(self.rec.AppendEvents(ev, timeout=10).appended, 6)
        r = self.rec.Retrieve(pb.RetrieveRequest(user_id="alice", k=20), timeout=10)
        self.assertGreaterEqual(sum(self.group[int(x.item_id)] == g for x in r.items), 15)
        # exclusions are never returned
        excl = [x.item_id for x in r.items[:5]]
        r2 = self.rec.Retrieve(pb.RetrieveRequest(user_id="alice", k=20, exclude_item_ids=excl),
                               timeout=10)
        self.assertFalse(set(excl) & {x.item_id for x in r2.items})

    def test_recommend_ranks_like_score(self):
        pb = self.pb
        ev = pb.AppendEventsRequest()
        for t, iid in enumerate((61, 62, 63)):
            ev.events.add(user_id="bob", item_id=str(iid), timestamp_ms=2000 + t)
        self.rec.AppendEvents(ev, timeout=10)
        r = self.rec.Recommend(pb.RecommendRequest(user_id="bob", k=7, retrieve_k=30, debug=True),
                               timeout=10)
        self.assertEqual(len(r.items), 7)
        self.assertEqual(r.model_version, "rec/1")
        s = [x.score for x in r.items]
        self.assertEqual(s, sorted(s, reverse=True))
        for x in r.items:
            self.assertTrue(x.retrievers)
            self.assertEqual([t.task for t in x.tasks], ["click"])
        stages = {t.stage for t in r.debug.timings}
        self.assertTrue({"retrieve", "rank"} <= stages, stages)
        self.assertTrue(r.debug.routes)
        # Score on the same candidates gives the same scores
        sreq = pb.ScoreRequest(user_id="bob")
        for x in r.items:
            sreq.candidates.add(item_id=x.item_id)
        sc = self.rec.Score(sreq, timeout=10)
        self.assertEqual([x.score for x in sc.items], s)

    def test_model_info_and_stats_list_the_retrievers(self):
        import moerec_pb2_grpc
        info = self.rec.GetModelInfo(self.pb.GetModelInfoRequest(), timeout=10)
        names = {r.name: r for r in info.retrievers}
        self.assertEqual(set(names), {"group_%d" % g for g in range(GROUPS)} | {"popular"})
        self.assertEqual(names["group_1"].size, PER_GROUP)
        self.assertEqual(names["group_1"].dim, D)
        self.assertEqual(names["group_1"].index, "IDMap,Flat")
        self.assertTrue(names["popular"].always_on)
        self.assertFalse(names["group_1"].always_on)
        self.rec.Retrieve(self.pb.RetrieveRequest(query_vector=self.vec[1], k=5), timeout=10)
        st = moerec_pb2_grpc.AdminStub(self.ch).Stats(self.pb.StatsRequest(), timeout=10)
        routed = {r.retriever: r.routed for r in st.routes}
        self.assertGreater(routed["group_0"], 0)
        self.assertGreater(routed["popular"], 0)
        self.assertEqual([c.name for c in st.caches], ["store"])
        self.assertGreater(st.caches[0].hits + st.caches[0].misses, 0)

    def test_cold_user_gets_the_fallback(self):
        r = self.rec.Recommend(self.pb.RecommendRequest(user_id="nobody", k=5), timeout=10)
        self.assertEqual(len(r.items), 5)
        for x in r.items:
            self.assertEqual(list(x.retrievers), ["popular"])

    def test_calls_during_reloads(self):
        # every Reload frees the previous version (and its retriever set) once
        # its last call releases it; calls in flight meanwhile must answer
        # whole, with names copied out of the version (ASan build: no UAF)
        import threading
        import moerec_pb2_grpc
        pb, admin = self.pb, moerec_pb2_grpc.AdminStub(self.ch)
        names = {x.name for x in self.rec.GetModelInfo(pb.GetModelInfoRequest(), timeout=10).retrievers}
        self.assertTrue(names)
        errors, done = [], threading.Event()

        def caller(t):
            i = 0
            while not done.is_set() or i < 5:
                try:
                    if i % 2:
                        r = self.rec.Recommend(pb.RecommendRequest(user_id=str(i % 50), k=5, debug=True),
                                               timeout=30)
                    else:
                        r = self.rec.Retrieve(pb.RetrieveRequest(query_vector=self.vec[1 + i % 10], k=10,
                                                                 debug=True), timeout=30)
                    if r.model_version != "rec/1" or not r.items:
                        errors.append("bad answer %s" % r.model_version)
                    for x in r.items:
                        if not x.retrievers or not set(x.retrievers) <= names:
                            errors.append("bad retrievers %s" % list(x.retrievers))
                except self.grpc.RpcError as e:
                    errors.append("%s %s" % (e.code(), e.details()))
                i += 1

        threads = [threading.Thread(target=caller, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(10):
                r = admin.Reload(pb.ReloadRequest(model="rec"), timeout=60)
                self.assertEqual(r.model, "rec")
        finally:
            done.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])

    def test_bad_requests(self):
        pb, code = self.pb, self.grpc.StatusCode
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend, pb.RecommendRequest(user_id="u", k=51),
                    needle="at most 50")
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend, pb.RecommendRequest(), needle="user_id")
        self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                    pb.RetrieveRequest(query_vector=[1.0, 2.0], k=5), needle="dim is 8")
        self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                    pb.RetrieveRequest(query_vector=self.vec[1], retrievers=["nope"], k=5),
                    needle="nope")
        self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve, pb.RetrieveRequest(k=5),
                    needle="query_vector")
        self.expect(code.NOT_FOUND, self.rec.Recommend, pb.RecommendRequest(user_id="u", model="x"))
        # uint32 limits past INT_MAX are rejected, not wrapped to a negative count
        big = 2 ** 31 + 5
        self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                    pb.RetrieveRequest(query_vector=self.vec[1], k=big), needle="at most")
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend, pb.RecommendRequest(user_id="u", k=big),
                    needle="at most 50")
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend,
                    pb.RecommendRequest(user_id="u", k=5, retrieve_k=big), needle="at most")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
