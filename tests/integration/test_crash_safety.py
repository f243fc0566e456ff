#!/usr/bin/python3
"""Crash safety through the server: client threads drive AppendEvents and
UpsertItems against the real `moerec serve` and record every acknowledged
write; the server is SIGKILLed at a random moment, restarted on the same
data dir, and every write acknowledged before the kill is read back
through Retrieve (reliability_world.Checker). Every acknowledged write is
read back after the restart that follows the kill it survived, and 20
older ones are sampled again each round (500 at the last restart).

  ctest: 5 rounds (this file under unittest)
  bench/run crash --rounds 200: python3 test_crash_safety.py --bench
      --rounds 200 --bin ... --proto-dir ...  -> JSON last
      {"bench":"crash","rounds":..,"acked":..,"lost":..}
"""
import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliability_world as rw  # noqa: E402

ARGS = None


def writer(stub, pb, grpc, rng, wid, counter, acked, lock, stop):
    """Alternate AppendEvents (a fresh user, 3 events on base items) and
    UpsertItems (a fresh item with a vector) until the server goes away."""
    while not stop.is_set():
        with lock:
            k = counter[0]
            counter[0] += 1
        try:
            if k % 2 == 0:
                user = "ev-%d-%d" % (wid, k)
                items = rng.sample(range(1, rw.BASE_ITEMS + 1), 3)
                stub.AppendEvents(pb.AppendEventsRequest(events=[
                    pb.Event(user_id=user, item_id=str(i), timestamp_ms=1000 + j)
                    for j, i in enumerate(items)]), timeout=5)
                rec = ("events", user, items)
            else:
                iid = "%d" % (100000 + k)
                v = rw.random_unit(rng)
                stub.UpsertItems(pb.UpsertItemsRequest(items=[pb.Item(item_id=iid, embedding=v)]),
                                 timeout=5)
                rec = ("item", iid, v)
        except grpc.RpcError:
            return  # killed: this write is unacknowledged (it may or may not be stored)
        with lock:
            acked.append(rec)


def run_rounds(bin_path, rounds, seed=1, threads=2, log=None):
    import grpc
    import moerec_pb2 as pb
    import moerec_pb2_grpc
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        base = rw.build(bin_path, d)
        data = os.path.join(d, "db")
        acked, lock, counter = [], threading.Lock(), [0]
        checked_upto, lost, checks = 0, [], 0
        srv = rw.Server(bin_path, d, data)
        with grpc.insecure_channel(srv.target) as ch:
            rw.load_base(moerec_pb2_grpc.RecommenderStub(ch), pb, base)
        srv.stop()

        def verify(chk, recs):
            nonlocal checks
            for r in recs:
                why = chk.events(r[1], r[2]) if r[0] == "events" else chk.item(r[1], r[2])
                checks += 1
                if why:
                    lost.append(why)

        for rnd in range(rounds + 1):
            srv = rw.Server(bin_path, d, data)
            ch = grpc.insecure_channel(srv.target)
            stub = moerec_pb2_grpc.RecommenderStub(ch)
            chk = rw.Checker(grpc, pb, stub, base)
            if rnd == rounds:  # the last start: the last round's writes and 500 older
                verify(chk, acked[checked_upto:] + rng.sample(acked[:checked_upto],
                                                               min(500, checked_upto)))
                ch.close()
                rc = srv.stop()
                if rc != 0:
                    lost.append("server exited %d on SIGTERM" % rc)
                break
            new = acked[checked_upto:]
            old = rng.sample(acked[:checked_upto], min(20, checked_upto))
            verify(chk, new + old)
            checked_upto = len(acked)
            stop = threading.Event()
            ws = [threading.Thread(target=writer, args=(stub, pb, grpc, random.Random(rng.random()),
                                                        w, counter, acked, lock, stop))
                  for w in range(threads)]
            for w in ws:
                w.start()
            time.sleep(rng.uniform(0.02, 0.3))
            srv.kill()
            stop.set()
            for w in ws:
                w.join()
            ch.close()
            if log:
                log("round %d: %d acknowledged so far, %d lost" % (rnd + 1, len(acked), len(lost)))
        return {"bench": "crash", "rounds": rounds, "acked": len(acked), "lost": len(lost),
                "checks": checks, "writes_sent": counter[0], "lost_examples": lost[:5]}


class CrashSafetyTest(unittest.TestCase):
    def test_sigkill_rounds_lose_no_acknowledged_write(self):
        r = run_rounds(ARGS.bin, int(os.environ.get("MOEREC_CRASH_ROUNDS", "5")))
        self.assertGreater(r["acked"], 0)
        self.assertEqual(r["lost"], 0, r["lost_examples"])


def bench_main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import moerec_testlib
    with tempfile.TemporaryDirectory() as out:
        moerec_testlib.load_stubs(args.proto_dir, out)
        t0 = time.time()
        r = run_rounds(args.bin, args.rounds, args.seed,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
        r["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(r))
    return 0 if r["lost"] == 0 else 1


if __name__ == "__main__":
    if "--bench" in sys.argv:
        sys.exit(bench_main())
    import moerec_testlib
    moerec_testlib.run(globals())
