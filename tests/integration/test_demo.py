#!/usr/bin/python3
"""End to end, as a user would run it: `moerec demo-data` writes the demo
world, `moerec train` fits the ranker, `moerec index retrievers` builds the
genre experts, `moerec serve` serves them with a store; through
python3-grpcio the catalogue is loaded (UpsertItems), clicks replayed
(AppendEvents), and both Score and Recommend must put each user's favourite
genres first — the system learned and retrieves the signal the data
carries. Also checks that `moerec --help` lists every subcommand and each
answers --help."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None


class DemoTest(unittest.TestCase):
    def test_help(self):
        out = subprocess.run([ARGS.bin, "--help"], capture_output=True, text=True, check=True).stdout
        cmds = [l.split()[0] for l in out.splitlines() if l.startswith("  ") and l.strip()]
        self.assertIn("serve", cmds)
        self.assertIn("demo-data", cmds)
        for c in cmds:
            r = subprocess.run([ARGS.bin, c, "--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, c)
            self.assertIn("usage: moerec " + c, r.stdout + r.stderr)
        r = subprocess.run([ARGS.bin, "no-such-command"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)

    def test_demo_data_write_error(self):
        # a write error (here the file-size limit, as a full disk would) shows
        # at commit: exit 1 naming it, no success line, and no output or
        # temporary left (every output goes through the atomic writer)
        import resource
        import signal

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "5", "--items", "20",
                                "--rows", "500"], capture_output=True, text=True, preexec_fn=limit)
            self.assertEqual(r.returncode, 1)
            self.assertIn("File too large", r.stderr)
            self.assertNotIn("interactions in", r.stderr)
            self.assertEqual(os.listdir(d), [])

    def test_train_serve_rank(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "150", "--rows", "80000",
                            "--items", "500"], check=True, capture_output=True)
            models = os.path.join(d, "models", "demo")
            os.makedirs(models)
            tr = subprocess.run([ARGS.bin, "train", "--model-json", os.path.join(d, "model.json"),
                                 "--data", os.path.join(d, "interactions.csv"), "--out", models,
                                 "--epochs", "8", "--quiet"], check=True, capture_output=True,
                                text=True)
            metrics = json.loads(tr.stdout.strip().splitlines()[-1])
            self.assertGreater(metrics["tasks"]["click"]["auc"], 0.65)
            subprocess.run([ARGS.bin, "index", "retrievers", "--items",
                            os.path.join(d, "item_vectors.csv"), "--expert-column", "genre",
                            "--events", os.path.join(d, "events.csv"), "--popularity",
                            "--pilots", "2", "--quiet", "--out",
                            os.path.join(models, "1", "retrievers")], check=True,
                           capture_output=True)
            srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0", "--log-level", "warn",
                                    "--model-dir", os.path.join(d, "models"),
                                    "--data-dir", os.path.join(d, "db"), "--item-dim", "16"],
                                   stdout=subprocess.PIPE, text=True)
            try:
                line = srv.stdout.readline().strip()
                self.assertTrue(line.startswith("listening on "), line)
                import grpc
                import moerec_pb2 as pb, moerec_pb2_grpc
                import demo_client
                ch = grpc.insecure_channel(line[len("listening on "):])
                stub = moerec_pb2_grpc.RecommenderStub(ch)
                items, users = demo_client.read_world(d)
                lift = demo_client.favourite_lift(stub, pb, items, users, 40)
                print("favourite-genre lift: %+.3f" % lift)
                self.assertGreater(lift, 0.1)
                self.assertEqual(demo_client.load_catalogue(stub, pb, d), 500)
                self.assertGreater(demo_client.replay_events(stub, pb, d, users[:20]), 0)
                share = demo_client.favourite_share(stub, pb, items, users[:20])
                print("favourite genres in Recommend's top 10: %.2f" % share)
                self.assertGreater(share, 0.5)  # 2 of 8 genres: 0.25 by chance
                ch.close()
            finally:
                srv.send_signal(signal.SIGTERM)
                self.assertEqual(srv.wait(timeout=60), 0)
                srv.stdout.close()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
