#!/usr/bin/python3
"""replicas — writes through a 3-node JetStream log into 3 replicas vs direct local writes.

Starts a 3-node NATS JetStream cluster (Debian's nats-server) and three
`moerec serve` replicas on loopback, all serving the demo model. Writer
threads send --writes writes (UpsertItems of one new item with a vector,
or AppendEvents of one event, half each, every write unique) through
random live replicas; one reader thread per replica sends Score calls the
whole time. At 30% of the writes replica 2 is killed with SIGKILL; at 60%
it is restarted on its data directory and catches up from the log.

Measured:
- convergence: for every write whose time from ack to visible everywhere
  does not overlap replica 2's outage (kill to caught up), the time from its ack (as the writer saw it) to the moment the
  last replica had applied its sequence, seen by one poller thread per
  replica calling Admin/Stats every --poll-ms (so the figures carry up to
  one poll interval of error; 0 when a replica applied it before the
  writer saw the ack);
- writes acked, write throughput through the log, and the same writers
  against one server with no log (local writes) in the same run;
- Score calls answered per second per replica while the writes flow
  (replica 2: over the time it was up);
- CPU per replica (utime + stime from /proc over the write phase, in
  cores), of the NATS nodes together and of this client (Python: writer,
  reader and poller threads share one interpreter), and the 1-minute load
  average at the end of the write phase (the machine may be shared);
- `head_sequence`: records in the log. Every write carries a request_id
  (unless --no-request-id), so a write whose answer was lost (its replica
  killed mid-call) and was retried on another replica is de-duplicated by
  the log: head_sequence = writes. Without request_ids it can be above
  `writes` (`retries` counts every retry);
- at the end: every replica at the last acked sequence, Admin/Stats
  digest of each store (equal = same rows), `lost` = acked sequences some
  replica never applied, `applied_twice` = records a replica process
  applied beyond the sequences it advanced over (log_applied_records +
  log_rejected vs log_applied_sequence, from each process's first Stats).
Prints one JSON line last. Used by bench/run replicas (bench/replicas.sh).
"""
import argparse
import bisect
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from nats_cluster import NatsCluster, start_replica  # noqa: E402
import moerec_testlib  # noqa: E402
from overload import pct  # noqa: E402  (bench/overload.py)

TICK = os.sysconf("SC_CLK_TCK")
ITEM_DIM = 8


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


class Fleet:
    """The servers of one phase: addresses, channels and processes, swapped
    under a lock when a replica is killed or restarted."""

    def __init__(self, grpc, pbg):
        self.grpc, self.pbg = grpc, pbg
        self.lock = threading.Lock()
        self.procs, self.chans, self.alive = [], [], []
        self.cpu_dead = []  # CPU seconds of killed processes, per slot

    def add(self, proc, addr):
        with self.lock:
            self.procs.append(proc)
            self.chans.append(self.grpc.insecure_channel(addr))
            self.alive.append(True)
            self.cpu_dead.append(0.0)

    def set(self, i, proc, addr):
        with self.lock:
            self.procs[i] = proc
            self.chans[i] = self.grpc.insecure_channel(addr)
            self.alive[i] = True

    def kill(self, i, t0_cpu):
        with self.lock:
            self.alive[i] = False
            p, ch = self.procs[i], self.chans[i]
        self.cpu_dead[i] += cpu_s(p.pid) - t0_cpu.get(p.pid, 0.0)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        ch.close()

    def pick(self, rnd):
        with self.lock:
            live = [i for i, a in enumerate(self.alive) if a]
            i = rnd.choice(live)
            return i, self.chans[i]

    def chan(self, i):
        with self.lock:
            return self.chans[i] if self.alive[i] else None

    def stop(self):
        for p, ch, a in zip(self.procs, self.chans, self.alive):
            if a:
                ch.close()
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
                p.stdout.close()


def make_write(pb, k, with_id):
    """Write number k: unique item w<k> or a unique event of user u<k%97>;
    with_id: request_id "w<k>", so a retry is de-duplicated by the log."""
    rid = "w%d" % k if with_id else ""
    if k % 2 == 0:
        v = [((k * 31 + j * 7) % 101) / 101.0 + 0.01 for j in range(ITEM_DIM)]
        return "UpsertItems", pb.UpsertItemsRequest(request_id=rid, items=[pb.Item(
            item_id="w%d" % k, embedding=v)])
    return "AppendEvents", pb.AppendEventsRequest(request_id=rid, events=[pb.Event(
        user_id="u%d" % (k % 97), item_id="w%d" % (k - 1), timestamp_ms=1_700_000_000_000 + k,
        action="click")])


class Writers:
    """--writers threads sending writes 0..n-1 (a shared counter) through
    random live servers; UNAVAILABLE (a killed replica, a log election) is
    retried on another one. on_count(done) is called after each ack."""

    def __init__(self, fleet, pb, n, threads, on_count=None, with_id=True):
        self.fleet, self.pb, self.n, self.with_id = fleet, pb, n, with_id
        self.next, self.done, self.retries, self.failed = 0, 0, 0, 0
        self.acks = []  # (ack time, sequence)
        self.lock = threading.Lock()
        self.on_count = on_count
        self.threads = [threading.Thread(target=self.run, args=(s,)) for s in range(threads)]

    def run(self, seed):
        rnd = random.Random(seed)
        grpc = self.fleet.grpc
        while True:
            with self.lock:
                k = self.next
                self.next += 1
            if k >= self.n:
                return
            method, req = make_write(self.pb, k, self.with_id)
            for attempt in range(100):
                i, ch = self.fleet.pick(rnd)
                try:
                    r = getattr(self.fleet.pbg.RecommenderStub(ch), method)(req, timeout=20)
                    t = time.time()
                    break
                except grpc.RpcError as e:
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        raise
                    with self.lock:
                        self.retries += 1
                    time.sleep(0.05)
            else:
                with self.lock:
                    self.failed += 1
                continue
            with self.lock:
                self.acks.append((t, r.log_sequence))
                self.done += 1
                done = self.done
            if self.on_count:
                self.on_count(done)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        for t in self.threads:
            t.join()


class Reader(threading.Thread):
    """Score calls on server i until stopped; counts answers and errors."""

    def __init__(self, fleet, i, req):
        super().__init__(daemon=True)
        self.fleet, self.i, self.req = fleet, i, req
        self.ok, self.errors, self.stopped = 0, 0, False

    def run(self):
        while not self.stopped:
            ch = self.fleet.chan(self.i)
            if ch is None:
                time.sleep(0.01)
                continue
            try:
                self.fleet.pbg.RecommenderStub(ch).Score(self.req, timeout=10)
                self.ok += 1
            except self.fleet.grpc.RpcError:
                self.errors += 1
                time.sleep(0.01)


class Poller(threading.Thread):
    """Admin/Stats of replica i every poll_s: (time, applied sequence)."""

    def __init__(self, fleet, pb, i, poll_s):
        super().__init__(daemon=True)
        self.fleet, self.pb, self.i, self.poll_s = fleet, pb, i, poll_s
        self.t, self.seq, self.stopped = [], [], False

    def run(self):
        while not self.stopped:
            ch = self.fleet.chan(self.i)
            if ch is not None:
                try:
                    s = self.fleet.pbg.AdminStub(ch).Stats(self.pb.StatsRequest(), timeout=5)
                    now = time.time()
                    if not self.seq or s.log_applied_sequence >= self.seq[-1]:
                        self.t.append(now)
                        self.seq.append(s.log_applied_sequence)
                except self.fleet.grpc.RpcError:
                    pass
            time.sleep(self.poll_s)

    def visible_at(self, seq):
        j = bisect.bisect_left(self.seq, seq)
        return self.t[j] if j < len(self.seq) else None


def stats(fleet, pb, i, digest=False):
    return fleet.pbg.AdminStub(fleet.chan(i)).Stats(pb.StatsRequest(digest=digest), timeout=120)


def local_phase(a, grpc, pb, pbg, d, models, score_req):
    """The same writers against one server with no log: direct local writes."""
    fleet = Fleet(grpc, pbg)
    cfg = {"data_dir": os.path.join(d, "local"), "item_dim": ITEM_DIM, "model_dir": models,
           "log_level": "warn"}
    path = os.path.join(d, "local.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    import subprocess
    p = subprocess.Popen([a.bin, "serve", "--port", "0", "--drain-grace", "0", "--config", path],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    assert line.startswith("listening on "), line
    fleet.add(p, line[len("listening on "):])
    reader = Reader(fleet, 0, score_req)
    reader.start()
    w = Writers(fleet, pb, a.local_writes, a.writers, with_id=not a.no_request_id)
    c0, t0 = cpu_s(p.pid), time.time()
    w.start()
    w.join()
    wall = time.time() - t0
    cpu = (cpu_s(p.pid) - c0) / wall
    reader.stopped = True
    reader.join()
    fleet.stop()
    return {"writes": w.done, "wall_s": wall, "per_s": w.done / wall, "cpu_cores": cpu,
            "reads_per_s": reader.ok / wall, "failed": w.failed}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--writes", type=int, default=10000, help="writes through the log (10000)")
    ap.add_argument("--local-writes", type=int, default=0,
                    help="writes to the server with no log (default: --writes)")
    ap.add_argument("--writers", type=int, default=4, help="writer threads (4)")
    ap.add_argument("--poll-ms", type=float, default=2.0, help="Admin/Stats poll interval (2)")
    ap.add_argument("--no-kill", action="store_true", help="no kill -9 / restart of replica 2")
    ap.add_argument("--no-request-id", action="store_true",
                    help="writes without request_id (a retry after a lost answer is a new record)")
    a = ap.parse_args()
    a.local_writes = a.local_writes or a.writes
    if not shutil.which("nats-server"):
        sys.exit("replicas: nats-server not installed (scripts/install-deps.sh --bench)")
    work = tempfile.TemporaryDirectory()
    d = work.name
    moerec_testlib.load_stubs(a.proto_dir, d)
    import grpc
    import moerec_pb2 as pb
    import moerec_pb2_grpc as pbg
    models = moerec_testlib.demo_model(a.bin, d)
    score_req = moerec_testlib.demo_score_request(pb, d)

    local = local_phase(a, grpc, pb, pbg, d, models, score_req)
    print("local: %d writes in %.1f s (%.0f/s)" % (local["writes"], local["wall_s"], local["per_s"]),
          file=sys.stderr)

    nats = NatsCluster(d, name="moerec-bench")
    extra = {"item_dim": ITEM_DIM, "model_dir": models}
    fleet = Fleet(grpc, pbg)
    for i in range(3):
        fleet.add(*start_replica(a.bin, d, i, nats.servers, extra=extra))
    first = [stats(fleet, pb, i) for i in range(3)]  # per process: (records, rejected, seq)
    base = {fleet.procs[i].pid: (s.log_applied_records, s.log_rejected, s.log_applied_sequence)
            for i, s in enumerate(first)}
    pollers = [Poller(fleet, pb, i, a.poll_ms / 1000.0) for i in range(3)]
    readers = [Reader(fleet, i, score_req) for i in range(3)]
    for t in pollers + readers:
        t.start()
    events = {}  # "kill", "restart": time
    cpu0 = {p.pid: cpu_s(p.pid) for p in fleet.procs}
    cpu0.update({p.pid: cpu_s(p.pid) for p in nats.procs})
    kill_at, restart_at = int(a.writes * 0.3), int(a.writes * 0.6)
    todo = threading.Event()
    action = []

    def on_count(done):
        if a.no_kill:
            return
        if done == kill_at or done == restart_at:
            action.append(done)
            todo.set()

    w = Writers(fleet, pb, a.writes, a.writers, on_count, with_id=not a.no_request_id)
    me0 = os.times()
    t0 = time.time()
    w.start()
    # kills and restarts happen on this thread, not in a writer
    while any(t.is_alive() for t in w.threads):
        if todo.wait(0.05):
            todo.clear()
            while action:
                n = action.pop(0)
                if n == kill_at:
                    events["kill"] = time.time()
                    fleet.kill(2, cpu0)
                else:
                    events["restart"] = time.time()
                    p, addr = start_replica(a.bin, d, 2, nats.servers, extra=extra)
                    cpu0[p.pid] = cpu_s(p.pid)
                    fleet.set(2, p, addr)
                    s = stats(fleet, pb, 2)
                    base[p.pid] = (s.log_applied_records, s.log_rejected, s.log_applied_sequence)
    w.join()
    wall = time.time() - t0
    me1 = os.times()
    client_cpu = (me1.user + me1.system - me0.user - me0.system) / wall
    load = os.getloadavg()[0]
    cpu = [(fleet.cpu_dead[i] + cpu_s(p.pid) - cpu0.get(p.pid, 0.0)) / wall
           for i, p in enumerate(fleet.procs)]
    nats_cpu = sum(cpu_s(p.pid) - cpu0.get(p.pid, 0.0) for p in nats.procs) / wall
    down = events["restart"] - events["kill"] if "restart" in events else 0.0
    reads = [r.ok / (wall - (down if i == 2 else 0.0)) for i, r in enumerate(readers)]
    read_errors = [r.errors for r in readers]
    for r in readers:
        r.stopped = True
    head = max(s for _, s in w.acks)
    until = time.time() + 300
    while min(p.seq[-1] if p.seq else 0 for p in pollers) < head and time.time() < until:
        time.sleep(0.05)
    for p in pollers:
        p.stopped = True
        p.join()
    catch_up = None
    if "restart" in events:
        before = [s for t_, s in w.acks if t_ <= events["restart"]]
        t = pollers[2].visible_at(max(before)) if before else None
        catch_up = (t - events["restart"]) if t else None

    # convergence over writes acked while all three were serving
    lat = []
    lo = events.get("kill", float("inf"))
    hi = events["restart"] + catch_up if catch_up is not None else float("inf")
    for t, seq in w.acks:
        vis = [p.visible_at(seq) for p in pollers]
        if None in vis or (t <= hi and max(vis) >= lo):  # [ack, visible] overlaps the outage
            continue
        lat.append(max(0.0, max(vis) - t) * 1000.0)
    final = [stats(fleet, pb, i, digest=True) for i in range(3)]
    digests = {(s.store_digest, s.store_rows) for s in final}
    acked = sorted(s for _, s in w.acks)
    lost = sum(1 for s in acked for f in final if s > f.log_applied_sequence)
    twice = 0
    for i, s in enumerate(final):
        r0, j0, q0 = base[fleet.procs[i].pid]
        twice += max(0, (s.log_applied_records - r0) + (s.log_rejected - j0) -
                     (s.log_applied_sequence - q0))
    fleet.stop()
    nats.stop()
    out = {
        "bench": "replicas", "replicas": 3, "nats_nodes": 3, "stream_replicas": 3,
        "writers": a.writers, "writes": w.done, "write_failed": w.failed, "retries": w.retries,
        "distinct_sequences": len(set(acked)), "head_sequence": head,
        "convergence_ms": {"p50": round(pct(lat, 0.5), 2), "p99": round(pct(lat, 0.99), 2),
                           "max": round(max(lat) if lat else 0.0, 2), "n": len(lat)},
        "poll_ms": a.poll_ms,
        "kill9": not a.no_kill, "request_ids": not a.no_request_id,
        "catch_up_s": round(catch_up, 3) if catch_up is not None else None,
        "lost": lost, "applied_twice": twice, "digests_equal": len(digests) == 1,
        "store_rows": final[0].store_rows,
        "log_write_per_s": round(w.done / wall, 1), "local_write_per_s": round(local["per_s"], 1),
        "log_vs_local": round((w.done / wall) / local["per_s"], 3) if local["per_s"] else None,
        "write_phase_s": round(wall, 2), "local_phase_s": round(local["wall_s"], 2),
        "read_qps": [round(x, 1) for x in reads], "read_errors": read_errors,
        "local_read_qps": round(local["reads_per_s"], 1),
        "cpu_cores": [round(x, 3) for x in cpu], "nats_cpu_cores": round(nats_cpu, 3),
        "local_cpu_cores": round(local["cpu_cores"], 3), "client_cpu_cores": round(client_cpu, 3),
        "machine_cores": os.cpu_count(), "loadavg_1m": round(load, 2),
    }
    work.cleanup()
    print(json.dumps(out))
    ok = out["digests_equal"] and lost == 0 and twice == 0 and w.failed == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
