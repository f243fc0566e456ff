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
    """VmRSS, RssAnon, RssFile (kB) and Threads from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


def proc_stats(pid):
    return proc_status(pid)["VmRSS"], len(os.listdir("/proc/%d/fd" % pid))


def rss_split(pid, db_dir):
    """Resident kB by kind, from /proc/PID/smaps (one entry per mapping):
    anon (anonymous pages: heap, arenas, thread stacks, and private copies
    of file pages), sst (file pages of the store's SST files, which
    RocksDB reads through mmap: page cache the kernel reclaims under
    pressure, growing with the data stored) and file_other (the binary,
    shared libraries, model and index files). The three add up to Rss."""
    out = {"anon": 0, "sst": 0, "file_other": 0}
    path = ""
    rss = anon = 0

    def flush():
        out["anon"] += anon
        file_kb = rss - anon
        out["sst" if path.startswith(db_dir) and path.endswith(".sst") else "file_other"] += file_kb
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split(None, 1)[0]
            if not head.endswith(":"):  # a mapping's header: addr perms offset dev inode [path]
                flush()
                parts = line.split(None, 5)
                path = parts[5].strip() if len(parts) > 5 else ""
                rss = anon = 0
            elif head == "Rss:":
                rss = int(line.split()[1])
            elif head == "Anonymous:":
                anon = int(line.split()[1])
    flush()
    return out


FD_KINDS = ("socket", "rocksdb_sst", "rocksdb_other", "other", "deleted")


def fd_kinds(pid, db_dir):
    """Open descriptors by kind: socket (gRPC listener and connections,
    metrics, NATS), rocksdb_sst (one per live SST file: RocksDB keeps
    every table file open, max_open_files -1), rocksdb_other (WAL,
    MANIFEST, LOG, LOCK, ... in the data dir), other (pipes, eventfds,
    epoll, /dev, model files) and deleted (a file removed but still open:
    a leaked descriptor, or one held across a compaction's delete)."""
    out = dict.fromkeys(FD_KINDS, 0)
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:  # closed since the listing
            continue
        if t.endswith(" (deleted)"):
            out["deleted"] += 1
        elif t.startswith("socket:"):
            out["socket"] += 1
        elif t.startswith(db_dir):
            out["rocksdb_sst" if t.endswith(".sst") else "rocksdb_other"] += 1
        else:
            out["other"] += 1
    return out


def sst_files(db_dir):
    """SST files in the data dir now (live tables; compaction deletes its inputs)."""
    return sum(1 for n in os.listdir(db_dir) if n.endswith(".sst"))


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
                    help="the shortest warm-up: rss_growth compares the minute after the "
                    "warm-up with the last minute")
    ap.add_argument("--warmup-max-minutes", type=float, default=4.0,
                    help="the longest: the warm-up ends at the first sample after "
                    "--warmup-minutes where the block cache is at its bound (90%%) and the "
                    "memtables have flushed, or at this")
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
    # and a block cache (store_block_cache_bytes) small enough that the
    # blocks read from the growing SST data fill it within the warm-up
    # (in 10 minutes at this rate the default 64 MiB gets ~3 MB)
    cfg = {"completion_queues": 2, "metrics_port": 0, "store_memtable_bytes": 8 << 20,
           "store_block_cache_bytes": 1 << 20}
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
    n_minutes = max(1, int(-(-total_s // 60)))
    t0 = time.monotonic()
    period = args.workers / args.rate

    def record(kind, start, ok, code=None):
        ms = (time.monotonic() - start) * 1000
        # a send that started late, past the end, counts in the last minute
        m = min(int((start - t0) // 60), n_minutes - 1)
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
    db_dir = os.path.realpath(os.path.join(d.name, "db"))
    cols = ["s", "rss_kb", "rss_anon_kb", "rss_file_kb", "rss_sst_kb", "rss_file_other_kb", "fds"] + \
        ["fd_" + k for k in FD_KINDS] + \
        ["sst_files", "memtable_bytes", "block_cache_bytes", "block_cache_capacity_bytes",
         "malloc_held_bytes", "malloc_in_use_bytes", "row_cache_bytes", "table_reader_bytes",
         "sst_bytes", "threads"]
    C = {c: k for k, c in enumerate(cols)}
    samples = []
    stop = threading.Event()

    def sample():
        pid = srv.proc.pid
        rss, fds = proc_stats(pid)
        st, rs, fk = proc_status(pid), rss_split(pid, db_dir), fd_kinds(pid, db_dir)
        g = gauges(metrics_url)
        return [round(time.monotonic() - t0, 1), rss, st["RssAnon"], st["RssFile"], rs["sst"],
                rs["file_other"], fds] + [fk[k] for k in FD_KINDS] + [sst_files(db_dir)] + [
            g.get(n) for n in ("moerec_store_memtable_bytes", "moerec_store_block_cache_bytes",
                               "moerec_store_block_cache_capacity_bytes",
                               "moerec_malloc_held_bytes", "moerec_malloc_in_use_bytes",
                               "moerec_store_cache_bytes", "moerec_store_table_reader_bytes",
                               "moerec_store_sst_bytes")] + [st["Threads"]]

    def sampler():
        k = 0
        while not stop.is_set():
            due = t0 + k * args.sample_seconds
            if due - t0 > total_s:
                return
            if stop.wait(max(0, due - time.monotonic())):
                return
            samples.append(sample())
            k += 1

    first = sample()  # before the first call (t0 is set just before)
    ts.append(threading.Thread(target=sampler, daemon=True))
    for t in ts:
        t.start()
    for t in ts[:-1]:
        t.join()
    elapsed = time.monotonic() - t0
    last = sample()
    rss1, fd1 = last[C["rss_kb"]], last[C["fds"]]
    stop.set()
    ch.close()
    rc = srv.stop()
    n_err = sum(errors.values())
    # the warm-up: at least --warmup-minutes, until the bounded caches are
    # full (block cache at 90% of its bound, memtables flushed once), at
    # most --warmup-max-minutes (warmup_caches_full says which ended it)
    warm_s, warm_full = min(args.warmup_max_minutes * 60, total_s), False
    for r in samples:
        if r[0] >= min(args.warmup_minutes * 60, total_s) and r[C["sst_files"]] > 0 and \
                r[C["block_cache_bytes"]] is not None and \
                r[C["block_cache_bytes"]] >= 0.9 * r[C["block_cache_capacity_bytes"]]:
            warm_s, warm_full = min(r[0], warm_s), r[0] <= warm_s
            break

    def window(col, lo, hi):
        return [r[C[col]] for r in samples if lo <= r[0] < hi and r[C[col]] is not None]

    def window_mean(col, lo, hi):
        xs = window(col, lo, hi)
        return sum(xs) / len(xs) if xs else None

    # like with like: the mean over the minute after the warm-up against the
    # mean over the last minute (memtables fill and flush in a saw-tooth of
    # a few MB; single samples would compare a peak with a trough)
    last_lo = max(warm_s, elapsed - 60)
    growth, means = {}, {}
    for name in ("rss", "rss_anon", "rss_file", "rss_sst", "rss_file_other"):
        a = window_mean(name + "_kb", warm_s, warm_s + 60)
        b = window_mean(name + "_kb", last_lo, elapsed + 1)
        means[name] = [round(a or 0), round(b or 0)]
        growth[name] = round((b - a) / a, 4) if a and b is not None else None
    rg = means["rss"]
    # the same windows with the bounded caches' fill taken out (memtables,
    # block cache, row cache: each stops at its configured size)
    caches = 0.0
    store_growth_kb = {}
    for col in ("memtable_bytes", "block_cache_bytes", "row_cache_bytes", "table_reader_bytes",
                "sst_bytes"):
        a, b = window_mean(col, warm_s, warm_s + 60), window_mean(col, last_lo, elapsed + 1)
        if a is not None and b is not None:
            store_growth_kb[col] = round((b - a) / 1024.0)
            if col in ("memtable_bytes", "block_cache_bytes", "row_cache_bytes"):
                caches += (b - a) / 1024.0
    less_caches = round((rg[1] - rg[0] - caches) / rg[0], 4) if rg[0] else None

    def rng(col, lo=warm_s, hi=elapsed + 1):
        xs = window(col, lo, hi)
        return [min(xs), max(xs)] if xs else None

    fd_kind = lambda row: {k: row[C["fd_" + k]] for k in FD_KINDS}
    n_min = n_minutes
    warm_row = next((r for r in samples if r[0] >= warm_s), last)
    bc = window("block_cache_bytes", warm_s, warm_s + 60)
    cap = warm_row[C["block_cache_capacity_bytes"]]
    out = {"bench": "soak", "minutes": round(elapsed / 60, 2), "rate_per_s": args.rate,
           "calls": calls[0], "errors": n_err, "errors_by_status": errors,
           "late_sends": late[0],
           "warmup_minutes": round(warm_s / 60, 2), "warmup_caches_full": warm_full,
           "server_config": cfg,
           "rss_start_kb": first[C["rss_kb"]], "rss_warm_kb": warm_row[C["rss_kb"]],
           "rss_end_kb": rss1,
           "rss_growth": growth["rss"],
           "rss_growth_method": "mean RSS of the last minute vs the minute after the warm-up",
           "rss_warm_minute_mean_kb": rg[0], "rss_last_minute_mean_kb": rg[1],
           # anonymous memory (the heap: what a leak grows) apart from file
           # pages (SST files read through mmap; binary, libraries, model)
           "rss_anon_growth": growth["rss_anon"], "rss_file_growth": growth["rss_file"],
           "rss_sst_growth": growth["rss_sst"], "rss_file_other_growth": growth["rss_file_other"],
           "rss_mean_kb_warm_vs_last_minute": means,
           "rss_growth_less_caches": less_caches,
           # the same windows' means: the store's memory and its data on disk
           "store_growth_kb": store_growth_kb,
           "block_cache_full_after_warmup": (round(min(bc) / cap, 3) if bc and cap else None),
           "rss_growth_from_start": round((rss1 - first[C["rss_kb"]]) / first[C["rss_kb"]], 4),
           "fd_start": first[C["fds"]], "fd_warm": warm_row[C["fds"]], "fd_end": fd1,
           "fd_range_after_warmup": rng("fds"),
           "fd_by_kind_start": fd_kind(first), "fd_by_kind_warm": fd_kind(warm_row),
           "fd_by_kind_end": fd_kind(last),
           "fd_by_kind_range_after_warmup": {k: rng("fd_" + k) for k in FD_KINDS},
           "threads_start": first[C["threads"]], "threads_range_after_warmup": rng("threads"),
           "threads_end": last[C["threads"]],
           # SST descriptors are one per live SST file: flushes add files,
           # compactions replace them; per minute, to show the band is bounded
           "fd_rocksdb_sst_by_minute": [rng("fd_rocksdb_sst", 60 * m, 60 * (m + 1))
                                        for m in range(n_min)],
           "sst_files_by_minute": [rng("sst_files", 60 * m, 60 * (m + 1)) for m in range(n_min)],
           # samples where the SST descriptors were exactly the live SST files
           "sst_fds_equal_sst_files": "%d of %d samples" % (
               sum(1 for r in samples if r[C["fd_rocksdb_sst"]] == r[C["sst_files"]]), len(samples)),
           "p99_ms_by_minute": [p99(lat.get(m, [])) for m in range(n_min)],
           "server_exit": rc,
           "samples": {"columns": cols, "rows": samples},
           "targets": {"errors": 0, "rss_growth_below": 0.05, "fd": "flat"}}
    print(json.dumps(out))
    return 0 if n_err == 0 and rc == 0 else 1

if __name__ == "__main__":
    sys.exit(main())
