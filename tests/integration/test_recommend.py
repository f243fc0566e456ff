#!/usr/bin/python3
"""Retrieve and Recommend end to end through Debian's python3-grpcio: the
index tool builds a retriever set (one FAISS expert per group, k-means
pilots, a popularity fallback) beside a model version; the server (model
dir + store) answers Retrieve from the user's events or an explicit query
vector, routed to the right expert, and Recommend ranks those candidates
exactly as Score ranks them. Bad input gets INVALID_ARGUMENT; a model
without retrievers says how to build them."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moerec_world  # noqa: E402

ARGS = None
D, GROUPS, PER_GROUP = moerec_world.D, moerec_world.GROUPS, moerec_world.PER_GROUP


class RecommendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        cls.grpc, cls.pb = grpc, pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        items, cls.index_summary = moerec_world.build(ARGS.bin, d)
        cls.vec = {i: v for i, (g, v) in items.items()}
        cls.group = {i: g for i, (g, v) in items.items()}
        cls.srv = moerec_world.Server(ARGS.bin, d)
        cls.ch = grpc.insecure_channel(cls.srv.target)
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)
        # the store gets the same item vectors (the query space)
        req = pb.UpsertItemsRequest()
        for iid, v in cls.vec.items():
            req.items.add(item_id=str(iid), embedding=v)
        assert cls.rec.UpsertItems(req, timeout=10).upserted == len(cls.vec)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.srv.stop()
        cls.tmp.cleanup()

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
        # `retrievers` naming the fallback: it answers the cold user (it was
        # FAILED_PRECONDITION "no query for user" whenever retrievers was set)
        r = self.rec.Recommend(self.pb.RecommendRequest(user_id="nobody", k=5,
                                                        retrievers=["group_0", "popular"]), timeout=10)
        self.assertEqual(len(r.items), 5)
        self.assertEqual({tuple(x.retrievers) for x in r.items}, {("popular",)})
        # naming only vector experts: nothing can answer without a query
        self.expect(self.grpc.StatusCode.FAILED_PRECONDITION, self.rec.Recommend,
                    self.pb.RecommendRequest(user_id="nobody", k=5, retrievers=["group_0"]),
                    needle="no query for user 'nobody'")

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
        # an unknown retriever name is INVALID_ARGUMENT for a user without a query too
        # (it was FAILED_PRECONDITION "no query for user" before the names were checked)
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend,
                    pb.RecommendRequest(user_id="cold-user", retrievers=["nope"]), needle="unknown retriever 'nope'")
        # uint32 limits past INT_MAX are rejected, not wrapped to a negative count
        big = 2 ** 31 + 5
        self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                    pb.RetrieveRequest(query_vector=self.vec[1], k=big), needle="at most")
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend, pb.RecommendRequest(user_id="u", k=big),
                    needle="at most 50")
        self.expect(code.INVALID_ARGUMENT, self.rec.Recommend,
                    pb.RecommendRequest(user_id="u", k=5, retrieve_k=big), needle="at most")

    def test_bad_features(self):
        """Retrieve and Recommend check user and context features against
        the model before retrieving (docs/api.md): an unknown feature or a
        categorical without values is INVALID_ARGUMENT, also when nothing
        is retrieved (Recommend checked them only while ranking, and
        Retrieve never)."""
        pb, code = self.pb, self.grpc.StatusCode
        unknown = pb.Features(categorical=[pb.CategoricalFeature(name="salary", values=["x"])])
        empty = pb.Features()
        empty.categorical.add(name="salary")
        everything = [str(i) for i in self.vec]
        for feats, needle in ((unknown, "unknown feature 'salary'"), (empty, "categorical feature 'salary' has no values")):
            self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                        pb.RetrieveRequest(query_vector=self.vec[1], k=5, user_features=feats),
                        needle="user_features: " + needle)
            self.expect(code.INVALID_ARGUMENT, self.rec.Retrieve,
                        pb.RetrieveRequest(query_vector=self.vec[1], k=5, context_features=feats),
                        needle="context_features: " + needle)
            self.expect(code.INVALID_ARGUMENT, self.rec.Recommend,
                        pb.RecommendRequest(user_id="u", k=5, user_features=feats),
                        needle="user_features: " + needle)
            # every item excluded: nothing to rank, the features still checked
            self.expect(code.INVALID_ARGUMENT, self.rec.Recommend,
                        pb.RecommendRequest(user_id="u", k=5, context_features=feats,
                                            exclude_item_ids=everything),
                        needle="context_features: " + needle)
        # the same requests without the bad feature are answered
        self.assertEqual(len(self.rec.Retrieve(pb.RetrieveRequest(query_vector=self.vec[1], k=5),
                                               timeout=10).items), 5)
        r = self.rec.Recommend(pb.RecommendRequest(user_id="u", k=5, exclude_item_ids=everything),
                               timeout=10)
        self.assertEqual(len(r.items), 0)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
