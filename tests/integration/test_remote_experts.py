#!/usr/bin/python3
"""Retrieval experts on another machine (issue 12 item 4), with real
servers on 127.0.0.1 and free ports, through Debian's python3-grpcio.

A world of four FAISS experts (group_0..group_3) and a popularity
fallback is served whole by a holder server; a router server loads the
same set with group_2 and group_3 turned into kind "remote" entries that
name the holder. The router's answers (items, scores, each item's
experts and expert score, the routing weights and budgets) equal the
holder's all-local answers for routed, top-up and named requests;
GetModelInfo and /metrics show the remote experts. A third server whose
remote experts name a port that accepts TCP and never speaks HTTP/2 (a
stuck machine) answers within its remote_deadline_ms, and within half of
the caller's own deadline, with group_3's budget moved and its debug
route saying DEADLINE_EXCEEDED; with both remote experts named it waits
one deadline, not two (the calls run in parallel). Recommend for a user whose events lie in a
remote expert's group equals the holder's. Then the holder is killed
with SIGKILL: the router still answers every Retrieve and Recommend,
with no item from the dead experts, their budget passed on and their
routes saying UNAVAILABLE; the error counters say so too. Last the
holder restarts on its port and the router answers as before."""
import json
import os
import shutil
import signal
import socket
import tempfile
import time
import unittest
import urllib.request

import moerec_testlib
import moerec_world as world

ARGS = None
REMOTE = ("group_2", "group_3")


def remote_set(src, dst, address, names):
    """Copy the model version src into dst with the experts in names made
    remote (kind "remote", served at address; their files removed)."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, "retrievers", "retrievers.json")
    with open(path) as f:
        m = json.load(f)
    for i, e in enumerate(m["experts"]):
        if e["name"] in names:
            m["experts"][i] = {"name": e["name"], "kind": "remote", "address": address,
                               "remote_name": e["name"]}
            os.remove(os.path.join(dst, "retrievers", e["file"]))
            os.remove(os.path.join(dst, "retrievers", e["file"] + ".meta"))
    with open(path, "w") as f:
        json.dump(m, f, indent=2)


def metrics(port):
    return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()


def metric(text, prefix):
    total = 0
    for line in text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


class RemoteExpertsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            cls.start()
        except BaseException:   # no server left behind by a failed start
            for s in ("holder", "router", "slow"):
                if hasattr(cls, s) and getattr(cls, s).proc.poll() is None:
                    getattr(cls, s).proc.kill()
            raise

    @classmethod
    def start(cls):
        import grpc
        import moerec_pb2 as pb
        import moerec_pb2_grpc as pbg
        cls.grpc, cls.pb = grpc, pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.items, _ = world.build(ARGS.bin, d)
        cls.holder = world.Server(ARGS.bin, d, tag="holder")
        src = os.path.join(d, "models", "rec", "1")
        remote_set(src, os.path.join(d, "router-models", "rec", "1"), cls.holder.target, REMOTE)
        cls.router = world.Server(ARGS.bin, d, tag="router", extra_config={
            "model_dir": os.path.join(d, "router-models"), "remote_deadline_ms": 5000})
        # a port that accepts connections and never answers
        cls.stuck = socket.socket()
        cls.stuck.bind(("127.0.0.1", 0))
        cls.stuck.listen(16)
        stuck_at = "127.0.0.1:%d" % cls.stuck.getsockname()[1]
        remote_set(src, os.path.join(d, "slow-models", "rec", "1"), stuck_at, REMOTE)
        cls.slow = world.Server(ARGS.bin, d, tag="slow", extra_config={
            "model_dir": os.path.join(d, "slow-models"), "remote_deadline_ms": 3000})
        cls.chans = [grpc.insecure_channel(s.target) for s in (cls.holder, cls.router, cls.slow)]
        cls.h, cls.r, cls.s = [pbg.RecommenderStub(c) for c in cls.chans]
        # the same catalogue and one user's events in the holder's and the
        # router's stores (for Recommend); the router places only the
        # items of its local experts
        up = pb.UpsertItemsRequest()
        for iid, (g, v) in sorted(cls.items.items()):
            it = up.items.add(item_id=str(iid), embedding=v)
            it.features.categorical.add(name="group", values=[str(g)])
        ev = pb.AppendEventsRequest()
        for t, iid in enumerate(i for i, (g, _) in sorted(cls.items.items()) if g == 2):
            if t < 5:
                ev.events.add(user_id="u7", item_id=str(iid), timestamp_ms=1000 + t)
        for stub in (cls.h, cls.r):
            assert stub.UpsertItems(up, timeout=30).upserted == len(cls.items)
            assert stub.AppendEvents(ev, timeout=30).appended == 5

    @classmethod
    def tearDownClass(cls):
        for c in cls.chans:
            c.close()
        cls.router.stop()
        cls.slow.stop()
        if cls.holder.proc.poll() is None:
            cls.holder.stop()
        cls.stuck.close()
        cls.tmp.cleanup()

    def retrieve(self, stub, vec, k, names=(), timeout=30):
        return stub.Retrieve(self.pb.RetrieveRequest(query_vector=vec, k=k, debug=True,
                                                     retrievers=list(names)), timeout=timeout)

    def queries(self):
        """Unit vectors near each group, between two groups, and others."""
        qs = []
        for g in range(world.GROUPS):
            v = [0.0] * world.D
            v[2 * g], v[2 * g + 1] = 1.0, 0.5
            qs.append(world._unit(v))
            w = list(v)
            w[(2 * g + 2) % world.D] = 0.9   # halfway to the next group
            qs.append(world._unit(w))
        qs.append(world._unit([1.0] * world.D))
        qs.append(world._unit([(-1.0) ** j * (j + 1) for j in range(world.D)]))
        return qs

    def same(self, a, b):
        self.assertEqual([i.item_id for i in a.items], [i.item_id for i in b.items])
        for x, y in zip(a.items, b.items):
            self.assertEqual(x.retrieval_score, y.retrieval_score)
            self.assertEqual(x.expert_score, y.expert_score)
            self.assertEqual(list(x.retrievers), list(y.retrievers))
        ra = {r.retriever: r for r in a.debug.routes}
        rb = {r.retriever: r for r in b.debug.routes}
        self.assertEqual(sorted(ra), sorted(rb))
        for n in ra:
            self.assertEqual(ra[n].weight, rb[n].weight, n)
            self.assertEqual(ra[n].budget, rb[n].budget, n)
            self.assertEqual(ra[n].returned, rb[n].returned, n)
            self.assertEqual(rb[n].error, "", n)

    def test_a_same_candidates_as_all_local(self):
        remote_served = 0
        for q in self.queries():
            for k in (5, 20, 60, 130):   # 60 and 130: more than the routed experts hold
                a = self.retrieve(self.h, q, k)
                b = self.retrieve(self.r, q, k)
                self.assertGreater(len(a.items), 0)
                self.same(a, b)
                remote_served += sum(1 for i in b.items if set(i.retrievers) & set(REMOTE))
        self.assertGreater(remote_served, 0)   # the remote experts did answer
        # named experts, local and remote mixed
        q = self.queries()[4]
        self.same(self.retrieve(self.h, q, 25, ("group_1", "group_2")),
                  self.retrieve(self.r, q, 25, ("group_1", "group_2")))

    def recommend(self, stub, k=10):
        return stub.Recommend(self.pb.RecommendRequest(user_id="u7", k=k, retrieve_k=40,
                                                       debug=True), timeout=30)

    def test_a_recommend_same_as_all_local(self):
        a, b = self.recommend(self.h), self.recommend(self.r)
        self.assertEqual(len(a.items), 10)
        self.assertEqual([(i.item_id, i.score) for i in a.items],
                         [(i.item_id, i.score) for i in b.items])
        routes = {r.retriever: r for r in b.debug.routes}
        self.assertGreater(routes["group_2"].returned, 0)   # the user's group: remote
        self.assertEqual(routes["group_2"].error, "")

    def test_b_model_info_and_metrics(self):
        self.retrieve(self.r, self.queries()[4], 20)
        info = self.r.GetModelInfo(self.pb.GetModelInfoRequest(), timeout=30)
        kinds = {x.name: x for x in info.retrievers}
        for n in REMOTE:
            self.assertEqual(kinds[n].kind, "remote")
            self.assertEqual(kinds[n].index, self.holder.target)
            self.assertEqual(kinds[n].dim, world.D)
            self.assertEqual(kinds[n].size, world.PER_GROUP)   # learned from the holder
        self.assertEqual(kinds["group_0"].kind, "faiss")
        text = metrics(self.router.metrics_port)
        for n in REMOTE:
            lab = 'retriever="%s",address="%s"' % (n, self.holder.target)
            self.assertGreater(metric(text, "moerec_remote_expert_calls_total{%s}" % lab), 0)
            self.assertGreater(metric(text, "moerec_remote_expert_latency_microseconds_count{%s}"
                                      % lab), 0)
            self.assertEqual(metric(text, "moerec_remote_expert_errors_total{%s" % lab), 0)

    def test_c_slow_remote_gives_its_budget_away(self):
        q = self.queries()[6]   # group 3's centre: group_3 is routed
        local = self.retrieve(self.h, q, 20)
        self.assertGreater({r.retriever: r.budget for r in local.debug.routes}["group_3"], 0)
        local_others = sum(r.budget for r in local.debug.routes if r.retriever != "group_3")
        for timeout, bound in ((30, 3.0), (4.0, 2.0)):   # the cap, then half the caller's time
            t0 = time.monotonic()
            b = self.retrieve(self.s, q, 20, timeout=timeout)
            took = time.monotonic() - t0
            self.assertLess(took, timeout)
            self.assertGreaterEqual(took, bound * 0.9)
            routes = {r.retriever: r for r in b.debug.routes}
            self.assertIn("DEADLINE_EXCEEDED", routes["group_3"].error)
            self.assertIn("group_3", routes["group_3"].error)
            self.assertEqual(len(b.items), 20)
            self.assertFalse(any("group_3" in i.retrievers for i in b.items))
            # the budget moved: what the others were asked grew by what
            # group_3 could not give (k less the items in hand)
            others = sum(r.budget for n, r in routes.items() if n != "group_3")
            self.assertGreater(others, local_others)
            self.assertGreaterEqual(others, routes["group_3"].budget)
        # both remote experts stuck: their calls wait out one deadline
        # together, not one after the other (3 s, not 6 s)
        t0 = time.monotonic()
        b = self.retrieve(self.s, q, 20, ("group_0",) + REMOTE)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 3.0 * 0.9)
        self.assertLess(took, 1.5 * 3.0)
        routes = {r.retriever: r for r in b.debug.routes}
        for n in REMOTE:
            self.assertIn("DEADLINE_EXCEEDED", routes[n].error)
        self.assertEqual(len(b.items), 20)   # group_0 took their budget
        self.assertTrue(all(list(i.retrievers) == ["group_0"] for i in b.items))
        text = metrics(self.slow.metrics_port)
        self.assertGreaterEqual(metric(text, 'moerec_remote_expert_errors_total{retriever="group_3"'
                                       ',address="127.0.0.1:%d",reason="deadline"}'
                                       % self.stuck.getsockname()[1]), 2)

    def test_d_holder_killed(self):
        self.holder.proc.send_signal(signal.SIGKILL)
        self.holder.proc.wait(timeout=30)
        self.holder.proc.stdout.close()
        failed = 0
        for q in self.queries():
            for k in (10, 40):
                b = self.retrieve(self.r, q, k)
                self.assertEqual(len(b.items), k)   # local experts + fallback hold enough
                routes = {r.retriever: r for r in b.debug.routes}
                for i in b.items:
                    self.assertFalse(set(i.retrievers) & set(REMOTE), i)
                for n in REMOTE:
                    if routes[n].budget:
                        failed += 1
                        self.assertIn("UNAVAILABLE", routes[n].error)
                        self.assertEqual(routes[n].returned, 0)
                        others = sum(r.budget for m, r in routes.items() if m != n)
                        self.assertGreaterEqual(others, k - routes[n].budget)
                    else:
                        self.assertEqual(routes[n].error, "")
        self.assertGreater(failed, 0)
        text = metrics(self.router.metrics_port)
        self.assertGreater(metric(text, 'moerec_remote_expert_errors_total{retriever="group_2",'
                                  'address="%s",reason="unavailable"}' % self.holder.target), 0)
        # Recommend answers from the others, its debug names the dead expert
        b = self.recommend(self.r)
        self.assertEqual(len(b.items), 10)
        routes = {r.retriever: r for r in b.debug.routes}
        self.assertIn("UNAVAILABLE", routes["group_2"].error)
        self.assertEqual(routes["group_2"].returned, 0)
        # GetModelInfo still lists the experts
        info = self.r.GetModelInfo(self.pb.GetModelInfoRequest(), timeout=30)
        self.assertEqual({x.name for x in info.retrievers} & set(REMOTE), set(REMOTE))

    def test_e_holder_back(self):
        """A holder restarted on its port: the router's channel reconnects by
        itself and answers as before."""
        import subprocess
        port = self.holder.target.rsplit(":", 1)[1]
        cfg = os.path.join(self.tmp.name, "moerec-holder.json")
        back = subprocess.Popen([ARGS.bin, "serve", "--port", port, "--drain-grace", "0",
                                 "--config", cfg], stdout=subprocess.PIPE, text=True)
        try:
            self.assertTrue(back.stdout.readline().startswith("listening on "))
            q = self.queries()[4]   # group 2's centre
            until = time.monotonic() + 30
            while True:
                b = self.retrieve(self.r, q, 20)
                if not any(r.error for r in b.debug.routes) or time.monotonic() > until:
                    break
                time.sleep(0.2)
            self.assertEqual([r.error for r in b.debug.routes if r.error], [])
            # the restarted holder's popularity counts are those of its saved
            # file (AppendEvents is not replayed), the router's took the
            # events live: compare without the fallback
            names = ("group_1", "group_2", "group_3")
            with self.grpc.insecure_channel(self.holder.target) as ch:
                import moerec_pb2_grpc as pbg
                self.same(self.retrieve(pbg.RecommenderStub(ch), q, 20, names),
                          self.retrieve(self.r, q, 20, names))
        finally:
            back.send_signal(signal.SIGTERM)
            self.assertEqual(back.wait(timeout=60), 0)
            back.stdout.close()


class RemoteTlsTest(unittest.TestCase):
    """Remote experts over mutual TLS with a bearer token: the holder
    requires a client certificate from its CA and a token; a router with
    remote_tls, the CA, a client certificate and remote_token_file gets
    the remote expert's items; one without the token sees
    UNAUTHENTICATED, one without a client certificate UNAVAILABLE, in the
    expert's debug route, and both still answer from the local experts."""

    @classmethod
    def setUpClass(cls):
        import grpc
        import moerec_pb2 as pb
        import moerec_pb2_grpc as pbg
        from test_tls import make_ca, make_cert
        cls.grpc, cls.pb, cls.pbg = grpc, pb, pbg
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.d = cls.tmp.name
        world.build(ARGS.bin, d)
        make_ca(d, "ca")
        make_cert(d, "holder", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
        make_cert(d, "router", "ca", "extendedKeyUsage=clientAuth")
        token = "remote-token-0123456789abcdef"
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write(token + "\n")
        with open(os.path.join(d, "router.token"), "w") as f:
            f.write(token + "\n")
        p = lambda n: os.path.join(d, n)
        cls.holder = world.Server(ARGS.bin, d, tag="tls-holder", extra_config={
            "tls_cert_file": p("holder.pem"), "tls_key_file": p("holder.key"),
            "tls_client_ca_file": p("ca.pem"), "tls_require_client_cert": True,
            "auth_tokens_file": p("tokens")})
        remote_set(os.path.join(d, "models", "rec", "1"), p("router-models/rec/1"),
                   cls.holder.target, ("group_2",))
        base = {"model_dir": p("router-models"), "remote_deadline_ms": 5000, "remote_tls": True,
                "remote_tls_ca_file": p("ca.pem")}
        cert = {"remote_tls_cert_file": p("router.pem"), "remote_tls_key_file": p("router.key")}
        cls.routers = {}
        try:
            cls.routers["ok"] = world.Server(ARGS.bin, d, tag="tls-ok", extra_config=dict(
                base, remote_token_file=p("router.token"), **cert))
            cls.routers["no_token"] = world.Server(ARGS.bin, d, tag="tls-notoken",
                                                   extra_config=dict(base, **cert))
            cls.routers["no_cert"] = world.Server(ARGS.bin, d, tag="tls-nocert", extra_config=dict(
                base, remote_token_file=p("router.token")))
        except BaseException:   # no server left behind by a failed start
            for s in [cls.holder] + list(cls.routers.values()):
                s.proc.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        for r in cls.routers.values():
            r.stop()
        cls.holder.stop()
        cls.tmp.cleanup()

    def retrieve(self, target, names):
        v = [0.0] * world.D
        v[4], v[5] = 1.0, 0.5   # group 2's centre
        with self.grpc.insecure_channel(target) as ch:
            return self.pbg.RecommenderStub(ch).Retrieve(self.pb.RetrieveRequest(
                query_vector=world._unit(v), k=10, debug=True, retrievers=list(names)), timeout=30)

    def test_tls_token_and_refusals(self):
        b = self.retrieve(self.routers["ok"].target, ("group_2",))
        self.assertEqual(len(b.items), 10)
        self.assertTrue(all(list(i.retrievers) == ["group_2"] for i in b.items))
        self.assertEqual([r.error for r in b.debug.routes if r.error], [])
        for name, why in (("no_token", "UNAUTHENTICATED"), ("no_cert", "UNAVAILABLE")):
            r = self.retrieve(self.routers[name].target, ("group_2", "group_1"))
            routes = {x.retriever: x for x in r.debug.routes}
            self.assertIn(why, routes["group_2"].error, name)
            self.assertEqual(len(r.items), 10, name)   # group_1 took the budget
            self.assertTrue(all(list(i.retrievers) == ["group_1"] for i in r.items), name)


if __name__ == "__main__":
    moerec_testlib.run(globals())
