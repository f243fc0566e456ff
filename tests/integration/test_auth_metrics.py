#!/usr/bin/python3
"""Bearer-token auth and the Prometheus endpoint against the real server,
through Debian's python3-grpcio and urllib: health needs no token;
Recommender calls need one (UNAUTHENTICATED without, or with a wrong one);
Admin calls need an admin token (PERMISSION_DENIED otherwise); /metrics
serves the text format with per-method counters that move with traffic."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

ARGS = None
SVC, ADMIN = "svc-token-0123456789abcdef", "adm-token-0123456789abcdef"


class AuthMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import health_pb2, health_pb2_grpc, moerec_pb2 as pb, moerec_pb2_grpc
        cls.grpc, cls.pb, cls.hpb = grpc, pb, health_pb2
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        with open(os.path.join(d, "tokens"), "w") as f:
            f.write("# test tokens\n%s\n%s admin\n" % (SVC, ADMIN))
        with open(os.path.join(d, "moerec.json"), "w") as f:
            json.dump({"auth_tokens_file": os.path.join(d, "tokens"), "log_level": "warn"}, f)
        cls.srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0",
                                    "--metrics-port", "0", "--config", os.path.join(d, "moerec.json")],
                                   stdout=subprocess.PIPE, text=True)
        line = cls.srv.stdout.readline().strip()
        assert line.startswith("listening on "), line
        mline = cls.srv.stdout.readline().strip()  # "metrics on http://127.0.0.1:PORT/metrics"
        assert mline.startswith("metrics on http://127.0.0.1:"), mline
        cls.mport = int(mline.rsplit(":", 1)[1].split("/")[0])
        cls.ch = grpc.insecure_channel(line[len("listening on "):])
        cls.health = health_pb2_grpc.HealthStub(cls.ch)
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)
        cls.admin = moerec_pb2_grpc.AdminStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.srv.send_signal(signal.SIGTERM)
        rc = cls.srv.wait(timeout=60)
        cls.srv.stdout.close()
        cls.tmp.cleanup()
        assert rc == 0, rc

    def status(self, fn, req, token=None):
        md = (("authorization", "Bearer " + token),) if token else None
        try:
            fn(req, timeout=10, metadata=md)
            return self.grpc.StatusCode.OK
        except self.grpc.RpcError as e:
            return e.code()

    def test_tokens(self):
        code, pb = self.grpc.StatusCode, self.pb
        self.assertEqual(self.status(self.health.Check, self.hpb.HealthCheckRequest()), code.OK)
        info = pb.GetModelInfoRequest()
        self.assertEqual(self.status(self.rec.GetModelInfo, info), code.UNAUTHENTICATED)
        self.assertEqual(self.status(self.rec.GetModelInfo, info, "wrong-token-0123456789abcd"),
                         code.UNAUTHENTICATED)
        # authenticated: reaches the handler (no model loaded here)
        self.assertEqual(self.status(self.rec.GetModelInfo, info, SVC), code.FAILED_PRECONDITION)
        st = pb.StatsRequest()
        self.assertEqual(self.status(self.admin.Stats, st), code.UNAUTHENTICATED)
        self.assertEqual(self.status(self.admin.Stats, st, SVC), code.PERMISSION_DENIED)
        self.assertEqual(self.status(self.admin.Stats, st, ADMIN), code.OK)

    def test_unknown_method_needs_a_token_first(self):
        # without a token nothing about the method table is revealed
        code = self.grpc.StatusCode
        for path in ("/moerec.v1.Recommender/NoSuchMethod", "/no.such.Service/Call"):
            call = self.ch.unary_unary(path, request_serializer=None, response_deserializer=None)
            for md, want in ((None, code.UNAUTHENTICATED),
                             ((("authorization", "Bearer wrong-token-0123456789abcd"),),
                              code.UNAUTHENTICATED),
                             ((("authorization", "Bearer " + SVC),), code.UNIMPLEMENTED)):
                with self.assertRaises(self.grpc.RpcError) as cm:
                    call(b"", timeout=10, metadata=md)
                self.assertEqual(cm.exception.code(), want, (path, md))

    def test_metrics(self):
        url = "http://127.0.0.1:%d/metrics" % self.mport
        def scrape():
            with urllib.request.urlopen(url, timeout=10) as r:
                self.assertIn("text/plain", r.headers["Content-Type"])
                return r.read().decode()
        def calls(text, method):
            key = 'moerec_rpc_calls_total{method="%s"} ' % method
            return int([l for l in text.splitlines() if l.startswith(key)][0].split()[-1])
        before = scrape()
        self.assertIn("moerec_up 1", before)
        self.assertIn("# TYPE moerec_rpc_latency_microseconds histogram", before)
        n0 = calls(before, "/grpc.health.v1.Health/Check")
        for _ in range(3):
            self.health.Check(self.hpb.HealthCheckRequest(), timeout=10)
        # a call is counted when the server's last batch for it completes,
        # which can be just after the client has its answer: poll briefly
        deadline = time.time() + 10
        after = scrape()
        while calls(after, "/grpc.health.v1.Health/Check") < n0 + 3 and time.time() < deadline:
            time.sleep(0.05)
            after = scrape()
        self.assertEqual(calls(after, "/grpc.health.v1.Health/Check"), n0 + 3)
        self.assertIn('moerec_rpc_latency_microseconds_bucket{method="/grpc.health.v1.Health/Check",le="+Inf"}',
                      after)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % self.mport, timeout=10)
        self.assertEqual(cm.exception.code, 404)
        cm.exception.close()

    def test_metrics_label_values_are_escaped(self):
        # a model directory name with a quote and a backslash must not break
        # the exposition: every sample line stays parseable
        import re
        d = self.tmp.name
        subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "20", "--items", "50",
                        "--rows", "500"], check=True, capture_output=True)
        name = 'we"ird\\name'
        subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"), "--data",
                        os.path.join(d, "interactions.csv"), "--out", os.path.join(d, "models", name),
                        "--epochs", "1", "--quiet"], check=True, capture_output=True)
        srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0",
                                "--metrics-port", "0", "--log-level", "warn", "--model-dir",
                                os.path.join(d, "models")],
                               stdout=subprocess.PIPE, text=True)
        try:
            srv.stdout.readline()
            mport = int(srv.stdout.readline().strip().rsplit(":", 1)[1].split("/")[0])
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
                text = r.read().decode()
        finally:
            srv.send_signal(signal.SIGTERM)
            self.assertEqual(srv.wait(timeout=60), 0)
            srv.stdout.close()
        self.assertIn('moerec_model_info{model="we\\"ird\\\\name",', text)
        value = r'"(?:[^"\\\n]|\\[\\"n])*"'
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*=%s'
                            r'(,[a-zA-Z_][a-zA-Z0-9_]*=%s)*\})? \S+$' % (value, value))
        helped, typed = set(), set()
        for line in text.splitlines():
            if line.startswith("# HELP "):
                helped.add(line.split()[2])
            elif line.startswith("# TYPE "):
                typed.add(line.split()[2])
            else:
                self.assertRegex(line, sample)
                fam = re.sub(r"_(bucket|sum|count)$", "", line.split("{")[0].split()[0])
                self.assertIn(fam, typed, line)  # every family has TYPE and HELP
                self.assertIn(fam, helped, line)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
