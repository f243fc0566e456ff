#!/usr/bin/python3
"""Disk full: the server's data dir on a small tmpfs made by the test (needs
root; skipped with a message otherwise — CI runs as root). Writes fill it:
every write RPC then answers RESOURCE_EXHAUSTED or UNAVAILABLE with a
message, reads keep serving, and once space is freed (the test deletes a
ballast file on the same filesystem) writes work again; every write
acknowledged before, during and after is read back (reliability_world.
Checker) on the running server and again after a restart."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliability_world as rw  # noqa: E402

ARGS = None
FS_MB, BALLAST_MB, RESERVE_MB = 48, 8, 4


def mount_tmpfs(path, mb):
    """'' on success, else why not."""
    if os.geteuid() != 0:
        return "not root (mounting a size-limited tmpfs needs root; CI runs as root)"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % mb, "tmpfs", path],
                       capture_output=True, text=True)
    return "" if p.returncode == 0 else "mount failed: " + (p.stderr.strip() or str(p.returncode))


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        import grpc
        import moerec_pb2 as pb
        import moerec_pb2_grpc
        import health_pb2, health_pb2_grpc
        self.grpc, self.pb, self.stubs = grpc, pb, moerec_pb2_grpc
        self.hpb, self.hstubs = health_pb2, health_pb2_grpc
        self.tmp = tempfile.mkdtemp(prefix="moerec-diskfull-")
        self.mnt = os.path.join(self.tmp, "fs")
        os.mkdir(self.mnt)
        why = mount_tmpfs(self.mnt, FS_MB)
        if why:
            shutil.rmtree(self.tmp)
            self.skipTest("disk-full test skipped: " + why)
        self.srv = None

    def tearDown(self):
        if self.srv and self.srv.proc.poll() is None:
            self.srv.kill()
        subprocess.run(["umount", "-l", self.mnt], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, base_dir, data):
        self.srv = rw.Server(ARGS.bin, base_dir, data, {"store_min_free_bytes": RESERVE_MB << 20})
        self.ch = self.grpc.insecure_channel(self.srv.target)
        self.rec = self.stubs.RecommenderStub(self.ch)
        self.chk = rw.Checker(self.grpc, self.pb, self.rec, self.base)

    def big_items(self, rng, k, n=20):
        """n items, each with a vector and ~16 KB of features."""
        pb = self.pb
        req = pb.UpsertItemsRequest()
        recs = []
        for i in range(n):
            iid = "%d" % (200000 + k * 100 + i)
            v = rw.random_unit(rng)
            it = req.items.add(item_id=iid, embedding=v)
            it.features.categorical.add(name="item_id", values=[
                "%064x" % rng.getrandbits(256) * 4 for _ in range(64)])
            recs.append(("item", iid, v))
        return req, recs

    def event_write(self, rng, k):
        pb = self.pb
        user = "df-%d" % k
        items = rng.sample(range(1, rw.BASE_ITEMS + 1), 3)
        req = pb.AppendEventsRequest(events=[pb.Event(user_id=user, item_id=str(i), timestamp_ms=5 + j)
                                             for j, i in enumerate(items)])
        return req, [("events", user, items)]

    def verify(self, acked):
        lost = []
        for r in acked:
            why = self.chk.events(r[1], r[2]) if r[0] == "events" else self.chk.item(r[1], r[2])
            if why:
                lost.append(why)
        self.assertEqual(lost[:3], [], "%d of %d acknowledged writes missing" % (len(lost), len(acked)))

    def test_full_disk_refuses_writes_keeps_reads_and_recovers(self):
        grpc = self.grpc
        rng = random.Random(3)
        d = os.path.join(self.tmp, "world")
        os.mkdir(d)
        self.base = rw.build(ARGS.bin, d)
        with open(os.path.join(self.mnt, "ballast"), "wb") as f:
            f.write(b"\0" * (BALLAST_MB << 20))
        data = os.path.join(self.mnt, "db")
        self.start(d, data)
        rw.load_base(self.rec, self.pb, self.base)
        acked, refused = [], []
        # fill: alternate big UpsertItems and small AppendEvents until refused
        for k in range(2000):
            req, recs = self.big_items(rng, k) if k % 2 == 0 else self.event_write(rng, k)
            call = self.rec.UpsertItems if k % 2 == 0 else self.rec.AppendEvents
            try:
                call(req, timeout=30)
                acked += recs
            except grpc.RpcError as e:
                refused.append((e.code(), e.details()))
                if len(refused) >= 4:
                    break
        self.assertTrue(refused, "the %d MB filesystem never filled" % FS_MB)
        for code, msg in refused:
            self.assertIn(code, (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE),
                          msg)
            self.assertTrue(msg)
        # reads keep serving while the disk is full
        time.sleep(0.2)
        if self.srv.proc.poll() is not None:
            with open(os.path.join(d, "server.log")) as f:
                self.fail("the server exited (rc %s) on a full disk: %s" % (self.srv.proc.poll(),
                                                                           f.read()[-2000:]))
        print("refused: %s %s" % refused[0], file=sys.stderr)
        hs = self.hstubs.HealthStub(self.ch)
        self.assertEqual(hs.Check(self.hpb.HealthCheckRequest(), timeout=10).status, 1)
        self.rec.GetModelInfo(self.pb.GetModelInfoRequest(), timeout=10)
        ev = [r for r in acked if r[0] == "events"]
        self.assertTrue(ev)
        for r in ev[-5:]:
            self.assertIsNone(self.chk.events(r[1], r[2]))
        # free space: writes work again (the store resumes by itself)
        os.unlink(os.path.join(self.mnt, "ballast"))
        ok, deadline, last = False, time.time() + 60, None
        while time.time() < deadline:
            req, recs = self.event_write(rng, 100000 + len(acked))
            try:
                self.rec.AppendEvents(req, timeout=10)
                acked += recs
                ok = True
                break
            except grpc.RpcError as e:
                last = (e.code(), e.details())
                time.sleep(0.5)
        self.assertTrue(ok, "writes still refused 60 s after space was freed: %s" % (last,))
        for k in range(5):
            req, recs = self.event_write(rng, 200000 + k)
            self.rec.AppendEvents(req, timeout=10)
            acked += recs
        self.verify([r for r in acked if r[0] == "events"] + [r for r in acked if r[0] == "item"][:50])
        # and after a restart (the freed space is enough to reopen)
        self.ch.close()
        self.assertEqual(self.srv.stop(), 0)
        self.start(d, data)
        self.verify([r for r in acked if r[0] == "events"] + [r for r in acked if r[0] == "item"][:50])
        self.ch.close()
        self.assertEqual(self.srv.stop(), 0)


if __name__ == "__main__":
    import moerec_testlib
    moerec_testlib.run(globals())
