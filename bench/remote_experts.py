#!/usr/bin/python3
"""remote_experts — Retrieve latency through a router with remote experts.

A holder serves the four-group test world (tests/integration/
moerec_world.py) with every expert local; a router serves the same set
with group_2 and group_3 of kind "remote" on the holder (127.0.0.1). One
client thread sends --calls Retrieve calls (k = --k) naming group_0 +
group_2 (one remote call) and group_0 + group_2 + group_3 (two remote
calls, which run in parallel) to each server in alternation, and reports
p50/p99 of each, remote over local, and two remote calls over one; then
kills the holder and times the router again (the remote calls fail fast
with UNAVAILABLE and group_0 takes their budget).
Loopback only: a real network adds its round trip to the remote figures.
One JSON line last."""
import argparse
import json
import os
import signal
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
import moerec_testlib  # noqa: E402
import moerec_world as world  # noqa: E402
from test_remote_experts import remote_set  # noqa: E402


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(a, d, pb, pbg, grpc, servers):
    """Start the servers (appended to servers), time the calls; returns
    the latencies."""
    world.build(a.bin, d)
    holder = world.Server(a.bin, d, tag="holder")
    servers.append(holder)
    remote_set(os.path.join(d, "models", "rec", "1"), os.path.join(d, "rm", "rec", "1"),
               holder.target, ("group_2", "group_3"))
    router = world.Server(a.bin, d, tag="router",
                          extra_config={"model_dir": os.path.join(d, "rm")})
    servers.append(router)
    v = [0.0] * world.D
    v[4], v[5], v[6], v[7] = 1.0, 0.5, 1.0, 0.5
    sets = {"one_remote": ["group_0", "group_2"], "two_remote": ["group_0", "group_2", "group_3"]}
    reqs = {n: pb.RetrieveRequest(query_vector=world._unit(v), k=a.k, retrievers=names)
            for n, names in sets.items()}
    stubs_ = {n: pbg.RecommenderStub(grpc.insecure_channel(s.target))
              for n, s in (("local", holder), ("remote", router))}
    for stub in stubs_.values():   # warm up
        for r in reqs.values():
            for _ in range(50):
                stub.Retrieve(r, timeout=10)
    lat = {(s, n): [] for s in stubs_ for n in reqs}
    for i in range(a.calls):
        for n, r in reqs.items():
            for s, stub in stubs_.items():
                t0 = time.perf_counter()
                got = stub.Retrieve(r, timeout=10)
                lat[(s, n)].append((time.perf_counter() - t0) * 1e6)
                assert len(got.items) == a.k
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait()
    down = []
    for i in range(a.calls // 2):
        t0 = time.perf_counter()
        got = stubs_["remote"].Retrieve(reqs["two_remote"], timeout=10)
        down.append((time.perf_counter() - t0) * 1e6)
        assert len(got.items) == a.k   # group_0 took the remote experts' budget
    router.stop()
    return lat, down, sets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--k", type=int, default=20)   # group_0 alone holds 30
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as stubs:
        moerec_testlib.load_stubs(a.proto_dir, stubs)
        import grpc
        import moerec_pb2 as pb
        import moerec_pb2_grpc as pbg
        servers = []
        try:
            lat, down, sets = run(a, d, pb, pbg, grpc, servers)
        finally:   # a failed run leaves no server behind
            for s in servers:
                if s.proc.poll() is None:
                    s.proc.kill()
                    s.proc.wait()
    q = lambda xs: {"p50": round(pct(xs, .5)), "p99": round(pct(xs, .99))}
    p50 = lambda s, n: pct(lat[(s, n)], .5)
    out = {"bench": "remote_experts", "calls": a.calls, "k": a.k, "experts": sets,
           "local_us": {n: q(lat[("local", n)]) for n in sets},
           "remote_us": {n: q(lat[("remote", n)]) for n in sets},
           "holder_down_us": q(down),
           "remote_over_local_p50": {n: round(p50("remote", n) / p50("local", n), 2) for n in sets},
           "two_over_one_remote_p50": round(p50("remote", "two_remote") / p50("remote", "one_remote"), 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
