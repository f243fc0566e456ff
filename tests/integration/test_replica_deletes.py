#!/usr/bin/python3
"""DeleteItems through the NATS JetStream update log, against real
servers: a 3-node JetStream cluster and two replicas serving the same
model with a live retriever set (the world of test_live_retrieval). A
delete through replica A is validated there, published, answered with its
log_sequence, and applied on every replica: a Retrieve through replica B
with that sequence as min_sequence never returns the item (store and live
retrievers); Item.deleted in UpsertItems through B, read back through A,
does the same; a bad delete is refused before publishing and changes
nothing; both stores end with one digest; a replica killed with SIGKILL
keeps the live upserts and deletes it applied from the log in its
retrievers after the restart and after a Reload; a write accepted by a
replica whose model knows a feature is applied, not rejected, by one
whose model version does not (a rollout in progress). Skipped when nats-server is not
installed."""
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import unittest

from nats_cluster import NatsCluster, skip_unless_nats, start_replica
import test_live_retrieval as world

ARGS = None


class ReplicaDeletesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        skip_unless_nats()
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        cls.grpc, cls.pb, cls.pbg = grpc, pb, moerec_pb2_grpc
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.rng = random.Random(12)
        cls.vec = world.build_world(ARGS.bin, d, cls.rng)
        # a rollout in progress: model 'extra' is a copy of 'rec' (with the
        # feature 'tag') on replica A, and on replica B a model without 'tag'
        models_b, models_a = os.path.join(d, "models"), os.path.join(d, "models_a")
        schema = json.loads(json.dumps(world.MODEL_JSON))
        schema["name"] = "extra"
        schema["tables"] = [t for t in schema["tables"] if t["name"] != "tag"]
        schema["features"]["categorical"] = [f for f in schema["features"]["categorical"]
                                             if f["name"] != "tag"]
        with open(os.path.join(d, "extra.json"), "w") as f:
            json.dump(schema, f)
        subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "extra.json"), "--data",
                        os.path.join(d, "train.csv"), "--out", os.path.join(models_b, "extra"),
                        "--epochs", "1", "--quiet"], check=True, capture_output=True)
        shutil.copytree(models_b, models_a, ignore=shutil.ignore_patterns("extra"))
        shutil.copytree(os.path.join(models_b, "rec"), os.path.join(models_a, "extra"))
        cls.nats = NatsCluster(d)
        cls.extras = [{"model_dir": m, "default_model": "rec", "item_dim": world.D, "max_k": 50,
                       "retrieve_k": 5000} for m in (models_a, models_b)]
        cls.procs, cls.chans = [], []
        for i in range(2):
            p, addr = start_replica(ARGS.bin, d, i, cls.nats.servers, extra=cls.extras[i])
            cls.procs.append(p)
            cls.chans.append(grpc.insecure_channel(addr))
        # the store gets the item vectors (the query space), through the log
        req = pb.UpsertItemsRequest()
        for iid, v in cls.vec.items():
            req.items.add(item_id=str(iid), embedding=v)
        cls.seq0 = cls.rec(0).UpsertItems(req, timeout=20).log_sequence

    @classmethod
    def tearDownClass(cls):
        rcs = []
        for ch, p in zip(cls.chans, cls.procs):
            ch.close()
            p.send_signal(signal.SIGTERM)
            rcs.append(p.wait(timeout=60))
            p.stdout.close()
        cls.nats.stop()
        cls.tmp.cleanup()
        assert rcs == [0, 0], rcs  # clean exits (under ASan: no leak)

    @classmethod
    def rec(cls, i):
        return cls.pbg.RecommenderStub(cls.chans[i])

    def stats(self, i, digest=False):
        return self.pbg.AdminStub(self.chans[i]).Stats(self.pb.StatsRequest(digest=digest), timeout=30)

    def retrieve(self, i, v, seq, k=60):
        r = self.rec(i).Retrieve(self.pb.RetrieveRequest(query_vector=v, k=k, min_sequence=seq),
                                 timeout=20)
        return [x.item_id for x in r.items]

    def test_1_delete_through_a_is_gone_on_b(self):
        pb = self.pb
        for i in (35, 36):
            self.assertIn(str(i), self.retrieve(1, self.vec[i], self.seq0))
        r = self.rec(0).DeleteItems(pb.DeleteItemsRequest(item_ids=["35", "36"]), timeout=20)
        self.assertEqual(r.deleted, 2)
        self.assertGreater(r.log_sequence, self.seq0)
        for b in (1, 0):  # the other replica, then the one that took it
            for i in (35, 36):
                self.assertNotIn(str(i), self.retrieve(b, self.vec[i], r.log_sequence))
        # a live upsert through B, then Item.deleted through B, read through A
        v = world.axis(2, self.rng)
        req = pb.UpsertItemsRequest()
        req.items.add(item_id="5001", embedding=v).features.categorical.add(name="group",
                                                                           values=["2"])
        up = self.rec(1).UpsertItems(req, timeout=20)
        self.assertEqual(self.retrieve(0, v, up.log_sequence, k=5)[0], "5001")
        req = pb.UpsertItemsRequest()
        req.items.add(item_id="5001", deleted=True)
        gone = self.rec(1).UpsertItems(req, timeout=20)
        self.assertEqual(gone.deleted, 1)
        self.assertGreater(gone.log_sequence, up.log_sequence)
        self.assertNotIn("5001", self.retrieve(0, v, gone.log_sequence))

    def test_2_bad_delete_is_not_published(self):
        pb = self.pb
        mark = lambda: self.rec(0).UpsertItems(pb.UpsertItemsRequest(items=[pb.Item(
            item_id="9999", embedding=self.vec[9])]), timeout=20).log_sequence
        before = mark()
        for req, code in ((pb.DeleteItemsRequest(item_ids=[]), self.grpc.StatusCode.INVALID_ARGUMENT),
                          (pb.DeleteItemsRequest(item_ids=["7", ""]),
                           self.grpc.StatusCode.INVALID_ARGUMENT),
                          (pb.DeleteItemsRequest(item_ids=["7"], model="nope"),
                           self.grpc.StatusCode.NOT_FOUND)):
            with self.assertRaises(self.grpc.RpcError) as cm:
                self.rec(0).DeleteItems(req, timeout=20)
            self.assertEqual(cm.exception.code(), code, cm.exception.details())
        after = mark()
        self.assertEqual(after, before + 1)  # nothing published in between
        self.assertIn("7", self.retrieve(1, self.vec[7], after))

    def test_3_digests_agree(self):
        last = self.rec(0).DeleteItems(self.pb.DeleteItemsRequest(item_ids=["40"]),
                                       timeout=20).log_sequence
        self.retrieve(1, self.vec[40], last)  # waits for the record on B
        self.retrieve(0, self.vec[40], last)
        a, b = self.stats(0, digest=True), self.stats(1, digest=True)
        self.assertGreater(a.store_rows, 0)
        self.assertEqual((a.store_digest, a.store_rows), (b.store_digest, b.store_rows))

    def test_5_replicas_on_other_model_versions_apply_alike(self):
        """A write checked against replica A's models (model 'extra' with
        the feature 'tag') is applied by replica B, whose 'extra' has no
        'tag', instead of being rejected there: no record rejected, one
        digest. Sent to B itself it is refused and publishes nothing."""
        pb = self.pb
        req = pb.UpsertItemsRequest(model="extra")
        it = req.items.add(item_id="6001", embedding=world.axis(0, self.rng))
        it.features.categorical.add(name="tag", values=["t1"])
        with self.assertRaises(self.grpc.RpcError) as cm:
            self.rec(1).UpsertItems(req, timeout=20)
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("tag", cm.exception.details())
        rejected = self.stats(1).log_rejected
        seq = self.rec(0).UpsertItems(req, timeout=20).log_sequence
        gone = self.rec(0).DeleteItems(pb.DeleteItemsRequest(item_ids=["6001"], model="extra"),
                                       timeout=20).log_sequence
        self.assertEqual(gone, seq + 1)
        for i in (0, 1):
            self.retrieve(i, self.vec[1], gone)  # both applied both
        self.assertEqual(self.stats(1).log_rejected, rejected)
        a, b = self.stats(0, digest=True), self.stats(1, digest=True)
        self.assertEqual((a.store_digest, a.store_rows), (b.store_digest, b.store_rows))

    def test_4_kill9_and_reload_keep_live_writes(self):
        """The catalogue records a replica writes while applying the log
        are replayed over the retriever sets after a restart and a Reload."""
        pb = self.pb
        v = world.axis(1, self.rng)
        req = pb.UpsertItemsRequest()
        req.items.add(item_id="5002", embedding=v).features.categorical.add(name="group",
                                                                           values=["1"])
        up = self.rec(0).UpsertItems(req, timeout=20)
        gone = self.rec(0).DeleteItems(pb.DeleteItemsRequest(item_ids=["33"]), timeout=20)
        self.retrieve(1, v, gone.log_sequence)  # B applied both
        self.chans[1].close()
        self.procs[1].send_signal(signal.SIGKILL)
        self.procs[1].wait()
        self.procs[1].stdout.close()
        p, addr = start_replica(ARGS.bin, self.tmp.name, 1, self.nats.servers,
                                extra=self.extras[1])
        self.procs[1], self.chans[1] = p, self.grpc.insecure_channel(addr)
        for reload in (False, True):
            if reload:
                r = self.pbg.AdminStub(self.chans[1]).Reload(pb.ReloadRequest(model="rec"),
                                                              timeout=60)
                self.assertEqual(r.version, "1")
            got = self.rec(1).Retrieve(pb.RetrieveRequest(query_vector=v, k=5, retrievers=["group_1"],
                                                          min_sequence=up.log_sequence), timeout=20)
            self.assertEqual(got.items[0].item_id, "5002")
            self.assertNotIn("33", self.retrieve(1, self.vec[33], gone.log_sequence))


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
