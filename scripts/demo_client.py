#!/usr/bin/python3
"""demo_client.py — call a running moerec server with Debian's python3-grpcio.

Generates stubs from proto/ into a temp dir. With --demo-dir (the folder
`moerec demo-data` wrote) it ranks a dozen candidates for a few demo users
through Score and shows that each user's favourite genres come out on top;
it always calls health Check/Watch, GetModelInfo and Admin/Stats. Used by
scripts/demo.sh and by tests/integration/test_demo.py.
"""
import argparse
import csv
import os
import random
import sys
import tempfile


def load_stubs(proto_dir, out):
    from grpc_tools import protoc
    for name in ("health.proto", "moerec.proto"):
        if protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out,
                        "--grpc_python_out=" + out, os.path.join(proto_dir, name)]):
            raise RuntimeError("protoc failed on " + name)
    sys.path.insert(0, out)


def read_world(demo_dir):
    with open(os.path.join(demo_dir, "items.csv")) as f:
        items = list(csv.DictReader(f))
    with open(os.path.join(demo_dir, "users.csv")) as f:
        users = list(csv.DictReader(f))
    return items, users


def candidates_for(user, items, rng, n_fav=4, n_other=8):
    fav = set(user["favourite_genres"].split("|"))
    favs = [i for i in items if i["genre"] in fav]
    others = [i for i in items if i["genre"] not in fav]
    return rng.sample(favs, n_fav) + rng.sample(others, n_other), fav


def score(stub, pb, user, cands, debug=False):
    req = pb.ScoreRequest(request_id="demo-" + user["user_id"], user_id=user["user_id"],
                          debug=debug)
    req.user_features.numeric.add(name="age", value=float(user["age"]))
    for it in cands:
        c = req.candidates.add(item_id=it["item_id"])
        c.features.categorical.add(name="genre", values=[it["genre"]])
        c.features.numeric.add(name="price", value=float(it["price"]))
    return stub.Score(req, timeout=10)


def favourite_lift(stub, pb, items, users, n_users, seed=7):
    """Mean final score of favourite-genre candidates minus the others'."""
    rng = random.Random(seed)
    fav_s, other_s = [], []
    for user in users[:n_users]:
        cands, fav = candidates_for(user, items, rng)
        r = score(stub, pb, user, cands)
        for it, out in zip(cands, r.items):
            (fav_s if it["genre"] in fav else other_s).append(out.score)
    return sum(fav_s) / len(fav_s) - sum(other_s) / len(other_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="127.0.0.1:50051")
    ap.add_argument("--proto-dir", default=os.path.join(os.path.dirname(__file__), "..", "proto"))
    ap.add_argument("--demo-dir", help="folder written by `moerec demo-data`")
    ap.add_argument("--users", type=int, default=3, help="demo users to rank for")
    a = ap.parse_args()
    import grpc
    with tempfile.TemporaryDirectory() as out:
        load_stubs(a.proto_dir, out)
        import health_pb2, health_pb2_grpc, moerec_pb2 as pb, moerec_pb2_grpc
        ch = grpc.insecure_channel(a.target)
        health = health_pb2_grpc.HealthStub(ch)
        r = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        print("health Check:", health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))
        w = health.Watch(health_pb2.HealthCheckRequest(), timeout=10)
        print("health Watch, first message:",
              health_pb2.HealthCheckResponse.ServingStatus.Name(next(w).status))
        w.cancel()
        rec = moerec_pb2_grpc.RecommenderStub(ch)
        if a.demo_dir:
            info = rec.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
            print("model %s version %s: %s, %d experts, %s gates, tasks %s" % (
                info.model, info.version, info.architecture, info.experts, info.gate,
                ", ".join("%s (weight %.1f)" % (t.name, t.weight) for t in info.tasks)))
            items, users = read_world(a.demo_dir)
            rng = random.Random(1)
            for user in users[:a.users]:
                cands, fav = candidates_for(user, items, rng)
                r = score(rec, pb, user, cands, debug=True)
                ranked = sorted(zip(cands, r.items), key=lambda p: -p[1].score)
                print("\nuser %s (age %s) likes %s — Score on %d candidates, best first:" % (
                    user["user_id"], user["age"], " and ".join(sorted(fav)), len(cands)))
                print("   %-7s %-12s %6s %6s %6s" % ("item", "genre", "score", "click", "like"))
                for it, out in ranked:
                    t = {x.task: x.value for x in out.tasks}
                    print(" %s %-7s %-12s %6.3f %6.3f %6.3f" % (
                        "*" if it["genre"] in fav else " ", it["item_id"], it["genre"],
                        out.score, t["click"], t["like"]))
                rank_us = [x for x in r.debug.timings if x.stage == "rank"][0].micros
                print("   (* = favourite genre; ranked in %d us; gate %s keeps %.0f%% of experts)" % (
                    rank_us, r.debug.gates[0].gate, 100 * r.debug.gates[0].active_fraction))
            print("\nfavourite-genre lift over 50 users: %+.3f in mean score" %
                  favourite_lift(rec, pb, items, users, 50))
        try:
            rec.Recommend(pb.RecommendRequest(user_id="u0", k=10), timeout=10)
        except grpc.RpcError as e:
            print("Recommend:", e.code().name, "-", e.details())
        st = moerec_pb2_grpc.AdminStub(ch).Stats(pb.StatsRequest(), timeout=10)
        calls = {m.method.rsplit("/", 1)[1]: m for m in st.methods if m.calls}
        print("Admin/Stats: version %s; %s" % (st.version, ", ".join(
            "%s %d calls p50 %d us" % (k, m.calls, m.p50_micros) for k, m in calls.items())))
        ch.close()


if __name__ == "__main__":
    main()
