#!/usr/bin/python3
"""The shared Redis Cluster tier through the real server: a 3-master
cluster (Debian's redis-server, started here on free loopback ports) sits
between the server's memory cache (off here, so every lookup reaches the
tier) and its RocksDB. UpsertItems writes item vectors through to the
tier; AppendEvents reads them back (hits in /metrics); with a master
killed, every call still succeeds (rows read from RocksDB, counted as
degraded). Skipped when redis-server is not installed."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

ARGS = None


def free_port_pair():
    """A port p with p and p + 10000 (the cluster bus) free."""
    for _ in range(200):
        p = random.randint(20000, 50000)
        ok = True
        for q in (p, p + 10000):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no free port pair")


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                          text=True, timeout=30).stdout


class SharedTierTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("redis-server"):
            raise unittest.SkipTest("redis-server not installed (scripts/install-deps.sh --tests)")
        import grpc
        import moerec_pb2 as pb, moerec_pb2_grpc
        cls.grpc, cls.pb = grpc, pb
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.ports, cls.redis = [], []
        for i in range(3):
            p = free_port_pair()
            nd = os.path.join(d, "r%d" % i)
            os.mkdir(nd)
            cls.redis.append(subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--dir", nd, "--save", "", "--appendonly",
                 "no", "--cluster-node-timeout", "1000"], stdout=subprocess.DEVNULL))
            cls.ports.append(p)
        for p in cls.ports:
            for _ in range(200):
                if redis_cli(p, "PING").strip() == "PONG":
                    break
                time.sleep(0.025)
        subprocess.run(["redis-cli", "--cluster", "create"] +
                       ["127.0.0.1:%d" % p for p in cls.ports] +
                       ["--cluster-replicas", "0", "--cluster-yes"], check=True,
                       capture_output=True, timeout=60)
        for _ in range(400):
            if all("cluster_state:ok" in redis_cli(p, "CLUSTER", "INFO") for p in cls.ports):
                break
            time.sleep(0.025)
        cfg = {"data_dir": os.path.join(d, "data"), "item_dim": 4, "cache_bytes": 0,
               "log_level": "warn", "shared_tier_seeds": ",".join("127.0.0.1:%d" % p for p in cls.ports),
               "shared_tier_prefix": "t", "shared_tier_ttl_seconds": 600}
        with open(os.path.join(d, "moerec.json"), "w") as f:
            json.dump(cfg, f)
        cls.srv = subprocess.Popen([ARGS.bin, "serve", "--port", "0", "--drain-grace", "0",
                                    "--metrics-port", "0", "--config", os.path.join(d, "moerec.json")],
                                   stdout=subprocess.PIPE, text=True)
        line = cls.srv.stdout.readline().strip()
        assert line.startswith("listening on "), line
        mline = cls.srv.stdout.readline().strip()
        cls.mport = int(mline.rsplit(":", 1)[1].split("/")[0])
        cls.ch = grpc.insecure_channel(line[len("listening on "):])
        cls.rec = moerec_pb2_grpc.RecommenderStub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()
        cls.srv.send_signal(signal.SIGTERM)
        rc = cls.srv.wait(timeout=60)
        cls.srv.stdout.close()
        for r in cls.redis:
            r.kill()
            r.wait()
        cls.tmp.cleanup()
        assert rc == 0, rc

    def metric(self, name, label):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.mport, timeout=10) as r:
            text = r.read().decode()
        m = re.search(r"^%s\{%s\} (\d+)$" % (re.escape(name), re.escape(label)), text, re.M)
        self.assertIsNotNone(m, "%s{%s} not in /metrics" % (name, label))
        return int(m.group(1))

    def append(self, n_users, seed):
        pb = self.pb
        rnd = random.Random(seed)
        events = [pb.Event(user_id="u%d" % (i % n_users), item_id="i%d" % rnd.randrange(200),
                           action="click") for i in range(300)]
        resp = self.rec.AppendEvents(pb.AppendEventsRequest(events=events), timeout=20)
        self.assertEqual(resp.appended, 300)

    def test_write_through_read_back_and_a_dead_master(self):
        pb = self.pb
        items = [pb.Item(item_id="i%d" % i, embedding=[i, 1.0, -1.0, 0.5]) for i in range(200)]
        self.assertEqual(self.rec.UpsertItems(pb.UpsertItemsRequest(items=items), timeout=20).upserted,
                         200)
        self.assertEqual(self.metric("moerec_shared_tier_writes_total", 'result="ok"'), 200)
        # every key is in the cluster, spread over the masters, with the TTL
        sizes = [int(redis_cli(p, "DBSIZE").strip()) for p in self.ports]
        self.assertEqual(sum(sizes), 200)
        self.assertTrue(all(s > 0 for s in sizes), sizes)
        self.append(10, 1)
        hits = self.metric("moerec_shared_tier_rows_total", 'result="hit"')
        self.assertGreater(hits, 0)
        self.assertEqual(self.metric("moerec_shared_tier_rows_total", 'result="degraded"'), 0)
        # a master dies: every call still succeeds, from RocksDB
        self.redis[2].kill()
        self.redis[2].wait()
        for round_ in range(5):
            self.append(10, 10 + round_)
        self.assertGreater(self.metric("moerec_shared_tier_rows_total", 'result="degraded"'), 0)


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
