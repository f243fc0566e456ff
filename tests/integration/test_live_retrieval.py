#!/usr/bin/python3
"""Live retrieval end to end (issue 15, items 4-7) through Debian's
python3-grpcio against the real server: UpsertItems puts a new item into
the expert of its column value, visible to the next Retrieve; an upsert
with another value moves it; DeleteItems (and Item.deleted) removes items
from the store and every expert, for Retrieve and Recommend, also after a
kill -9 right after the ack; AppendEvents feeds the popularity fallback;
Recommend drops what the user clicked under the default policy;
Retrieve(k) returns min(k, items indexed) for every k up to 10,000 with
retrieve_k 5000 in the config; bad input gets clear statuses and changes
nothing."""
import json
import math
import os
import random
import signal
import subprocess
import tempfile
import unittest

ARGS = None
D, GROUPS, PER_GROUP = 8, 4, 30

MODEL_JSON = {
    "format": "moerec.model", "format_version": 1, "name": "rec",
    "tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 256, "dim": 4},
               {"name": "tag", "rows": 16, "dim": 4}],
    "features": {"categorical": [{"name": "user_id", "table": "user"},
                                 {"name": "item_id", "table": "item"},
                                 {"name": "tag", "table": "tag"}]},
    "tasks": [{"name": "click", "weight": 1.0}],
    "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [4], "tower_hidden": [2]},
}


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def axis(g, rng):
    base = [0.0] * D
    base[2 * g] = 1.0
    base[2 * g + 1] = 0.5
    return unit([b + rng.gauss(0, 0.15) for b in base])


def build_world(binary, d, rng):
    """Into d: a trained model 'rec' whose version 1 has a retriever set of
    GROUPS FAISS experts by the column `group` (PER_GROUP items each, ids
    1..GROUPS*PER_GROUP) plus popularity over items 1..10; returns the item
    vectors {id: vector}. Also used by test_replica_deletes."""
    vec = {}
    rows = ["item_id,group," + ",".join("e%d" % j for j in range(D))]
    for g in range(GROUPS):
        for i in range(PER_GROUP):
            iid = 1 + g * PER_GROUP + i
            vec[iid] = axis(g, rng)
            rows.append("%d,%d,%s" % (iid, g, ",".join("%.6f" % x for x in vec[iid])))
    write(os.path.join(d, "items.csv"), "\n".join(rows) + "\n")
    # popularity: items 1..10, item 1 the most popular
    ev = ["user_id,item_id,ts_ms"] + ["%d,%d,%d" % (u, 1 + (u % (10 - u // 10 % 3)), 1000 + u)
                                      for u in range(60)]
    write(os.path.join(d, "events.csv"), "\n".join(ev) + "\n")
    os.makedirs(os.path.join(d, "models", "rec"))
    write(os.path.join(d, "model.json"), json.dumps(MODEL_JSON))
    train = ["user_id,item_id,tag,click"] + ["%d,%d,t%d,%d" % (u, i, i % 3, (u + i) % 2)
                                             for u in range(20) for i in range(1, 40)]
    write(os.path.join(d, "train.csv"), "\n".join(train) + "\n")
    subprocess.run([binary, "train", "--model-json", os.path.join(d, "model.json"),
                    "--data", os.path.join(d, "train.csv"), "--out",
                    os.path.join(d, "models", "rec"), "--epochs", "1", "--quiet"],
                   check=True, capture_output=True)
    subprocess.run([binary, "index", "retrievers", "--items", os.path.join(d, "items.csv"),
                    "--expert-column", "group", "--pilots", "2", "--events",
                    os.path.join(d, "events.csv"), "--popularity", "--top-p", "0.5",
                    "--out", os.path.join(d, "models", "rec", "1", "retrievers"), "--quiet"],
                   check=True, capture_output=True)
    return vec


class LiveRetrievalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import moerec_pb2 as pb
        cls.grpc, cls.pb = grpc, pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        rng = random.Random(11)
        cls.rng = rng
        cls.vec = build_world(ARGS.bin, d, rng)
        cfg = {"model_dir": os.path.join(d, "models"), "data_dir": os.path.join(d, "db"),
               "item_dim": D, "query_events": 5, "max_k": 50, "log_level": "warn",
               "retrieve_k": 5000, "max_batch": 200, "store_sync": True}
        write(os.path.join(d, "moerec.json"), json.dumps(cfg))
        cls.start()
        req = pb.UpsertItemsRequest()  # the store gets the item vectors (the query space)
        for iid, v in cls.vec.items():
            req.items.add(item_id=str(iid), embedding=v)
        assert cls.rec.UpsertItems(req, timeout=10).upserted == len(cls.vec)

    @classmethod
    def start(cls):
        import moerec_pb2_grpc
        cls.srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--config",
                                    os.path.join(cls.tmp.name, "moerec.json")],
                                   stdout=subprocess.PIPE, text=True)
        line = cls.srv.stdout.readline().strip()
        assert line.startswith("listening on "), line
        cls.ch = cls.grpc.insecure_channel(line[len("listening on "):])
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)

    @classmethod
    def stop(cls, sig):
        cls.ch.close()
        cls.srv.send_signal(sig)
        rc = cls.srv.wait(timeout=60)
        cls.srv.stdout.close()
        return rc

    @classmethod
    def tearDownClass(cls):
        rc = cls.stop(signal.SIGTERM)
        cls.tmp.cleanup()
        assert rc == 0, rc

    def expect(self, code, fn, req, needle=None):
        with self.assertRaises(self.grpc.RpcError) as cm:
            fn(req, timeout=10)
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        if needle:
            self.assertIn(needle, cm.exception.details())
        return cm.exception.details()

    def retrieve(self, v, k=20, experts=()):
        r = self.rec.Retrieve(self.pb.RetrieveRequest(query_vector=v, k=k, retrievers=experts),
                              timeout=10)
        return [x.item_id for x in r.items]

    def upsert(self, iid, v, group=None, **kw):
        req = self.pb.UpsertItemsRequest(**kw)
        it = req.items.add(item_id=str(iid), embedding=v)
        if group is not None:
            it.features.categorical.add(name="group", values=[str(group)])
        return self.rec.UpsertItems(req, timeout=10)

    def test_upsert_is_visible_and_moves(self):
        v = axis(3, self.rng)  # near group 3's pilots, but the column says group 1
        self.assertEqual(self.upsert(5001, v, group=1).upserted, 1)
        self.assertEqual(self.retrieve(v, 5, ["group_1"])[0], "5001")
        self.assertNotIn("5001", self.retrieve(v, 50, ["group_3"]))
        self.upsert(5001, v, group=2)  # moves
        self.assertNotIn("5001", self.retrieve(v, 50, ["group_1"]))
        self.assertEqual(self.retrieve(v, 5, ["group_2"])[0], "5001")
        w = axis(0, self.rng)  # no column value: the nearest pilot's expert (group 0)
        self.upsert(5002, w)
        self.assertEqual(self.retrieve(w, 5, ["group_0"])[0], "5002")
        self.assertEqual(self.retrieve(w, 5)[0], "5002")  # the router finds it too

    def test_delete_everywhere_and_after_kill9(self):
        pb = self.pb
        gone = [str(i) for i in (35, 36)]
        r = self.rec.DeleteItems(pb.DeleteItemsRequest(item_ids=gone), timeout=10)
        self.assertEqual(r.deleted, 2)
        for i in (35, 36):
            self.assertNotIn(str(i), self.retrieve(self.vec[i], 60))
        # Item.deleted in UpsertItems does the same; 1 is the most popular item
        req = pb.UpsertItemsRequest()
        req.items.add(item_id="1", deleted=True)
        self.assertEqual(self.rec.UpsertItems(req, timeout=10).deleted, 1)
        cold = self.rec.Recommend(pb.RecommendRequest(user_id="cold-user", k=10), timeout=10)
        self.assertTrue(cold.items)
        self.assertNotIn("1", [x.item_id for x in cold.items])
        ev = pb.AppendEventsRequest()  # a user whose query points at item 35's group
        for t, i in enumerate((31, 32, 33)):
            ev.events.add(user_id="dana", item_id=str(i), timestamp_ms=5000 + t)
        self.rec.AppendEvents(ev, timeout=10)
        rec = self.rec.Recommend(pb.RecommendRequest(user_id="dana", k=50), timeout=10)
        got = {x.item_id for x in rec.items}
        self.assertTrue(got)
        self.assertFalse(got & {"1", "35", "36"})
        # kill -9 right after the acks: the writes are in the store and replayed
        v = axis(2, self.rng)
        self.upsert(5003, v, group=2)
        self.rec.DeleteItems(pb.DeleteItemsRequest(item_ids=["37"]), timeout=10)
        self.assertEqual(self.stop(signal.SIGKILL), -signal.SIGKILL)
        type(self).start()
        self.assertEqual(self.retrieve(v, 5, ["group_2"])[0], "5003")
        for i in (35, 36, 37):
            self.assertNotIn(str(i), self.retrieve(self.vec[i], 60))
        cold = self.rec.Recommend(pb.RecommendRequest(user_id="cold-user", k=10), timeout=10)
        self.assertNotIn("1", [x.item_id for x in cold.items])
        rec = self.rec.Recommend(pb.RecommendRequest(user_id="dana", k=50), timeout=10)
        self.assertFalse({x.item_id for x in rec.items} & {"1", "35", "36", "37"})

    def test_popularity_follows_events(self):
        pb = self.pb
        ev = pb.AppendEventsRequest()
        for u in range(40):  # item 90 becomes the most popular by far
            ev.events.add(user_id="fan%d" % u, item_id="90")
        self.rec.AppendEvents(ev, timeout=10)
        # a user without events gets the fallback (popularity) alone
        r = self.rec.Retrieve(pb.RetrieveRequest(user_id="no-events-user", k=3), timeout=10)
        self.assertEqual(r.items[0].item_id, "90")
        self.assertEqual(list(r.items[0].retrievers), ["popular"])

    def test_consumed_items_are_not_recommended(self):
        pb = self.pb
        clicked = [str(i) for i in range(61, 67)]
        ev = pb.AppendEventsRequest()
        for t, i in enumerate(clicked):
            ev.events.add(user_id="erin", item_id=i, timestamp_ms=7000 + t, action="click")
        self.rec.AppendEvents(ev, timeout=10)
        # retrieve_k = k: every candidate retrieved is returned (the ranker only orders them)
        r = self.rec.Recommend(pb.RecommendRequest(user_id="erin", k=50, retrieve_k=50), timeout=10)
        self.assertEqual(len(r.items), 50)
        self.assertFalse({x.item_id for x in r.items} & set(clicked))
        # the last 2 only: older clicks come back, the last 2 never
        req = pb.RecommendRequest(user_id="erin", k=50, retrieve_k=50)
        req.consumed_filter.policy = "last"
        req.consumed_filter.last_n = 2
        got = {x.item_id for x in self.rec.Recommend(req, timeout=10).items}
        self.assertFalse(got & set(clicked[-2:]))
        self.assertTrue(got & set(clicked[:-2]))
        req.consumed_filter.policy = "none"
        got = {x.item_id for x in self.rec.Recommend(req, timeout=10).items}
        self.assertEqual(len(got & set(clicked)), len(clicked))  # all 6 are near the query
        req.consumed_filter.policy = "some"
        self.expect(self.grpc.StatusCode.INVALID_ARGUMENT, self.rec.Recommend, req, "policy")
        req.consumed_filter.policy = "last"
        req.consumed_filter.last_n = 0
        self.expect(self.grpc.StatusCode.INVALID_ARGUMENT, self.rec.Recommend, req, "last_n")

    def test_retrieve_k_up_to_the_limit(self):
        pb = self.pb
        q = self.vec[1]
        total = len(self.rec.Retrieve(pb.RetrieveRequest(query_vector=q, k=10000), timeout=30).items)
        self.assertGreaterEqual(total, GROUPS * PER_GROUP - 10)  # less what other tests deleted
        for k in (1, 2, 29, 30, 31, 60, 100, total - 1, total, total + 1, 1000, 5000, 10000):
            r = self.rec.Retrieve(pb.RetrieveRequest(query_vector=q, k=k), timeout=30)
            ids = [x.item_id for x in r.items]
            self.assertEqual(len(ids), min(k, total), k)
            self.assertEqual(len(set(ids)), len(ids))
        self.expect(self.grpc.StatusCode.INVALID_ARGUMENT, self.rec.Retrieve,
                    pb.RetrieveRequest(query_vector=q, k=10001), "at most 10000")
        # retrieve_k 5000 in the config: a default Recommend works
        ev = pb.AppendEventsRequest()
        ev.events.add(user_id="gus", item_id="50")
        self.rec.AppendEvents(ev, timeout=10)
        r = self.rec.Recommend(pb.RecommendRequest(user_id="gus", k=10, debug=True), timeout=30)
        self.assertEqual(len(r.items), 10)
        stages = {t.stage for t in r.debug.timings}
        self.assertTrue({"decode", "user_state", "retrieve", "features", "rank", "total"} <= stages,
                        stages)

    def test_bad_input_changes_nothing(self):
        pb, C = self.pb, self.grpc.StatusCode
        v = axis(1, self.rng)
        self.expect(C.NOT_FOUND, self.rec.UpsertItems,
                    pb.UpsertItemsRequest(model="nope", items=[pb.Item(item_id="6001", embedding=v)]),
                    "nope")
        self.expect(C.NOT_FOUND, self.rec.DeleteItems,
                    pb.DeleteItemsRequest(model="nope", item_ids=["2"]), "nope")
        self.expect(C.INVALID_ARGUMENT, self.rec.DeleteItems, pb.DeleteItemsRequest(), "item_ids")
        self.expect(C.INVALID_ARGUMENT, self.rec.DeleteItems,
                    pb.DeleteItemsRequest(item_ids=["2", ""]), "item_ids[1]")
        self.expect(C.INVALID_ARGUMENT, self.rec.DeleteItems,
                    pb.DeleteItemsRequest(item_ids=[str(i) for i in range(2, 203)]), "200")
        # a good item then a bad one: nothing is written
        for bad in (pb.Item(item_id="6003", embedding=v,
                            features=pb.Features(categorical=[pb.CategoricalFeature(
                                name="salary", values=["x"])])),
                    pb.Item(item_id="6003", embedding=v,
                            features=pb.Features(categorical=[pb.CategoricalFeature(name="tag")])),
                    pb.Item(item_id="6003", embedding=v[:3])):
            req = pb.UpsertItemsRequest(items=[pb.Item(item_id="6002", embedding=v), bad])
            self.expect(C.INVALID_ARGUMENT, self.rec.UpsertItems, req)
        self.assertNotIn("6002", self.retrieve(v, 100))
        for i in (2, 3, 4):  # the rejected deletes deleted nothing
            self.assertIn(str(i), self.retrieve(self.vec[i], 100))
        # Score: an empty categorical is INVALID_ARGUMENT as docs/api.md says
        sreq = pb.ScoreRequest(user_id="u1", candidates=[pb.Candidate(item_id="2")])
        sreq.user_features.categorical.add(name="tag")
        self.expect(C.INVALID_ARGUMENT, self.rec.Score, sreq, "no values")


if __name__ == "__main__":
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
