#!/usr/bin/python3
"""Integration test of `moerec serve` with an independent client: Debian's
python3-grpcio. Stubs are generated at test time from proto/ with
grpc_tools.protoc. Starts the real binary on 127.0.0.1 with --port 0.

Checks: health SERVING (Check) and Watch; malformed bytes -> INVALID_ARGUMENT;
oversized message -> RESOURCE_EXHAUSTED; unknown method -> UNIMPLEMENTED;
unbuilt RPC -> UNIMPLEMENTED with a message; SIGTERM -> exit 0 (under ASan
this also means LeakSanitizer found no leak).
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None
# every call's deadline: the assertions are on status codes, not times, and
# under ThreadSanitizer on a loaded machine a first call (connect) or the
# 5 MiB oversized message took seconds; a tight deadline only turned that
# into DEADLINE_EXCEEDED
DEADLINE_S = 60


def gen_stubs(proto_dir, out):
    from grpc_tools import protoc
    for name in ("health.proto", "moerec.proto"):
        rc = protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out,
                          "--grpc_python_out=" + out, os.path.join(proto_dir, name)])
        if rc != 0:
            raise RuntimeError("grpc_tools.protoc failed on " + name)
    sys.path.insert(0, out)


class Server:
    def __init__(self, binary):
        self.proc = subprocess.Popen([binary, "serve", "--port", "0", "--drain-grace", "0", "--log-level", "warn"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("server did not report its port: %r" % line)
        self.target = line[len("listening on "):]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class ServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        cls.grpc = grpc
        cls.server = Server(ARGS.bin)
        cls.channel = grpc.insecure_channel(cls.server.target)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        rc = cls.server.stop()
        assert rc == 0, "server exited with %d after SIGTERM" % rc

    def raw(self, method, body):
        call = self.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return call(body, timeout=DEADLINE_S)

    def test_health_serving(self):
        import health_pb2, health_pb2_grpc
        stub = health_pb2_grpc.HealthStub(self.channel)
        r = stub.Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE_S)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)
        r = stub.Check(health_pb2.HealthCheckRequest(service="moerec.v1.Admin"), timeout=DEADLINE_S)
        self.assertEqual(r.status, health_pb2.HealthCheckResponse.SERVING)

    def test_health_watch_first_message(self):
        import health_pb2, health_pb2_grpc
        stream = health_pb2_grpc.HealthStub(self.channel).Watch(health_pb2.HealthCheckRequest(),
                                                                 timeout=DEADLINE_S)
        first = next(stream)
        self.assertEqual(first.status, health_pb2.HealthCheckResponse.SERVING)
        stream.cancel()

    def test_malformed_bytes(self):
        with self.assertRaises(self.grpc.RpcError) as cm:
            self.raw("/grpc.health.v1.Health/Check", b"\x0a\x64ab")
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("malformed", cm.exception.details())

    def test_oversized(self):
        with self.assertRaises(self.grpc.RpcError) as cm:
            self.raw("/moerec.v1.Admin/Stats", b"\x00" * (5 << 20))
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_unknown_method(self):
        with self.assertRaises(self.grpc.RpcError) as cm:
            self.raw("/moerec.v1.Recommender/Nope", b"")
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.UNIMPLEMENTED)

    def test_recommend_without_model_says_so(self):
        # every RPC is built now; without --model-dir Recommend says what is missing
        import moerec_pb2, moerec_pb2_grpc
        stub = moerec_pb2_grpc.RecommenderStub(self.channel)
        with self.assertRaises(self.grpc.RpcError) as cm:
            stub.Recommend(moerec_pb2.RecommendRequest(user_id="u1"), timeout=DEADLINE_S)
        self.assertEqual(cm.exception.code(), self.grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("--model-dir", cm.exception.details())

    def test_stats(self):
        import moerec_pb2, moerec_pb2_grpc
        r = moerec_pb2_grpc.AdminStub(self.channel).Stats(moerec_pb2.StatsRequest(), timeout=DEADLINE_S)
        paths = {m.method for m in r.methods}
        self.assertIn("/moerec.v1.Recommender/Score", paths)
        self.assertIn("/grpc.health.v1.Health/Check", paths)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ARGS, rest = ap.parse_known_args()
    with tempfile.TemporaryDirectory() as out:
        gen_stubs(ARGS.proto_dir, out)
        prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    ok = prog.result.wasSuccessful()
    n = prog.result.testsRun
    bad = len(prog.result.failures) + len(prog.result.errors)
    print("%d passed, %d failed" % (n - bad, bad))
    sys.exit(0 if ok and n > 0 else 1)


if __name__ == "__main__":
    main()
