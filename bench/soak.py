#!/usr/bin/python3
"""soak.py — the driver of bench/soak.sh: mixed traffic at a fixed rate
against the real server for N minutes (Recommend, Score, Retrieve,
AppendEvents, UpsertItems; Admin Reload once a minute), counting errors by
gRPC status, p99 per minute, and the server's RSS and open descriptors
(/proc) at the start and the end. The world (model, retrievers, store) is
tests/integration/reliability_world.py's."""
import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def p99(xs):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=200, help="calls per second, all kinds")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.root, "tests", "integration"))
    sys.path.insert(0, os.path.join(args.root, "scripts"))
    import reliability_world as rw
    import demo_client
    stubs = tempfile.TemporaryDirectory()
    demo_client.load_stubs(os.path.join(args.root, "proto"), stubs.name)
    import grpc
    import moerec_pb2 as pb
    import moerec_pb2_grpc
    d = tempfile.TemporaryDirectory()
    base = rw.build(args.bin, d.name)
    srv = rw.Server(args.bin, d.name, os.path.join(d.name, "db"), {"completion_queues": 2})
    ch = grpc.insecure_channel(srv.target)
    rec = moerec_pb2_grpc.RecommenderStub(ch)
    admin = moerec_pb2_grpc.AdminStub(ch)
    rw.load_base(rec, pb, base)
    users = ["soak-%d" % u for u in range(200)]
    rng0 = random.Random(4)
    for u in users:  # every user has a history before the clock starts
        items = rng0.sample(range(1, rw.BASE_ITEMS + 1), 3)
        rec.AppendEvents(pb.AppendEventsRequest(events=[
            pb.Event(user_id=u, item_id=str(i), timestamp_ms=1000 + j) for j, i in enumerate(items)]),
            timeout=10)

    def call(kind, rng):
        u = rng.choice(users) if rng else None
        if kind == "Recommend":
            rec.Recommend(pb.RecommendRequest(user_id=u, k=10), timeout=10)
        elif kind == "Score":
            c = [pb.Candidate(item_id=str(i)) for i in rng.sample(range(1, rw.BASE_ITEMS + 1), 20)]
            rec.Score(pb.ScoreRequest(user_id=u, candidates=c), timeout=10)
        elif kind == "Retrieve":
            rec.Retrieve(pb.RetrieveRequest(user_id=u, k=20), timeout=10)
        elif kind == "AppendEvents":
            rec.AppendEvents(pb.AppendEventsRequest(events=[pb.Event(
                user_id=u, item_id=str(rng.randint(1, rw.BASE_ITEMS)))]), timeout=10)
        elif kind == "UpsertItems":  # a bounded catalogue of 1000 extra items
            rec.UpsertItems(pb.UpsertItemsRequest(items=[pb.Item(
                item_id=str(5000 + rng.randrange(1000)), embedding=rw.random_unit(rng))]), timeout=10)
        elif kind == "Reload":
            admin.Reload(pb.ReloadRequest(model="rel"), timeout=60)

    mix = ["Recommend"] * 25 + ["Score"] * 25 + ["Retrieve"] * 25 + ["AppendEvents"] * 15 + \
        ["UpsertItems"] * 10
    lock = threading.Lock()
    lat = {}         # minute -> [ms]
    errors = {}      # status name -> count
    calls = [0]
    late = [0]
    minutes = int(round(args.minutes * 60)) / 60.0
    total_s = minutes * 60
    fd0 = rss0 = None
    rss0, fd0 = proc_stats(srv.proc.pid)
    t0 = time.monotonic()
    period = args.workers / args.rate

    def record(kind, start, ok, code=None):
        ms = (time.monotonic() - start) * 1000
        m = int((start - t0) // 60)
        with lock:
            calls[0] += 1
            lat.setdefault(m, []).append(ms)
            if not ok:
                errors[code] = errors.get(code, 0) + 1

    def worker(w):
        rng = random.Random(w)
        k = 0
        while True:
            due = t0 + w * period / args.workers + k * period
            if due - t0 >= total_s:
                return
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.1:
                with lock:
                    late[0] += 1
            kind = rng.choice(mix)
            start = time.monotonic()
            try:
                call(kind, rng)
                record(kind, start, True)
            except grpc.RpcError as e:
                record(kind, start, False, "%s %s" % (kind, e.code().name))
            k += 1

    def reloader():
        n = 1
        while t0 + 60 * n < t0 + total_s:
            time.sleep(max(0, t0 + 60 * n - time.monotonic()))
            start = time.monotonic()
            try:
                call("Reload", None)
                record("Reload", start, True)
            except grpc.RpcError as e:
                record("Reload", start, False, "Reload %s" % e.code().name)
            n += 1

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(args.workers)]
    ts.append(threading.Thread(target=reloader))
    rss_1min = [None]

    def sampler():
        time.sleep(min(60, total_s))
        rss_1min[0] = proc_stats(srv.proc.pid)[0]

    ts.append(threading.Thread(target=sampler, daemon=True))
    for t in ts:
        t.start()
    for t in ts[:-1]:
        t.join()
    elapsed = time.monotonic() - t0
    rss1, fd1 = proc_stats(srv.proc.pid)
    ch.close()
    rc = srv.stop()
    n_err = sum(errors.values())
    out = {"bench": "soak", "minutes": round(elapsed / 60, 2), "rate_per_s": args.rate,
           "calls": calls[0], "errors": n_err, "errors_by_status": errors,
           "late_sends": late[0],
           "rss_start_kb": rss0, "rss_1min_kb": rss_1min[0], "rss_end_kb": rss1,
           "rss_growth": round((rss1 - rss_1min[0]) / rss_1min[0], 4) if rss_1min[0] else None,
           "rss_growth_from_start": round((rss1 - rss0) / rss0, 4),
           "fd_start": fd0, "fd_end": fd1,
           "p99_ms_by_minute": [p99(lat.get(m, [])) for m in range(int(-(-elapsed // 60)))],
           "server_exit": rc,
           "targets": {"errors": 0, "rss_growth_below": 0.05, "fd": "flat"}}
    print(json.dumps(out))
    return 0 if n_err == 0 and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
