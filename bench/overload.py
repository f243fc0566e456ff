#!/usr/bin/python3
"""overload — Score at twice the server's capacity, with and without max_inflight_calls.

Drives the real `moerec serve` (a demo model) with Debian's python3-grpcio:
first a closed loop measures the capacity C (answered calls/s), then an open
loop sends Score at RATE x C for --seconds, once against a server with
`max_inflight_calls` = --bound and once against one without a bound (0).
The capacity is measured once, on the first server; both get the same
offered load. Each server has one worker thread (its capacity is one core).
Per run: the offered rate reached, accepted calls and their p50/p99 latency (send to answer, as the
client sees it), refused calls (RESOURCE_EXHAUSTED) and their p99, other
errors, the server's RSS before and at its largest during the load, and the
refusals /metrics counted. Used by bench/run overload (prints one JSON line
last) and by tests/integration/test_overload.py (calls run()).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Server:
    def __init__(self, binary, models, bound, work):
        cfg = os.path.join(work, "overload-%d.json" % bound)
        with open(cfg, "w") as f:
            # one worker thread: the server's capacity is one core, the
            # client has the other (on a 2-core machine it would otherwise
            # be starved and never reach twice the capacity)
            json.dump({"max_inflight_calls": bound, "completion_queues": 1}, f)
        # in an ASan build, a small quarantine so RSS shows live memory
        # rather than freed blocks ASan holds back (no effect otherwise)
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=16") if x)
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", "--drain-grace", "0",
                                      "--metrics-port", "0", "--log-level", "warn",
                                      "--model-dir", models, "--config", cfg],
                                     stdout=subprocess.PIPE, text=True, env=env)
        self.target = self.proc.stdout.readline().strip()[len("listening on "):]
        self.metrics = self.proc.stdout.readline().strip()[len("metrics on "):]

    def counter(self, name):
        with urllib.request.urlopen(self.metrics, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.proc.stdout.close()
        return rc


class Raw:
    """Score with bytes in and out (no protobuf work in the client)."""
    def __init__(self, ch):
        self.Score = ch.unary_unary("/moerec.v1.Recommender/Score", request_serializer=None,
                                    response_deserializer=None)


def capacity(grpc, stub, req, seconds, threads=8):
    """Answered Score calls per second with `threads` callers in a closed loop."""
    n = [0] * threads
    stop = time.time() + seconds

    def loop(i):
        while time.time() < stop:
            try:
                stub.Score(req, timeout=30)
                n[i] += 1
            except grpc.RpcError:
                pass
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(n) / seconds


def open_loop(grpc, stub, req, rate, seconds, pid):
    """Send at `rate` calls/s for `seconds` whatever the answers; wait for all."""
    done, lock = [], threading.Lock()
    left = threading.Semaphore(0)
    peak = [rss_kib(pid)]
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], rss_kib(pid))
    sampler = threading.Thread(target=sample)
    sampler.start()
    n = int(rate * seconds)
    t_start = time.time()
    sent_by = [t_start]
    for i in range(n):
        t_due = t_start + i / rate
        delay = t_due - time.time()
        if delay > 0:
            time.sleep(delay)
        t0 = time.time()
        f = stub.Score.future(req, timeout=60)

        def cb(fut, t0=t0):
            t1 = time.time()
            try:
                fut.result()
                code, msg = "OK", ""
            except grpc.RpcError as e:
                code, msg = e.code().name, e.details()
            with lock:
                done.append((t0, t1, code, msg))
            left.release()
        f.add_done_callback(cb)
    sent_by[0] = time.time()
    for _ in range(n):
        left.acquire()
    sampling.set()
    sampler.join()
    return done, peak[0], sent_by[0] - t_start


def served_per_s(done, t_start):
    """Answered calls per second over the open loop (first send to last
    answer): the server's capacity when the offered load exceeds it."""
    ok = [t1 for _, t1, c, _ in done if c == "OK"]
    return len(ok) / max(max(ok) - t_start, 1e-6) if ok else 0.0


def run(binary, proto_dir, work, seconds=3.0, rate=2.0, bound=8, candidates=1000,
        calibrate=1.5, attempts=3):
    """Both runs; returns a dict of figures (see the module docstring).

    The capacity comes from a short closed loop; on a loaded machine (or
    under a sanitizer) it can come out low, and then "RATE x capacity" is
    no overload at all. So the unbounded run checks it: unless the server
    answered at under 1/1.3 of the offered rate (its queue grew), the
    capacity is taken as what it did answer and both runs are made again
    (at most `attempts` times; "calibrations" lists each estimate)."""
    import moerec_pb2 as pb
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "integration"))
    import moerec_testlib as lib
    models = lib.demo_model(binary, work, users=20, items=200, rows=2000)
    # serialized once and sent as bytes: python protobuf would otherwise
    # spend longer packing 1000 candidates than the server takes to rank them
    req = lib.demo_score_request(pb, work, candidates=candidates).SerializeToString()
    out, cap, tries = None, None, []
    for _ in range(attempts):
        out, served = run_once(binary, work, models, req, seconds, rate, bound, calibrate, cap)
        out["candidates"] = candidates
        tries.append({"capacity_per_s": out["unbounded"]["capacity_per_s"],
                      "served_per_s": round(served, 1)})
        cap = out["unbounded"]["capacity_per_s"]
        if out["unbounded"]["offered_per_s"] >= 1.3 * served:
            break  # offered well above what the server could answer: overloaded
        cap = max(cap, served)  # the estimate was low: offer RATE x what it served
    out["calibrations"] = tries
    out["overloaded"] = out["unbounded"]["offered_per_s"] >= 1.3 * tries[-1]["served_per_s"]
    return out


def run_once(binary, work, models, req, seconds, rate, bound, calibrate, cap):
    """One unbounded and one bounded run at RATE x cap (cap None: measured
    here first); returns (figures, the unbounded server's served_per_s)."""
    import grpc
    out = {"seconds": seconds, "rate_x_capacity": rate, "bound": bound}
    served = 0.0
    for name, b in (("unbounded", 0), ("bounded", bound)):
        srv = Server(binary, models, b, work)
        try:
            ch = grpc.insecure_channel(srv.target)
            stub = Raw(ch)
            if cap is None:  # the same offered load for both runs
                cap = capacity(grpc, stub, req, calibrate)
            else:
                capacity(grpc, stub, req, 0.3)  # warm up as the first run did
            rss0 = rss_kib(srv.proc.pid)
            t_start = time.time()
            done, peak, wall = open_loop(grpc, stub, req, rate * cap, seconds, srv.proc.pid)
            if name == "unbounded":
                served = served_per_s(done, t_start)
            rss1 = rss_kib(srv.proc.pid)
            ok = [t1 - t0 for t0, t1, c, _ in done if c == "OK"]
            refused = [t1 - t0 for t0, t1, c, _ in done if c == "RESOURCE_EXHAUSTED"]
            other = {}
            for _, _, c, _ in done:
                if c not in ("OK", "RESOURCE_EXHAUSTED"):
                    other[c] = other.get(c, 0) + 1
            msgs = sorted({m for _, _, c, m in done if c == "RESOURCE_EXHAUSTED"})[:1]
            out[name] = {
                "capacity_per_s": round(cap, 1), "sent": len(done),
                "offered_per_s": round(len(done) / max(wall, 1e-6), 1),
                "accepted": len(ok), "refused": len(refused), "other_errors": other,
                "accepted_p50_ms": round(1000 * pct(ok, 0.50), 2),
                "accepted_p99_ms": round(1000 * pct(ok, 0.99), 2),
                "refused_p50_ms": round(1000 * pct(refused, 0.50), 2),
                "refused_p99_ms": round(1000 * pct(refused, 0.99), 2),
                "rss_start_mib": round(rss0 / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
                "rss_end_mib": round(rss1 / 1024, 1),
                "metrics_refused": srv.counter("moerec_rpc_overload_rejected_total"),
                "refused_message": msgs[0] if msgs else ""}
            ch.close()
        finally:
            out[name + "_exit"] = srv.stop()
    return out, served


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=2.0, help="times the measured capacity")
    ap.add_argument("--bound", type=int, default=8, help="max_inflight_calls of the bounded run")
    ap.add_argument("--candidates", type=int, default=1000, help="per Score call")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests", "integration"))
        import moerec_testlib
        moerec_testlib.load_stubs(a.proto_dir, work)
        r = run(a.bin, a.proto_dir, work, a.seconds, a.rate, a.bound, a.candidates)
    b, u = r["bounded"], r["unbounded"]
    r["p99_ratio_unbounded_over_bounded"] = round(u["accepted_p99_ms"] /
                                                  max(b["accepted_p99_ms"], 1e-3), 2)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
