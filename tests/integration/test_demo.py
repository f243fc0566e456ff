#!/usr/bin/python3
"""End to end, as a user would run it: `moerec demo-data` writes the demo
world, `moerec train` fits the ranker, `moerec index retrievers` builds the
genre experts, `moerec serve` serves them with a store; through
the Python client package the catalogue is loaded (UpsertItems), clicks replayed
(AppendEvents), and both Score and Recommend must put each user's favourite
genres first — the system learned and retrieves the signal the data
carries. Runs with the venv python that holds the client package
(scripts/demo_client.py uses it). Also checks that `moerec --help` lists every subcommand and each
answers --help."""
import json
import re
import os
import signal
import subprocess
import sys
import tempfile
import unittest

ARGS = None


class DemoTest(unittest.TestCase):
    def serve(self, d):
        """`moerec serve` over d/models with a store in d/db: (process, target)."""
        srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0", "--log-level", "warn",
                                "--model-dir", os.path.join(d, "models"),
                                "--data-dir", os.path.join(d, "db"), "--item-dim", "16"],
                               stdout=subprocess.PIPE, text=True)
        line = srv.stdout.readline().strip()
        self.assertTrue(line.startswith("listening on "), line)
        return srv, line[len("listening on "):]

    def test_help(self):
        out = subprocess.run([ARGS.bin, "--help"], capture_output=True, text=True, check=True).stdout
        listing = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        cmds = [l.split()[0] for l in listing.splitlines() if l.strip()]
        self.assertIn("serve", cmds)
        self.assertIn("demo-data", cmds)
        out = subprocess.run([ARGS.bin, "index", "--help"], capture_output=True, text=True,
                             check=True).stdout  # usage: moerec index a|b|... [options]
        targets = out.split("\n", 1)[0].split("index ", 1)[1].split()[0].split("|")
        self.assertEqual(sorted(targets), ["embeddings", "features", "graphhash", "retrievers",
                                           "tables"])
        for c in cmds + ["index " + t for t in targets]:
            r = subprocess.run([ARGS.bin] + c.split() + ["--help"], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, c)
            self.assertIn("usage: moerec " + c, r.stdout + r.stderr)
            # every --help ends with an example of the command itself
            ex = re.findall(r"^Example:\s*(moerec \S+)", r.stdout + r.stderr, re.M)
            self.assertEqual(ex, ["moerec " + c.split()[0]], c)
        r = subprocess.run([ARGS.bin, "no-such-command"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)

    def test_version(self):
        out = subprocess.run([ARGS.bin, "--version"], capture_output=True, text=True,
                             check=True).stdout
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^moerec \d+\.\d+\.\d+$")
        self.assertRegex(lines[1], r"^commit ([0-9a-f]{12}(-modified)?|unknown)$")
        for lib in ("gRPC core", "protobuf-c", "RocksDB", "FAISS", "OpenBLAS", "jansson",
                    "xxHash", "libmicrohttpd"):
            self.assertRegex(out, r"(?m)^  %s +\d+\.\d+" % re.escape(lib), lib)
        self.assertNotIn("/", out)  # no path of the build machine

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
            srv, target = self.serve(d)
            try:
                import demo_client
                from moerec_client import Client
                client = Client(target)
                items, users = demo_client.read_world(d)
                lift = demo_client.favourite_lift(client, items, users, 40)
                print("favourite-genre lift: %+.3f" % lift)
                self.assertGreater(lift, 0.1)
                self.assertEqual(demo_client.load_catalogue(client, d), 500)
                self.assertGreater(demo_client.replay_events(client, d, users[:20]), 0)
                # Ranking quality over the whole catalogue (consumed items kept).
                share = demo_client.favourite_share(client, items, users[:20], consumed="none")
                print("favourite genres in Recommend's top 10: %.2f" % share)
                self.assertGreater(share, 0.5)  # 2 of 8 genres: 0.25 by chance
                # The default policy never recommends what the user clicked.
                seen = demo_client.clicked(d, users[:20])
                for u in users[:20]:
                    r = client.recommend(u["user_id"], k=10)
                    self.assertEqual(len(r.items), 10)
                    self.assertFalse({x.item_id for x in r.items} & seen[u["user_id"]])
                client.close()
            finally:
                srv.send_signal(signal.SIGTERM)
                self.assertEqual(srv.wait(timeout=60), 0)
                srv.stdout.close()

    def test_sdim_block_and_graph_table(self):
        """The demo's served model as scripts/demo.sh builds it
        (model_sdim.json: the GraphHash item table's mapping from `moerec
        index tables` over the training rows, then trained with --mappings,
        --split time and --sdim-*): a user's Score before the replay has no
        history (behaviour_length 0, a zero block); after, the block reads
        every replayed click and moves the scores; GetModelInfo reports the
        graph table with the statistics `index tables` printed."""
        with tempfile.TemporaryDirectory() as d:
            # the demo's 2,000 items on the table's 512 rows
            subprocess.run([ARGS.bin, "demo-data", "--out", d, "--users", "60", "--rows", "20000",
                            "--items", "2000"], check=True, capture_output=True)
            models = os.path.join(d, "models", "demo")
            os.makedirs(models)
            tables = os.path.join(d, "tables")
            ix = subprocess.run([ARGS.bin, "index", "tables", "--model-json",
                                 os.path.join(d, "model_sdim.json"), "--data",
                                 os.path.join(d, "interactions.csv"), "--max-rows", "18000",
                                 "--out", tables], check=True, capture_output=True, text=True)
            built = json.loads(ix.stdout.strip().splitlines()[-1])
            self.assertEqual(built["rows"], 18000)
            (gt,) = built["tables"]
            self.assertEqual((gt["name"], gt["kind"], gt["rows"]), ("item", "graph", 512))
            tr = subprocess.run([ARGS.bin, "train", "--model-json",
                                 os.path.join(d, "model_sdim.json"), "--data",
                                 os.path.join(d, "interactions.csv"), "--out", models,
                                 "--mappings", tables, "--split", "time", "--time-column", "ts_ms",
                                 "--sdim-events", os.path.join(d, "events.csv"), "--sdim-items",
                                 os.path.join(d, "item_vectors.csv"), "--epochs", "2", "--quiet"],
                                check=True, capture_output=True, text=True)
            self.assertEqual(json.loads(tr.stdout.strip().splitlines()[-1])["train_rows"], 18000)
            with open(os.path.join(models, "1", "model.json")) as f:
                self.assertEqual(json.load(f)["features"]["extra_dim"], 32)
            with open(os.path.join(tables, "item.map"), "rb") as a, \
                    open(os.path.join(models, "1", "item.map"), "rb") as b:
                self.assertEqual(a.read(), b.read())  # the served mapping is the one built
            srv, target = self.serve(d)
            try:
                import demo_client
                from moerec_client import Client
                with Client(target) as client:
                    items, users = demo_client.read_world(d)
                    demo_client.load_catalogue(client, d)
                    n, user, cands, before, after = demo_client.replay_with_sdim(
                        client, d, items, users[:10])
                    info = client.get_model_info()
                    demo_client.show_tables(info)
                (t,) = demo_client.mapped_tables(info)
                self.assertEqual((t.name, t.kind, t.rows, t.mapping), ("item", "graph", 512,
                                                                       "item.map"))
                self.assertEqual((t.mapped_ids, t.occupied_rows, t.max_load),
                                 (gt["mapped_ids"], gt["occupied_rows"], gt["max_load"]))
                self.assertAlmostEqual(t.shared_fraction, gt["shared_fraction"], places=5)
                self.assertGreater(t.mapped_ids, 1500)  # of the 2,000 items, those in the rows
                self.assertLess(t.occupied_rows, t.mapped_ids)  # clusters share rows
                self.assertGreater(t.shared_fraction, 0)
                with open(os.path.join(d, "events.csv")) as f:
                    mine = sum(1 for x in f if x.split(",")[0] == user["user_id"])
                self.assertGreater(n, 0)
                self.assertEqual(before.debug.behaviour_length, 0)
                self.assertEqual(after.debug.behaviour_length, mine)
                diff = max(abs(a.score - b.score) for a, b in zip(after.items, before.items))
                print("SDIM: %d events; largest score change %.4f" % (mine, diff))
                self.assertGreater(diff, 1e-3)
            finally:
                srv.send_signal(signal.SIGTERM)
                self.assertEqual(srv.wait(timeout=60), 0)
                srv.stdout.close()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    moerec_testlib.run(globals())
