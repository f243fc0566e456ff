#!/usr/bin/python3
"""model_poll_s through the real server (Debian's python3-grpcio): a
version copied into the model directory (under a temporary name, then
renamed, as docs/operations.md says) is served within a few polls, with
no call failing meanwhile; a broken newer version is logged once and
left, the serving version keeps answering, and once the broken version is
replaced by a whole one it loads; model_poll_s out of range is a config
error naming the field. The demo model (moerec demo-data + train)."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

ARGS = None


class ModelPollTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        import moerec_testlib
        cls.grpc, cls.pb, cls.pbg = grpc, pb, moerec_pb2_grpc
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.models = moerec_testlib.demo_model(ARGS.bin, d)
        cls.score_req = moerec_testlib.demo_score_request(pb, d)
        cls.cfg = os.path.join(d, "moerec.json")
        with open(cls.cfg, "w") as f:
            json.dump({"model_poll_s": 1, "log_level": "info"}, f)
        cls.log = open(os.path.join(d, "server.log"), "w+")
        cls.srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0",
                                    "--model-dir", cls.models, "--config", cls.cfg],
                                   stdout=subprocess.PIPE, stderr=cls.log, text=True)
        line = cls.srv.stdout.readline().strip()
        assert line.startswith("listening on "), line
        cls.ch = grpc.insecure_channel(line[len("listening on "):])
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.srv.terminate()
        rc = cls.srv.wait(timeout=60)
        cls.srv.stdout.close()
        cls.log.close()
        cls.tmp.cleanup()
        assert rc == 0, rc

    def version(self):
        return self.rec.GetModelInfo(self.pb.GetModelInfoRequest(), timeout=10).version

    def wait_version(self, want, timeout=30):
        until = time.time() + timeout
        while self.version() != want:
            self.assertLess(time.time(), until, "still version %s, want %s" % (self.version(), want))
            time.sleep(0.1)

    def place(self, version, broken=False):
        """models/demo/<version>, copied from version 1 under a temporary
        name and renamed into place (a broken one has no weights)."""
        root = os.path.join(self.models, "demo")
        tmp = os.path.join(root, ".incoming-%s" % version)
        shutil.copytree(os.path.join(root, "1"), tmp)
        if broken:
            os.remove(os.path.join(tmp, "weights.safetensors"))
        os.rename(tmp, os.path.join(root, version))

    def test_newer_versions_are_polled_in(self):
        self.assertEqual(self.version(), "1")
        failed, stop = [], threading.Event()

        def traffic():
            while not stop.is_set():
                try:
                    r = self.rec.Score(self.score_req, timeout=10)
                    assert r.model_version.startswith("demo/"), r.model_version
                except self.grpc.RpcError as e:
                    failed.append(e.details())

        th = threading.Thread(target=traffic)
        th.start()
        try:
            self.place("2")
            self.wait_version("2")
            self.place("3", broken=True)  # newest on disk, cannot load
            time.sleep(3.5)               # three polls or more
            self.assertEqual(self.version(), "2")
        finally:
            stop.set()
            th.join()
        self.assertEqual(failed, [])
        self.log.seek(0)
        text = self.log.read()
        self.assertIn("model_poll_s: model demo now serves version 2 (was 1)", text)
        warnings = [l for l in text.splitlines() if "version 3 not loaded" in l]
        self.assertEqual(len(warnings), 1, warnings)  # once, not every poll
        shutil.copy(os.path.join(self.models, "demo", "1", "weights.safetensors"),
                    os.path.join(self.models, "demo", "3"))  # now whole: tried again, loads
        self.wait_version("3")

    def test_model_poll_s_out_of_range(self):
        bad = os.path.join(self.tmp.name, "bad.json")
        for v in (-1, 86401):
            with open(bad, "w") as f:
                json.dump({"model_poll_s": v}, f)
            r = subprocess.run([ARGS.bin, "serve", "--port", "0", "--model-dir", self.models,
                                "--config", bad], capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("model_poll_s", r.stderr)


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
