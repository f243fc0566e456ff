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


def proc_status(pid):
    """VmRSS, RssAnon, RssFile (kB) from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


def proc_stats(pid):
    return proc_status(pid)["VmRSS"], len(os.listdir("/proc/%d/fd" % pid))


def gauges(url):
    """The server's /metrics samples, {name: value}; a labelled family
    (moerec_store_memtable_bytes{family=...}) is summed over its labels."""
    import urllib.request
    out = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if not line or line.startswith("#"):
                continue
            series, _, v = line.rpartition(" ")
            name = series.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(v)
    return out


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
    ap.add_argument("--warmup-minutes", type=float, default=1.0,
                    help="rss_growth compares the minute after this warm-up with the last minute")
    ap.add_argument("--config", default="{}",
                    help="JSON object of server config fields over the soak's own")
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.root, "tests", "integration"))
    import reliability_world as rw
    import moerec_testlib
    stubs = tempfile.TemporaryDirectory()
    moerec_testlib.load_stubs(os.path.join(args.root, "proto"), stubs.name)
    import grpc
    import moerec_pb2 as pb
    import moerec_pb2_grpc
    d = tempfile.TemporaryDirectory()
    base = rw.build(args.bin, d.name)
    # a memtable budget small enough to fill (and flush) within the warm-up
    # at this rate (~9 MB of SDIM rows a minute), so the minutes compared
    # are alike; the default 64 MiB takes ~7 minutes to fill here
    cfg = {"completion_queues": 2, "metrics_port": 0, "store_memtable_bytes": 8 << 20}
    cfg.update(json.loads(args.config))
    srv = rw.Server(args.bin, d.name, os.path.join(d.name, "db"), cfg)
    metrics_url = srv.proc.stdout.readline().strip()[len("metrics on "):]
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
    rss_warm = [None]
    warm_s = min(args.warmup_minutes * 60, total_s)
    samples = []     # [seconds, rss_kb, fds, memtables, block cache, malloc held, malloc in use]
    stop = threading.Event()

    def sampler():
        k = 0
        while not stop.is_set():
            due = t0 + k * args.sample_seconds
            if due - t0 > total_s:
                return
            if stop.wait(max(0, due - time.monotonic())):
                return
            rss, fds = proc_stats(srv.proc.pid)
            st = proc_status(srv.proc.pid)
            g = gauges(metrics_url)
            samples.append([round(time.monotonic() - t0, 1), rss, st["RssAnon"], st["RssFile"],
                            fds] + [
                g.get(n) for n in ("moerec_store_memtable_bytes", "moerec_store_block_cache_bytes",
                                   "moerec_malloc_held_bytes", "moerec_malloc_in_use_bytes",
                                   "moerec_store_cache_bytes")])
            if rss_warm[0] is None and time.monotonic() - t0 >= warm_s:
                rss_warm[0] = rss
            k += 1

    ts.append(threading.Thread(target=sampler, daemon=True))
    for t in ts:
        t.start()
    for t in ts[:-1]:
        t.join()
    elapsed = time.monotonic() - t0
    rss1, fd1 = proc_stats(srv.proc.pid)
    stop.set()
    ch.close()
    rc = srv.stop()
    n_err = sum(errors.values())
    def window_mean(col, lo, hi):
        xs = [r[col] for r in samples if lo <= r[0] < hi]
        return sum(xs) / len(xs) if xs else None

    # like with like: the mean over the minute after the warm-up against the
    # mean over the last minute (memtables fill and flush in a saw-tooth of
    # a few MB; single samples would compare a peak with a trough)
    last_lo = max(warm_s, elapsed - 60)
    growth = {}
    for name, col in (("rss", 1), ("rss_anon", 2), ("rss_file", 3)):
        a, b = window_mean(col, warm_s, warm_s + 60), window_mean(col, last_lo, elapsed + 1)
        growth[name] = (a, b, round((b - a) / a, 4) if a and b is not None else None)
    fds_after = [r[4] for r in samples if r[0] >= warm_s]
    # the same windows with the bounded caches' fill taken out (memtables,
    # block cache, row cache: each stops at its configured size, so their
    # growth in a run too short to fill them is not a leak)
    caches = 0.0
    for col in (5, 6, 9):
        a, b = window_mean(col, warm_s, warm_s + 60), window_mean(col, last_lo, elapsed + 1)
        if a is not None and b is not None:
            caches += (b - a) / 1024.0
    rg = growth["rss"]
    less_caches = round((rg[1] - rg[0] - caches) / rg[0], 4) if rg[0] and rg[1] else None
    out = {"bench": "soak", "minutes": round(elapsed / 60, 2), "rate_per_s": args.rate,
           "calls": calls[0], "errors": n_err, "errors_by_status": errors,
           "late_sends": late[0],
           "warmup_minutes": round(warm_s / 60, 2), "server_config": cfg,
           "rss_start_kb": rss0, "rss_warm_kb": rss_warm[0], "rss_end_kb": rss1,
           "rss_growth": growth["rss"][2],
           "rss_growth_method": "mean RSS of the last minute vs the minute after the warm-up",
           "rss_warm_minute_mean_kb": round(growth["rss"][0] or 0),
           "rss_last_minute_mean_kb": round(growth["rss"][1] or 0),
           "rss_anon_growth": growth["rss_anon"][2], "rss_file_growth": growth["rss_file"][2],
           "rss_growth_less_caches": less_caches,
           "fd_range_after_warmup": [min(fds_after), max(fds_after)] if fds_after else None,
           "rss_growth_from_start": round((rss1 - rss0) / rss0, 4),
           "fd_start": fd0, "fd_end": fd1,
           "p99_ms_by_minute": [p99(lat.get(m, [])) for m in range(int(-(-elapsed // 60)))],
           "server_exit": rc,
           "samples": {"columns": ["s", "rss_kb", "rss_anon_kb", "rss_file_kb", "fds", "memtable_bytes", "block_cache_bytes",
                                   "malloc_held_bytes", "malloc_in_use_bytes", "row_cache_bytes"], "rows": samples},
           "targets": {"errors": 0, "rss_growth_below": 0.05, "fd": "flat"}}
    print(json.dumps(out))
    return 0 if n_err == 0 and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
