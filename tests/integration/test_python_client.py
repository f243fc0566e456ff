"""The Python client package (clients/python, installed into a venv by
install_python_client.sh) against the real server: a typed helper for
every RPC, errors carrying the server's status and message, round robin
over two replicas, retries of UNAVAILABLE only (with a dead address in the
list, and a deadline that bounds them), bearer tokens; DeleteItems,
Admin/PushEmbeddings (a world with a store table), Admin/Checkpoint, Stats with a digest, the consumed filter, and
read-your-writes over a NATS JetStream update log (log_sequence of a write
passed as min_sequence to a read on another replica). The client's TLS
options are checked against a grpcio health server with mTLS (the server's
own TLS is tested by test_tls.py).

Run: VENV/bin/python test_python_client.py --bin PATH/TO/moerec"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moerec_world  # noqa: E402

import grpc  # noqa: E402
from moerec_client import Client, MoerecError, RetryPolicy, features, pb  # noqa: E402

ARGS = None
SVC, ADMIN = "svc-token-0123456789abcdef", "adm-token-0123456789abcdef"


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.items = moerec_world.build(ARGS.bin, d)[0]
        cls.a = moerec_world.Server(ARGS.bin, d, tag="a")
        cls.b = moerec_world.Server(ARGS.bin, d, tag="b")
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write("%s\n%s admin\n" % (SVC, ADMIN))
        cls.auth = moerec_world.Server(ARGS.bin, d, {"auth_tokens_file": os.path.join(d, "tokens")},
                                       tag="auth")
        cls.c = Client(cls.a.target)
        cls.c.upsert_items([{"item_id": str(i), "embedding": v}
                            for i, (g, v) in cls.items.items()])

    @classmethod
    def tearDownClass(cls):
        cls.c.close()
        for s in (cls.a, cls.b, cls.auth):
            s.stop()
        cls.tmp.cleanup()

    def test_health_and_model_info(self):
        self.assertEqual(self.c.health(), "SERVING")
        self.assertEqual(self.c.health("moerec.v1.Recommender"), "SERVING")
        self.assertEqual(next(self.c.watch_health(timeout=5)), "SERVING")
        info = self.c.get_model_info()
        self.assertEqual((info.model, info.version, info.architecture), ("rec", "1", "mmoe"))
        self.assertEqual([t.name for t in info.tasks], ["click"])
        self.assertEqual(sorted(r.kind for r in info.retrievers)[-1], "popularity")

    def test_events_retrieve_recommend_score(self):
        g2 = [i for i, (g, _) in self.items.items() if g == 2][:5]
        r = self.c.append_events([("carol", str(i), 1000 + t, "click") for t, i in enumerate(g2)])
        self.assertEqual(r.appended, 5)
        r = self.c.append_events([{"user_id": "carol", "item_id": str(g2[0]), "timestamp_ms": 2000}])
        self.assertEqual(r.appended, 1)
        # labels as a dict: checked by the server (online_counts off: not used)
        r = self.c.append_events([{"user_id": "carol", "item_id": str(g2[0]), "timestamp_ms": 2001,
                                   "labels": {"like": 1}}])
        self.assertEqual(r.appended, 1)
        with self.assertRaises(MoerecError) as cm:
            self.c.append_events([{"user_id": "carol", "item_id": str(g2[0]), "labels": {"like": 0.5}}])
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        # Retrieve from the user's history: mostly group 2
        r = self.c.retrieve("carol", k=10, request_id="q1")
        self.assertEqual(r.request_id, "q1")
        self.assertEqual(len(r.items), 10)
        self.assertGreaterEqual(sum(self.items[int(x.item_id)][0] == 2 for x in r.items), 7)
        # ... and from an explicit vector: the item itself first
        iid = g2[1]
        r = self.c.retrieve(query_vector=self.items[iid][1], k=5, debug=True)
        self.assertEqual(r.items[0].item_id, str(iid))
        self.assertTrue(any(x.selected for x in r.debug.routes))
        # a NumPy vector is taken as well as a list (docs/python-client.md)
        import numpy as np
        r = self.c.retrieve(query_vector=np.asarray(self.items[iid][1], dtype=np.float32), k=5)
        self.assertEqual(r.items[0].item_id, str(iid))
        # Recommend: ranked, excluding what was asked
        r = self.c.recommend("carol", k=5, exclude_item_ids=[str(g2[0])], debug=True)
        self.assertEqual(len(r.items), 5)
        self.assertNotIn(str(g2[0]), [x.item_id for x in r.items])
        self.assertEqual(r.model_version, "rec/1")
        s = [x.score for x in r.items]
        self.assertEqual(s, sorted(s, reverse=True))
        # Score keeps the candidates' order; Recommend's scores are Score's
        cands = [x.item_id for x in r.items][::-1]
        sr = self.c.score("carol", cands)
        self.assertEqual([x.item_id for x in sr.items], cands)
        want = {x.item_id: x.score for x in r.items}
        for x in sr.items:
            self.assertAlmostEqual(x.score, want[x.item_id], places=5)
        # the candidate forms are equivalent
        forms = [cands[0], (cands[0], None), {"item_id": cands[0]}, pb.Candidate(item_id=cands[0])]
        out = self.c.score("carol", forms)
        self.assertEqual(len({x.score for x in out.items}), 1)

    def test_server_errors_carry_code_and_message(self):
        with self.assertRaises(MoerecError) as cm:
            self.c.score("carol", [("1", {"no_such_feature": "x"})])
        e = cm.exception
        self.assertEqual(e.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(e.code_name, "INVALID_ARGUMENT")
        self.assertIn("no_such_feature", e.details)
        self.assertEqual(e.method, "Score")
        self.assertEqual(e.attempts, 1)  # not retried
        self.assertIn("INVALID_ARGUMENT", str(e))
        with self.assertRaises(MoerecError) as cm:
            self.c.recommend("", k=5)
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(MoerecError) as cm:
            self.c.get_model_info(model="absent")
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(MoerecError) as cm:
            self.c.reload(version="99")
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_admin(self):
        r = self.c.reload()
        self.assertEqual((r.model, r.previous_version, r.version), ("rec", "1", "1"))
        st = self.c.stats()
        calls = {m.method.rsplit("/", 1)[1]: m.calls for m in st.methods}
        self.assertGreaterEqual(calls["UpsertItems"], 1)
        self.assertGreater(st.uptime_seconds + 1, 0)

    def test_push_embeddings(self):
        # the class's world holds its tables in memory: the RPC answers that
        with self.assertRaises(MoerecError) as cm:
            self.c.push_embeddings("item", [1], [0.0] * 4)
        self.assertEqual(cm.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("held in memory", cm.exception.details)
        with self.assertRaises(MoerecError) as cm:
            self.c.push_embeddings("nope", [1], [0.0] * 4)
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)
        # a world whose item table is served from the store takes pushes
        mj = dict(moerec_world.MODEL_JSON)
        mj["tables"] = [{"name": "user", "rows": 64, "dim": 4},
                        {"name": "item", "rows": 256, "dim": 4, "storage": "store"}]
        with tempfile.TemporaryDirectory() as d:
            moerec_world.build(ARGS.bin, d, mj)
            srv = moerec_world.Server(ARGS.bin, d)
            try:
                with Client(srv.target) as c:
                    before = c.score("3", ["5"]).items[0].score
                    ids = list(range(256))
                    r = c.push_embeddings("item", ids, [[0.5, -1.0, 0.25, 2.0]] * 256, request_id="p")
                    self.assertEqual((r.written, r.model, r.version, r.request_id), (256, "rec", "1", "p"))
                    after = c.score("3", ["5"]).items[0].score
                    self.assertNotEqual(after, before)
                    # the same rows as a flat and as a 2-D NumPy array: same answer
                    import numpy as np
                    flat = np.tile(np.asarray([0.5, -1.0, 0.25, 2.0], dtype=np.float32), 256)
                    self.assertEqual(c.push_embeddings("item", ids, flat).written, 256)
                    self.assertEqual(c.score("3", ["5"]).items[0].score, after)
                    self.assertEqual(c.push_embeddings("item", ids, flat.reshape(256, 4)).written, 256)
                    self.assertEqual(c.score("3", ["5"]).items[0].score, after)
                    with self.assertRaises(MoerecError) as cm:  # 3 values for a dim-4 row
                        c.push_embeddings("item", [1], [0.0] * 3)
                    self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
                    self.assertIn("dim 4", cm.exception.details)
            finally:
                srv.stop()

    def test_delete_items(self):
        v = moerec_world._unit([1.0] + [0.5] * (len(self.items[1][1]) - 1))
        self.c.upsert_items([{"item_id": "900001", "embedding": v}])
        self.assertEqual(self.c.retrieve(query_vector=v, k=3).items[0].item_id, "900001")
        r = self.c.delete_items(["900001", "never-stored"], request_id="d1")
        self.assertEqual((r.request_id, r.deleted), ("d1", 2))  # unknown ids count too
        self.assertNotIn("900001", [x.item_id for x in self.c.retrieve(query_vector=v, k=50).items])
        with self.assertRaises(MoerecError) as cm:
            self.c.delete_items([])
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(MoerecError) as cm:
            self.c.delete_items(["x"], model="absent")
        self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(TypeError):
            self.c.delete_items("900001")

    def test_checkpoint(self):
        cp = os.path.join(self.tmp.name, "checkpoint-a")
        r = self.c.checkpoint(cp)
        self.assertEqual((r.dir, r.log_sequence), (cp, 0))  # no update log here
        self.assertTrue(os.path.isfile(os.path.join(cp, "CURRENT")))
        with self.assertRaises(MoerecError) as cm:
            self.c.checkpoint(cp)
        self.assertEqual(cm.exception.code, grpc.StatusCode.ALREADY_EXISTS)
        with self.assertRaises(MoerecError) as cm:
            self.c.checkpoint("relative/dir")
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_stats_digest(self):
        plain, full = self.c.stats(), self.c.stats(digest=True)
        self.assertEqual((plain.store_rows, plain.store_digest), (0, 0))
        self.assertGreaterEqual(full.store_rows, len(self.items))
        self.assertNotEqual(full.store_digest, 0)

    def test_sequences_without_a_log(self):
        r = self.c.upsert_items([{"item_id": "1", "embedding": self.items[1][1]}])
        self.assertEqual(r.log_sequence, 0)
        self.assertEqual(self.c.append_events([("erin", "1")]).log_sequence, 0)
        for call in (lambda: self.c.recommend("erin", k=3, min_sequence=1),
                     lambda: self.c.score("erin", ["1"], min_sequence=1),
                     lambda: self.c.retrieve("erin", k=3, min_sequence=1)):
            with self.assertRaises(MoerecError) as cm:
                call()
            self.assertEqual(cm.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(len(self.c.score("erin", ["1"], min_sequence=0).items), 1)
        for bad in (-1, 1 << 64, 1.5, True):
            with self.assertRaises(ValueError):
                self.c.retrieve("erin", min_sequence=bad)

    def test_consumed_filter(self):
        g3 = [str(i) for i, (g, _) in self.items.items() if g == 3]
        self.c.append_events([("frank", g3[0], 1000, "click")])
        got = lambda f: [x.item_id for x in self.c.recommend("frank", k=10,
                                                             consumed_filter=f).items]
        clicked = [i for i in got("none") if i != g3[0]][:3]  # what it ranks first
        self.c.append_events([("frank", i, 2000 + t, "click") for t, i in enumerate(clicked)])
        none = got(pb.ConsumedFilter(policy="none"))
        self.assertTrue(set(clicked) <= set(none), (clicked, none))
        self.assertFalse(set(got("all")) & set(clicked + [g3[0]]))
        self.assertEqual(got(None), got("all"))  # the server's default policy
        last1 = got(("last", 1))  # only the newest click is dropped
        self.assertNotIn(clicked[2], last1)
        self.assertTrue(set(clicked[:2]) <= set(last1), (clicked, last1))
        self.assertFalse(set(got({"policy": "last", "last_n": 3})) & set(clicked))
        with self.assertRaises(MoerecError) as cm:
            got("some")
        self.assertEqual(cm.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_round_robin(self):
        def n_info(target):
            with Client(target) as c:
                for m in c.stats().methods:
                    if m.method.endswith("/GetModelInfo"):
                        return m.calls
            return 0
        before = n_info(self.a.target), n_info(self.b.target)
        with Client([self.a.target, self.b.target]) as c:
            for _ in range(10):
                c.get_model_info()
        # a call is counted once its last batch completes: poll
        for _ in range(100):
            after = n_info(self.a.target), n_info(self.b.target)
            if after[0] - before[0] == 5 and after[1] - before[1] == 5:
                break
            time.sleep(0.05)
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (5, 5))

    def test_retries_unavailable_only(self):
        dead = "127.0.0.1:%d" % moerec_world.free_port()
        fast = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
        with Client([dead, self.a.target], retry=fast) as c:
            for _ in range(6):  # every other call starts at the dead address
                self.assertEqual(c.get_model_info().model, "rec")
        with Client(dead, retry=fast, timeout=5) as c:
            with self.assertRaises(MoerecError) as cm:
                c.get_model_info()
            self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(cm.exception.attempts, 3)
        with Client(dead, retry=RetryPolicy(max_attempts=1), timeout=5) as c:
            with self.assertRaises(MoerecError) as cm:
                c.health()
            self.assertEqual(cm.exception.attempts, 1)
        # the deadline bounds the retries: 1000 attempts, 0.5 s
        t0 = time.monotonic()
        with Client(dead, retry=RetryPolicy(max_attempts=1000, initial_backoff=0.05),
                    timeout=0.5) as c:
            with self.assertRaises(MoerecError) as cm:
                c.health()
        self.assertIn(cm.exception.code, (grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.DEADLINE_EXCEEDED))
        self.assertLess(cm.exception.attempts, 1000)
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_bearer_token(self):
        t = self.auth.target
        with Client(t) as c:
            self.assertEqual(c.health(), "SERVING")  # health is open
            with self.assertRaises(MoerecError) as cm:
                c.get_model_info()
            self.assertEqual(cm.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        with Client(t, token=SVC) as c:
            self.assertEqual(c.get_model_info().model, "rec")
            with self.assertRaises(MoerecError) as cm:
                c.stats()
            self.assertEqual(cm.exception.code, grpc.StatusCode.PERMISSION_DENIED)
        with Client(t, token=ADMIN) as c:
            self.assertGreaterEqual(c.stats().uptime_seconds, 0)

    def test_features_helper(self):
        f = features({"genre": "drama", "tags": ["a", "b"], "age": 31, "price": 2.5})
        self.assertEqual([(x.name, list(x.values)) for x in f.categorical],
                         [("genre", ["drama"]), ("tags", ["a", "b"])])
        self.assertEqual([(x.name, x.value) for x in f.numeric], [("age", 31.0), ("price", 2.5)])
        for bad in ({"x": True}, {"x": [1, 2]}, {"x": None}):
            with self.assertRaises(TypeError):
                features(bad)
        with self.assertRaises(ValueError):
            Client([])
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1", client_cert=b"x")
        with self.assertRaises(ValueError):
            Client("127.0.0.1:1").call("NoSuchRpc", pb.StatsRequest())


class UpdateLogTest(unittest.TestCase):
    """Two replicas on one NATS JetStream node: a write's log_sequence
    (UpsertItems, AppendEvents, DeleteItems), passed as min_sequence, makes
    a read on the other replica see it; a write retried with its
    request_id is answered with the first record's sequence."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("nats-server"):
            raise unittest.SkipTest("nats-server not installed (scripts/install-deps.sh --tests)")
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.items = moerec_world.build(ARGS.bin, d)[0]
        port = moerec_world.free_port()
        cls.nats = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js",
                                     "-sd", os.path.join(d, "nats")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > until:
                    raise
                time.sleep(0.05)
        cls.srv = [moerec_world.Server(ARGS.bin, d, {
            "log_servers": "nats://127.0.0.1:%d" % port, "log_consumer": "r" + t,
            "log_replicas": 1, "log_timeout_ms": 20000}, tag="log" + t) for t in "ab"]

    @classmethod
    def tearDownClass(cls):
        for s in cls.srv:
            s.stop()
        cls.nats.kill()
        cls.nats.wait()
        cls.tmp.cleanup()

    def test_read_your_writes(self):
        v = moerec_world._unit([0.5] * (len(self.items[1][1]) - 1) + [1.0])
        with Client(self.srv[0].target) as a, Client(self.srv[1].target) as b:
            w1 = a.upsert_items([{"item_id": "900002", "embedding": v}])
            w2 = a.append_events([("gina", "900002", 5000, "click")])
            self.assertGreater(w1.log_sequence, 0)
            self.assertGreater(w2.log_sequence, w1.log_sequence)
            r = b.retrieve(query_vector=v, k=3, min_sequence=w1.log_sequence, timeout=20)
            self.assertEqual(r.items[0].item_id, "900002")
            b.score("gina", ["900002"], min_sequence=w2.log_sequence, timeout=20)
            self.assertGreaterEqual(b.stats().log_applied_sequence, w2.log_sequence)
            self.assertGreaterEqual(b.recommend("gina", k=3, min_sequence=w2.log_sequence,
                                                timeout=20).items[0].score, 0)
            # a sequence nobody wrote: the wait ends at the deadline, not retried
            with Client(self.srv[1].target, retry=RetryPolicy(max_attempts=1)) as b1:
                with self.assertRaises(MoerecError) as cm:
                    b1.score("gina", ["900002"], min_sequence=w2.log_sequence + 1000, timeout=1)
            self.assertIn(cm.exception.code, (grpc.StatusCode.UNAVAILABLE,
                                              grpc.StatusCode.DEADLINE_EXCEEDED))
            # a delete is a record too: gone on B once B applied it
            w3 = a.delete_items(["900002"])
            self.assertGreater(w3.log_sequence, w2.log_sequence)
            r = b.retrieve(query_vector=v, k=50, min_sequence=w3.log_sequence, timeout=20)
            self.assertNotIn("900002", [x.item_id for x in r.items])
            # a write retried with its request_id is one record
            req = [{"item_id": "900003", "embedding": v}]
            w4 = a.upsert_items(req, request_id="once-1")
            self.assertEqual(b.upsert_items(req, request_id="once-1").log_sequence,
                             w4.log_sequence)
            self.assertGreater(a.upsert_items(req).log_sequence, w4.log_sequence)
            # a checkpoint names the last record it holds
            cp = a.checkpoint(os.path.join(self.tmp.name, "cp-log"))
            self.assertGreaterEqual(cp.log_sequence, w4.log_sequence)


def make_certs(d):
    """A CA, a server certificate for 'moerec.test' and a client certificate."""
    def ossl(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True, cwd=d)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=moerec test CA")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:moerec.test\n")
    for who in ("server", "client"):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", who + ".key", "-out", who + ".csr",
             "-subj", "/CN=" + ("moerec.test" if who == "server" else "client"))
        ossl("x509", "-req", "-in", who + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", who + ".pem", "-days", "2", "-extfile", "san.ext")


class TlsTest(unittest.TestCase):
    """The client's TLS options against a grpcio server requiring mTLS."""

    def test_mtls(self):
        from concurrent import futures
        from moerec_client import health_pb2
        with tempfile.TemporaryDirectory() as d:
            make_certs(d)
            def rd(name):
                with open(os.path.join(d, name), "rb") as f:
                    return f.read()

            def check(req, ctx):
                return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
            handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
                "Check": grpc.unary_unary_rpc_method_handler(
                    check, request_deserializer=health_pb2.HealthCheckRequest.FromString,
                    response_serializer=health_pb2.HealthCheckResponse.SerializeToString)})
            srv = grpc.server(futures.ThreadPoolExecutor(2))
            srv.add_generic_rpc_handlers((handler,))
            creds = grpc.ssl_server_credentials([(rd("server.key"), rd("server.pem"))],
                                                root_certificates=rd("ca.pem"),
                                                require_client_auth=True)
            port = srv.add_secure_port("127.0.0.1:0", creds)
            srv.start()
            try:
                t = "127.0.0.1:%d" % port
                fast = RetryPolicy(max_attempts=1)
                with Client(t, root_cert=os.path.join(d, "ca.pem"),
                            client_cert=os.path.join(d, "client.pem"),
                            client_key=os.path.join(d, "client.key"),
                            server_name="moerec.test", timeout=10) as c:
                    self.assertEqual(c.health(), "SERVING")
                # bytes work as well as paths
                with Client(t, root_cert=rd("ca.pem"), client_cert=rd("client.pem"),
                            client_key=rd("client.key"), server_name="moerec.test") as c:
                    self.assertEqual(c.health(), "SERVING")
                # no client certificate: the handshake fails -> UNAVAILABLE
                with Client(t, root_cert=rd("ca.pem"), server_name="moerec.test", retry=fast,
                            timeout=5) as c:
                    with self.assertRaises(MoerecError) as cm:
                        c.health()
                    self.assertEqual(cm.exception.code, grpc.StatusCode.UNAVAILABLE)
                # plaintext against TLS fails too
                with Client(t, retry=fast, timeout=5) as c:
                    with self.assertRaises(MoerecError):
                        c.health()
            finally:
                srv.stop(None)


if __name__ == "__main__":
    moerec_world.main(globals())
