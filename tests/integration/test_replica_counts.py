#!/usr/bin/python3
"""Online counts through the update log (issue 13): two replicas fed by a
3-node JetStream cluster, each with its own store written by `moerec index
features --store` from the same log and with online_counts on. Labelled
AppendEvents through either replica are published, applied by both (the
counters in the events' WriteBatch, once per record), so after a read with
min_sequence both replicas answer Score with ids only bit for bit alike,
and equal to `moerec score` on the columns the tool computes over the log
plus the appended events; a bad label is INVALID_ARGUMENT and takes no log
sequence. Skipped when nats-server is not installed."""
import os
import signal
import subprocess
import tempfile
import unittest

import test_features_store as fs
from nats_cluster import NatsCluster, skip_unless_nats, start_replica

ARGS = None


class ReplicaCountsTest(unittest.TestCase):
    score_file = fs.FeaturesStoreTest.score_file
    check_ids_only = fs.FeaturesStoreTest.check_ids_only
    features = fs.FeaturesStoreTest.features

    def test_labels_through_the_log(self):
        skip_unless_nats()
        import grpc
        import moerec_pb2 as pb
        import moerec_pb2_grpc
        fs.ARGS = ARGS
        with tempfile.TemporaryDirectory() as d:
            cats = lambda it: "g%d|h%d" % (it % 5, it % 2)
            tr, te = fs.random_log(31, 16, 25, 30, 300, 20, cats, love=True)
            header = ["user_id", "item_id", "ts", "like", "love", "genre"]
            write = lambda name, rows: fs.write_csv(os.path.join(d, name), header, rows)
            write("train.csv", tr)
            write("test.csv", te)
            t_end = max(r[2] for r in tr)
            for i in range(2):
                self.features(d, "train.csv", t_end, ["--store", os.path.join(d, "data%d" % i)])
            cols = ["%s_%s" % (p, k) for p in ("u", "i", "uc") for k in ("cnt_all", "like_rate_all", "recency")]
            fs.write_model(d, {"tables": [{"name": "user", "rows": 64, "dim": 4}],
                               "features": {"categorical": [{"name": "user_id", "table": "user"}],
                                            "numeric": [{"name": c} for c in cols]}})
            r = subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                                os.path.join(d, "train_feat.csv"), "--out", os.path.join(d, "models", "m"),
                                "--quiet"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            before = self.score_file(d, "test_feat.csv")
            items = sorted({x[1] for x in tr})
            new = [((k * 3) % 17, items[(k * 7) % len(items)], t_end + 1 + 13 * k, k % 2, "" if k % 3 else 1,
                    cats(items[(k * 7) % len(items)])) for k in range(20)]
            nats = NatsCluster(d)
            procs, chans = [], []
            try:
                for i in range(2):
                    p, addr = start_replica(ARGS.bin, d, i, nats.servers,
                                            extra={"online_counts": True,
                                                   "model_dir": os.path.join(d, "models")})
                    procs.append(p)
                    chans.append(grpc.insecure_channel(addr))
                stubs = [moerec_pb2_grpc.RecommenderStub(c) for c in chans]
                seq = 0
                for half in range(2):  # the first half through replica 0, the rest through 1
                    req = pb.AppendEventsRequest()
                    for u, it, ts, like, love, _ in new[10 * half:10 * half + 10]:
                        e = req.events.add(user_id=str(u), item_id=str(it), timestamp_ms=ts * 1000)
                        e.labels.add(task="like", value=float(like))
                        if love != "":
                            e.labels.add(task="love", value=float(love))
                    seq = stubs[half].AppendEvents(req, timeout=20).log_sequence
                    self.assertGreater(seq, 0)
                bad = pb.AppendEventsRequest()
                bad.events.add(user_id="1", item_id=str(items[0])).labels.add(task="buy", value=1.0)
                with self.assertRaises(grpc.RpcError) as cm:
                    stubs[1].AppendEvents(bad, timeout=20)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                write("log2.csv", tr + new)
                self.features(d, "log2.csv", max(x[2] for x in new), [])
                want = self.score_file(d, "test_feat.csv")
                self.assertGreater(sum(a["like"] != b["like"] for a, b in zip(before, want)), len(te) // 2)
                for stub in stubs:  # read your writes on each replica, then ids only
                    req = pb.ScoreRequest(user_id=str(te[0][0]), min_sequence=seq)
                    req.candidates.add(item_id=str(te[0][1]))
                    stub.Score(req, timeout=20)
                    self.check_ids_only(stub, te, want)
                # the bad request took no sequence: the next write is seq + 1
                ok = pb.AppendEventsRequest()
                ok.events.add(user_id="1", item_id=str(items[0]), timestamp_ms=(t_end + 999) * 1000)
                self.assertEqual(stubs[0].AppendEvents(ok, timeout=20).log_sequence, seq + 1)
            finally:
                for c in chans:
                    c.close()
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                    self.assertEqual(p.wait(timeout=60), 0)
                    p.stdout.close()
                nats.stop()


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
