#!/usr/bin/python3
"""The SIGTERM drain under load (docs/operations.md, Stopping), from
Debian's python3-grpcio: 4 threads loop Score while a poller calls health
Check and a Watch stream is open; then SIGTERM.

Checks, against the times the server logs for the two drain steps:
- health turns NOT_SERVING (Check and Watch) before the grace period ends,
  and Score calls keep being answered OK after that, during the grace;
- no call sent before the listener closed ends CANCELLED: each is OK, or
  UNAVAILABLE once the grace is over (refused, never half-served);
- the process exits 0, and not before the grace period has passed.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None
GRACE = 1.0  # seconds: long enough for several calls per thread during it


class DrainTest(unittest.TestCase):
    def test_sigterm_under_load(self):
        import grpc
        import health_pb2, health_pb2_grpc, moerec_pb2 as pb, moerec_pb2_grpc
        import moerec_testlib as lib
        hpb = health_pb2.HealthCheckResponse
        with tempfile.TemporaryDirectory() as d:
            models = lib.demo_model(ARGS.bin, d)
            cfg = os.path.join(d, "moerec.json")
            with open(cfg, "w") as f:
                json.dump({"drain_grace_seconds": GRACE, "log_level": "info"}, f)
            log_path = os.path.join(d, "server.log")
            with open(log_path, "w") as log:
                srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--model-dir", models,
                                        "--config", cfg], stdout=subprocess.PIPE, stderr=log,
                                       text=True)
            line = srv.stdout.readline().strip()
            self.assertTrue(line.startswith("listening on "), line)
            target = line[len("listening on "):]
            req = lib.demo_score_request(pb, d)

            calls = [[] for _ in range(4)]  # per thread: (sent, ended, code)
            checks, watched = [], []        # (time, status or code)
            stop = threading.Event()

            def score_loop(out):
                ch = grpc.insecure_channel(target)  # one connection per thread
                stub = moerec_pb2_grpc.RecommenderStub(ch)
                while not stop.is_set():
                    t0 = time.time()
                    try:
                        stub.Score(req, timeout=30)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as e:
                        code = e.code()
                    out.append((t0, time.time(), code))
                    if code != grpc.StatusCode.OK:
                        break  # refused: a client would go elsewhere now
                ch.close()

            def check_loop():
                ch = grpc.insecure_channel(target)
                stub = health_pb2_grpc.HealthStub(ch)
                while not stop.is_set():
                    try:
                        r = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                        checks.append((time.time(), r.status))
                    except grpc.RpcError as e:
                        checks.append((time.time(), e.code()))
                        break
                    time.sleep(0.005)
                ch.close()

            def watch_loop():
                ch = grpc.insecure_channel(target)
                try:
                    for m in health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(),
                                                                  timeout=60):
                        watched.append((time.time(), m.status))
                except grpc.RpcError as e:
                    watched.append((time.time(), e.code()))
                ch.close()

            threads = [threading.Thread(target=score_loop, args=(c,)) for c in calls]
            threads += [threading.Thread(target=check_loop), threading.Thread(target=watch_loop)]
            for t in threads:
                t.start()
            deadline = time.time() + 60
            while min(len(c) for c in calls) < 20 and time.time() < deadline:
                time.sleep(0.01)
            self.assertTrue(all(len(c) >= 20 for c in calls), "Score loops did not get going")
            t_sig = time.time()
            srv.send_signal(signal.SIGTERM)
            rc = srv.wait(timeout=120)
            t_exit = time.time()
            stop.set()
            for t in threads:
                t.join(timeout=60)
            srv.stdout.close()
            with open(log_path) as f:
                log = f.read().splitlines()

        self.assertEqual(rc, 0, "\n".join(log[-20:]))
        def logged(needle):
            hits = [lib.log_time(l) for l in log if needle in l]
            self.assertEqual(len(hits), 1, "expected one log line with %r:\n%s" %
                             (needle, "\n".join(log)))
            return hits[0]
        t_refuse = logged("drain: refusing new calls")
        t_close = logged("drain: closing the listener")
        self.assertGreaterEqual(t_exit - t_sig, GRACE)
        self.assertGreaterEqual(t_refuse - t_sig, GRACE - 0.01)  # logged to the ms

        flat = sorted(x for c in calls for x in c)
        codes = {}
        for _, _, code in flat:
            codes[code.name] = codes.get(code.name, 0) + 1
        print("drain: %d calls %s; exit %.3f s after SIGTERM (grace %.1f s), listener closed "
              "%.3f s after the grace" % (len(flat), codes, t_exit - t_sig, GRACE,
                                          t_close - t_refuse))
        before_close = [x for x in flat if x[0] < t_close]
        bad = [x for x in before_close if x[2] not in (grpc.StatusCode.OK,
                                                       grpc.StatusCode.UNAVAILABLE)]
        self.assertEqual(bad, [], "calls sent before the listener closed (%.4f; refusing from "
                         "%.4f) ended with: %s" % (t_close, t_refuse, ", ".join(
                             "%s sent %.4f ended %.4f" % (x[2].name, x[0], x[1]) for x in bad)))
        for t0, t1, code in before_close:
            if code == grpc.StatusCode.UNAVAILABLE:  # refused only once the grace was over
                self.assertGreater(t1, t_refuse)

        not_serving = [t for t, s in checks if s == hpb.NOT_SERVING]
        self.assertTrue(not_serving, "Check never answered NOT_SERVING: %s" % checks[-3:])
        t_ns = not_serving[0]
        self.assertLess(t_ns, t_refuse, "NOT_SERVING came only after the grace")
        self.assertTrue(all(s == hpb.SERVING for t, s in checks if t < t_sig))
        self.assertEqual(watched[0][1], hpb.SERVING)
        self.assertIn((hpb.NOT_SERVING), [s for t, s in watched if t < t_refuse],
                      "Watch did not receive NOT_SERVING during the grace: %s" % watched)
        served_in_grace = [x for x in flat if x[0] > t_ns and x[1] < t_refuse
                           and x[2] == grpc.StatusCode.OK]
        self.assertGreater(len(served_in_grace), 4, "Score was not served during the grace")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
