#!/usr/bin/python3
"""Embedding tables served from the store (model.json "storage": "store")
and online updates (Admin/PushEmbeddings), end to end against the real
server:
- an fp32 store table gives bit-identical scores to the same table in
  memory; fp16 and int8 stay within 1e-3 and 1e-2 of the in-memory score;
  `moerec score` (which reads the same encoding) equals the served score;
- Reload between two store-backed versions under concurrent Score calls:
  zero failed calls, every answer is exactly one version's scores; the
  replaced version's store table is dropped;
- a missing or corrupt store table fails the Reload naming it, and the old
  version keeps serving;
- PushEmbeddings validation (NOT_FOUND, INVALID_ARGUMENT,
  FAILED_PRECONDITION) writes nothing; a push is read by the next Score
  (equal to a model whose table holds the pushed rows) and survives kill -9
  right after the ack;
- a store table with ttl_seconds loses rows nobody rewrote, counted in
  /metrics;
- with an update log (a one-node NATS JetStream, two replicas) a push
  through replica A answers with its log_sequence and replica B reads the
  rows with it as min_sequence; a replica that does not serve the model
  skips the record and counts it."""
import csv
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

ARGS = None
D = 8  # item vectors of the store (unused by these models)


def st_read(path):
    """safetensors file -> (header dict, data bytes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), f.read()


def st_write(path, header, data):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def table_floats(path, name):
    header, data = st_read(path)
    a, b = header[name]["data_offsets"]
    return list(struct.unpack("<%df" % ((b - a) // 4), data[a:b]))


def set_table(path, name, values):
    header, data = st_read(path)
    a, b = header[name]["data_offsets"]
    assert (b - a) // 4 == len(values)
    st_write(path, header, data[:a] + struct.pack("<%df" % len(values), *values) + data[b:])


def make_version(src, dst, storage=None, encoding=None, ttl=None, scale=None):
    """Copy version dir src to dst; the item table's storage/encoding/ttl
    set in model.json, its rows multiplied by scale."""
    shutil.copytree(src, dst)
    mj = os.path.join(dst, "model.json")
    with open(mj) as f:
        m = json.load(f)
    for t in m["tables"]:
        if t["name"] == "item" and storage:
            t["storage"] = storage
            if encoding:
                t["encoding"] = encoding
            if ttl:
                t["ttl_seconds"] = ttl
    with open(mj, "w") as f:
        json.dump(m, f)
    if scale is not None:
        w = os.path.join(dst, "weights.safetensors")
        set_table(w, "emb.item", [x * scale for x in table_floats(w, "emb.item")])


class Server:
    def __init__(self, root, data, extra=None, log="warn"):
        cfg = {"model_dir": root, "data_dir": data, "item_dim": D, "log_level": log}
        cfg.update(extra or {})
        self.cfg_path = os.path.join(os.path.dirname(data), "cfg-%d.json" % id(self))
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        self.err = open(self.cfg_path + ".log", "w+")
        self.proc = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--config", self.cfg_path],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.wait(timeout=30)
            self.err.seek(0)
            raise AssertionError("server did not start: %r %s" % (line, self.err.read()))
        self.addr = line[len("listening on "):]
        self.metrics = None
        if "metrics_port" in cfg:
            self.metrics = self.proc.stdout.readline().strip().split()[-1]
        import grpc
        import moerec_pb2_grpc
        self.ch = grpc.insecure_channel(self.addr)
        self.rec = moerec_pb2_grpc.RecommenderStub(self.ch)
        self.admin = moerec_pb2_grpc.AdminStub(self.ch)

    def stop(self, kill=False):
        self.ch.close()
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=60)
        else:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=60) == 0
        self.proc.stdout.close()
        self.err.seek(0)
        log = self.err.read()
        self.err.close()
        return log


class StoreTablesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from moerec_testlib import demo_model, demo_score_request
        import moerec_pb2 as pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        demo_model(ARGS.bin, d, users=20, items=50, rows=500)
        cls.v1 = os.path.join(d, "models", "demo", "1")
        cls.req = demo_score_request(pb, d, candidates=50)
        # one root, one model per storage: mem (the trained version), s32/s16/s8 store tables
        cls.root = os.path.join(d, "root")
        make_version(cls.v1, os.path.join(cls.root, "mem", "1"))
        for name, enc in (("s32", "fp32"), ("s16", "fp16"), ("s8", "int8")):
            make_version(cls.v1, os.path.join(cls.root, name, "1"), "store", enc)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def scores(self, srv, model, req=None):
        req = req or self.req
        r = type(req)()
        r.CopyFrom(req)
        r.model = model
        resp = srv.rec.Score(r, timeout=30)
        return [it.score for it in resp.items], resp.model_version.split("/")[-1]

    def test_store_tables_score_like_memory(self):
        import moerec_pb2 as pb
        srv = Server(self.root, os.path.join(self.d, "db1"))
        try:
            mem, _ = self.scores(srv, "mem")
            s32, _ = self.scores(srv, "s32")
            s16, _ = self.scores(srv, "s16")
            s8, _ = self.scores(srv, "s8")
            self.assertEqual(len(mem), 50)
            self.assertEqual(mem, s32)  # bit-identical (floats from the same fp32 rows)
            self.assertNotEqual(mem, s8)  # the encoding is really applied
            for a, b in zip(mem, s16):
                self.assertLess(abs(a - b), 1e-3)
            for a, b in zip(mem, s8):
                self.assertLess(abs(a - b), 1e-2)
            again, _ = self.scores(srv, "s8")  # now from the memory cache
            self.assertEqual(s8, again)
            info = {t.name: t for t in srv.rec.GetModelInfo(pb.GetModelInfoRequest(model="s16"),
                                                             timeout=10).tables}
            self.assertEqual((info["item"].storage, info["item"].encoding, info["item"].rows,
                              info["item"].store_table), ("store", "fp16", 4096, "mv.s16.1.item"))
            self.assertEqual((info["user"].storage, info["user"].store_table), ("memory", ""))
        finally:
            srv.stop()
        # offline: moerec score reads the table in memory, through the same encoding
        out = subprocess.run([ARGS.bin, "score", "--model", os.path.join(self.root, "s8"), "--data",
                              os.path.join(self.d, "interactions.csv"), "--quiet", "--threads", "1"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        rows = list(csv.DictReader(open(os.path.join(self.d, "interactions.csv"))))
        tool = list(csv.DictReader(out))
        srv = Server(self.root, os.path.join(self.d, "db1"))  # restart: no second bulk load
        try:
            for i in range(0, 100, 7):
                r = rows[i]
                req = pb.ScoreRequest(user_id=r["user_id"], model="s8")
                req.user_features.numeric.add(name="age", value=float(r["age"]))
                c = req.candidates.add(item_id=r["item_id"])
                c.features.categorical.add(name="genre", values=[r["genre"]])
                c.features.numeric.add(name="price", value=float(r["price"]))
                self.assertAlmostEqual(float(tool[i]["score"]), srv.rec.Score(req, timeout=10).items[0].score,
                                       places=6)
        finally:
            log = srv.stop()
        self.assertNotIn("bulk-loaded", log)

    def test_reload_under_load_between_store_versions(self):
        import grpc
        root = os.path.join(self.d, "reload_root")
        make_version(self.v1, os.path.join(root, "r", "1"), "store", "fp32")
        make_version(self.v1, os.path.join(root, "r", "2"), "store", "fp32", scale=3.0)
        srv = Server(root, os.path.join(self.d, "db2"), {"metrics_port": 0}, log="info")
        try:
            want = {}
            want["2"], v = self.scores(srv, "r")
            self.assertEqual(v, "2")
            srv.admin.Reload(__import__("moerec_pb2").ReloadRequest(model="r", version="1"), timeout=60)
            want["1"], v = self.scores(srv, "r")
            self.assertEqual(v, "1")
            self.assertNotEqual(want["1"], want["2"])
            stop, bad, seen, lock = threading.Event(), [], {"1": 0, "2": 0}, threading.Lock()

            def load():
                while not stop.is_set():
                    try:
                        s, v = self.scores(srv, "r")
                    except grpc.RpcError as e:
                        with lock:
                            bad.append("%s %s" % (e.code(), e.details()))
                        continue
                    with lock:
                        if v not in want or s != want[v]:
                            bad.append("version %s: scores of no single version" % v)
                        else:
                            seen[v] += 1

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            import moerec_pb2 as pb
            for k in range(6):
                srv.admin.Reload(pb.ReloadRequest(model="r", version="2" if k % 2 == 0 else "1"), timeout=60)
                time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join()
            self.assertEqual(bad, [])
            self.assertGreater(seen["1"], 0)
            self.assertGreater(seen["2"], 0)
            # missing table (renamed tensor) and corrupt rows (NaN) fail the reload naming the table
            v3 = os.path.join(root, "r", "3")
            make_version(self.v1, v3, "store", "fp32")
            w = os.path.join(v3, "weights.safetensors")
            header, data = st_read(w)
            header["emb.itex"] = header.pop("emb.item")
            st_write(w, header, data)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.admin.Reload(pb.ReloadRequest(model="r", version="3"), timeout=60)
            self.assertIn("emb.item", cm.exception.details())
            header["emb.item"] = header.pop("emb.itex")
            st_write(w, header, data)
            vals = table_floats(w, "emb.item")
            vals[17] = float("nan")
            set_table(w, "emb.item", vals)
            with self.assertRaises(grpc.RpcError) as cm:
                srv.admin.Reload(pb.ReloadRequest(model="r", version="3"), timeout=60)
            self.assertIn("table 'item'", cm.exception.details())
            self.assertIn("is NaN", cm.exception.details())
            s, v = self.scores(srv, "r")
            self.assertEqual((s, v), (want["1"], "1"))
            # /metrics lists the serving version's family, not the dropped ones
            m = urllib.request.urlopen(srv.metrics, timeout=10).read().decode()
            self.assertIn('moerec_store_sst_bytes{family="emb.mv.r.1.item"}', m)
            self.assertNotIn("emb.mv.r.2.item", m)
            self.assertNotIn("emb.mv.r.3.item", m)
        finally:
            log = srv.stop()
        self.assertIn("store table mv.r.2.item dropped", log)
        self.assertIn("store table mv.r.3.item dropped", log)  # the failed load left nothing
        # restart serving the newest on disk (3 is broken: remove it): 1's table is dropped at open
        shutil.rmtree(os.path.join(root, "r", "3"))
        srv = Server(root, os.path.join(self.d, "db2"), log="info")
        log = srv.stop()
        self.assertIn("store table mv.r.1.item dropped (its version is not served)", log)

    def test_push_embeddings(self):
        import grpc
        import moerec_pb2 as pb
        root = os.path.join(self.d, "push_root")
        make_version(self.v1, os.path.join(root, "p", "1"), "store", "fp32")
        # the expected result: a model whose item table holds the pushed rows, in memory
        make_version(self.v1, os.path.join(root, "pm", "1"))
        w = os.path.join(root, "pm", "1", "weights.safetensors")
        rows = table_floats(w, "emb.item")
        dim = 16
        ids = list(range(0, 4096, 3))
        for i in ids:
            for j in range(dim):
                rows[i * dim + j] = 0.01 * ((i * 7 + j) % 13) - 0.06
        set_table(w, "emb.item", rows)
        data = os.path.join(self.d, "db3")
        srv = Server(root, data, {"metrics_port": 0})
        try:
            before, _ = self.scores(srv, "p")
            want, _ = self.scores(srv, "pm")
            self.assertNotEqual(before, want)
            push = [x for i in ids for x in rows[i * dim:(i + 1) * dim]]
            ok = pb.PushEmbeddingsRequest(model="p", table="item", ids=ids, rows=push, request_id="r1")
            for bad, code, msg in (
                    (dict(model="nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
                    (dict(table="nope"), grpc.StatusCode.NOT_FOUND, "no table 'nope'"),
                    (dict(table="user", rows=push[:dim] * len(ids)), grpc.StatusCode.FAILED_PRECONDITION,
                     "held in memory"),
                    (dict(version="7"), grpc.StatusCode.FAILED_PRECONDITION, "serves version 1"),
                    (dict(rows=push[:-1]), grpc.StatusCode.INVALID_ARGUMENT, "has dim 16"),
                    (dict(ids=ids[:-1] + [4096]), grpc.StatusCode.INVALID_ARGUMENT, "is not a row"),
                    (dict(ids=ids[:-1] + [0]), grpc.StatusCode.INVALID_ARGUMENT, "appears twice"),
                    (dict(rows=push[:5] + [float("inf")] + push[6:]), grpc.StatusCode.INVALID_ARGUMENT,
                     "rows[5]: not a finite number"),
                    (dict(ids=[], rows=[]), grpc.StatusCode.INVALID_ARGUMENT, "at least one"),
                    (dict(ids=list(range(65537)), rows=[]), grpc.StatusCode.INVALID_ARGUMENT,
                     "65537 entries, at most 65536")):
                r = pb.PushEmbeddingsRequest()
                r.CopyFrom(ok)
                for k, v in bad.items():
                    r.ClearField(k)
                    if isinstance(v, list):
                        getattr(r, k).extend(v)
                    else:
                        setattr(r, k, v)
                with self.assertRaises(grpc.RpcError) as cm:
                    srv.admin.PushEmbeddings(r, timeout=30)
                self.assertEqual(cm.exception.code(), code, (bad.keys(), cm.exception.details()))
                self.assertIn(msg, cm.exception.details())
            self.assertEqual(self.scores(srv, "p")[0], before)  # refused pushes wrote nothing
            resp = srv.admin.PushEmbeddings(ok, timeout=30)
            self.assertEqual((resp.written, resp.model, resp.version, resp.request_id), (len(ids), "p", "1", "r1"))
            self.assertEqual(self.scores(srv, "p")[0], want)  # the next Score reads the pushed rows
            m = urllib.request.urlopen(srv.metrics, timeout=10).read().decode()
            self.assertIn("moerec_embedding_pushes_total 1\n", m)
            self.assertIn("moerec_embedding_pushed_rows_total %d\n" % len(ids), m)
            # kill -9 right after the ack of a second push: both are there after the restart
            rows2 = list(rows)
            for j in range(dim):
                rows2[dim + j] = 0.5
            srv.admin.PushEmbeddings(pb.PushEmbeddingsRequest(model="p", table="item", ids=[1],
                                                              rows=[0.5] * dim), timeout=30)
        finally:
            srv.stop(kill=True)
        set_table(w, "emb.item", rows2)
        srv = Server(root, data)
        try:
            self.assertEqual(self.scores(srv, "p")[0], self.scores(srv, "pm")[0])
        finally:
            srv.stop()

    def test_push_through_the_update_log(self):
        """With an update log (a one-node NATS JetStream, two replicas): a
        push through replica A is checked there, published and answered
        with its log_sequence; replica B reads the rows with it as
        min_sequence; a refused push publishes nothing; a retry with the
        same request_id is the same record; a push for a model B does not
        serve, or for a version B does not serve, is skipped and counted on
        B, and the log goes on."""
        import grpc
        import socket
        import moerec_pb2 as pb
        if not shutil.which("nats-server"):
            self.skipTest("nats-server not installed (scripts/install-deps.sh --tests)")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        nats = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                                 os.path.join(self.d, "nats")], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        srvs = []
        try:
            until = time.time() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    self.assertLess(time.time(), until, "nats-server did not listen")
                    time.sleep(0.05)
            # replica A serves p, pm and q; replica B serves p and pm only
            root_b, root_a = os.path.join(self.d, "log_root_b"), os.path.join(self.d, "log_root_a")
            make_version(self.v1, os.path.join(root_b, "p", "1"), "store", "fp32")
            make_version(self.v1, os.path.join(root_b, "pm", "1"))
            w = os.path.join(root_b, "pm", "1", "weights.safetensors")
            rows = table_floats(w, "emb.item")
            dim, ids = 16, list(range(1, 4096, 3))
            for i in ids:
                for j in range(dim):
                    rows[i * dim + j] = 0.02 * ((i + j) % 7) - 0.05
            set_table(w, "emb.item", rows)
            shutil.copytree(root_b, root_a)
            make_version(self.v1, os.path.join(root_a, "q", "1"), "store", "fp32")
            make_version(self.v1, os.path.join(root_a, "h", "1"), "store", "fp16")
            # model v: version 1 on A, version 2 on B (a rollout in progress)
            make_version(self.v1, os.path.join(root_a, "v", "1"), "store", "fp32")
            make_version(self.v1, os.path.join(root_b, "v", "2"), "store", "fp32")
            for i, root in enumerate((root_a, root_b)):
                srvs.append(Server(root, os.path.join(self.d, "db5_%d" % i),
                                   {"log_servers": "nats://127.0.0.1:%d" % port, "log_replicas": 1,
                                    "log_consumer": "r%d" % i, "metrics_port": 0,
                                    "drain_grace_seconds": 0}, log="info"))
            a, b = srvs
            before, _ = self.scores(b, "p")
            want, _ = self.scores(a, "pm")
            self.assertNotEqual(before, want)
            push = [x for i in ids for x in rows[i * dim:(i + 1) * dim]]
            with self.assertRaises(grpc.RpcError) as cm:  # checked by A, not published
                a.admin.PushEmbeddings(pb.PushEmbeddingsRequest(model="p", table="item", ids=ids,
                                                                rows=push[:-1]), timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            with self.assertRaises(grpc.RpcError) as cm:  # fp16 range: checked before publishing
                a.admin.PushEmbeddings(pb.PushEmbeddingsRequest(model="h", table="item", ids=[1],
                                                                rows=[1.0] * 3 + [7e4] + [1.0] * 12),
                                       timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.OUT_OF_RANGE)
            self.assertIn("element 3 = 70000 is outside the fp16 range", cm.exception.details())
            rq = a.admin.PushEmbeddings(pb.PushEmbeddingsRequest(model="q", table="item", ids=[1],
                                                                 rows=[0.5] * dim), timeout=30)
            self.assertEqual((rq.written, rq.version), (1, "1"))
            self.assertEqual(rq.log_sequence, 1)  # the refused pushes took no sequence
            rv = a.admin.PushEmbeddings(pb.PushEmbeddingsRequest(model="v", table="item", ids=[1],
                                                                 rows=[0.5] * dim), timeout=30)
            self.assertEqual((rv.version, rv.log_sequence), ("1", 2))
            ok = pb.PushEmbeddingsRequest(model="p", table="item", ids=ids, rows=push, request_id="l1")
            resp = a.admin.PushEmbeddings(ok, timeout=30)
            self.assertEqual((resp.written, resp.model, resp.version, resp.request_id,
                              resp.log_sequence), (len(ids), "p", "1", "l1", 3))
            again = a.admin.PushEmbeddings(ok, timeout=30)  # a retry: the same record
            self.assertEqual(again.log_sequence, 3)
            for srv in (b, a):  # read-your-writes on both replicas
                r = pb.ScoreRequest()
                r.CopyFrom(self.req)
                r.model, r.min_sequence = "p", resp.log_sequence
                got = srv.rec.Score(r, timeout=30)
                self.assertEqual([it.score for it in got.items], want)
            mb = urllib.request.urlopen(b.metrics, timeout=10).read().decode()
            ma = urllib.request.urlopen(a.metrics, timeout=10).read().decode()
            self.assertIn("moerec_embedding_push_skipped_total 2\n", mb)  # q and v/1: not on B
            self.assertIn("moerec_embedding_pushes_total 1\n", mb)
            self.assertIn("moerec_embedding_push_skipped_total 0\n", ma)
            self.assertIn("moerec_embedding_pushes_total 3\n", ma)
            self.assertIn("moerec_embedding_pushed_rows_total %d\n" % (len(ids) + 2), ma)
            r = pb.ScoreRequest()  # B's version 2 kept its own rows
            r.CopyFrom(self.req)
            r.model = "v"
            self.assertEqual([it.score for it in b.rec.Score(r, timeout=30).items], before)
            logs = [srv.stop() for srv in srvs]
            srvs = []
            self.assertIn("PushEmbeddings of model 'q' version 1 table 'item' skipped", logs[1])
            self.assertIn("PushEmbeddings of model 'v' version 1 table 'item' skipped: model 'v' "
                          "serves version 2", logs[1])
            self.assertNotIn("skipped", logs[0])
        finally:
            for srv in srvs:
                srv.stop(kill=True)
            nats.kill()
            nats.wait()

    def test_ttl_evicts_rows_not_rewritten(self):
        import moerec_pb2 as pb
        root = os.path.join(self.d, "ttl_root")
        make_version(self.v1, os.path.join(root, "t", "1"), "store", "fp32", ttl=1)
        # the expected result once every item row is gone: a zero item table in memory
        make_version(self.v1, os.path.join(root, "z", "1"))
        w = os.path.join(root, "z", "1", "weights.safetensors")
        set_table(w, "emb.item", [0.0] * (4096 * 16))
        srv = Server(root, os.path.join(self.d, "db4"), {"expire_interval_seconds": 0.5, "metrics_port": 0})
        try:
            zero, _ = self.scores(srv, "z")
            deadline = time.time() + 60
            while time.time() < deadline and self.scores(srv, "t")[0] != zero:
                time.sleep(0.3)
            self.assertEqual(self.scores(srv, "t")[0], zero)
            deadline = time.time() + 60
            n = 0
            while time.time() < deadline and n < 4096:
                m = urllib.request.urlopen(srv.metrics, timeout=10).read().decode()
                n = int(m.split("\nmoerec_store_expired_rows_total ")[1].split()[0])
                time.sleep(0.3)
            self.assertGreaterEqual(n, 4096)
            # counted per table too: the sweep's deletions of this table's rows
            m = urllib.request.urlopen(srv.metrics, timeout=10).read().decode()
            per = int(m.split('\nmoerec_store_table_ttl_evictions_total{table="mv.t.1.item"} ')[1].split()[0])
            self.assertGreaterEqual(per, 4096)
            self.assertIn('moerec_store_table_cache_hits_total{table="mv.t.1.item"} ', m)
            info = {t.name: t for t in srv.rec.GetModelInfo(pb.GetModelInfoRequest(model="t"), timeout=10).tables}
            self.assertEqual(info["item"].ttl_seconds, 1)
        finally:
            srv.stop()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from moerec_testlib import run
    run(globals())
