#!/usr/bin/env python3
"""demo_client.py — call a running moerec server through the Python client package.

Needs moerec_client (clients/python; scripts/demo.sh installs it into a
venv, docs/python-client.md says how). With --demo-dir (the folder
`moerec demo-data` wrote) it loads the catalogue into the server
(UpsertItems: item vectors + features), replays the demo users' clicks
(AppendEvents), asks Recommend for each demo user's top 10 and shows that
their favourite genres dominate, shows a cold user getting the popularity
fallback, ranks hand-picked candidates through Score, shows what the
SDIM long-behaviour block contributed (one user's scores before and after
their clicks are replayed) and the GraphHash table's rows and collision
statistics (GetModelInfo); it always calls
health Check/Watch, GetModelInfo and Admin/Stats. Used by scripts/demo.sh
and by tests/integration/test_demo.py.
"""
import argparse
import csv
import os
import random

from moerec_client import Client


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


def score(client, user, cands, debug=False):
    return client.score(user["user_id"], [
        (it["item_id"], {"genre": it["genre"], "price": float(it["price"])}) for it in cands],
        user_features={"age": float(user["age"])}, debug=debug,
        request_id="demo-" + user["user_id"])


def load_catalogue(client, demo_dir, batch=500):
    """UpsertItems every item: its vector and its features (genre, price)."""
    items = {i["item_id"]: i for i in read_world(demo_dir)[0]}
    with open(os.path.join(demo_dir, "item_vectors.csv")) as f:
        rows = list(csv.DictReader(f))
    dims = [k for k in rows[0] if k.startswith("e")]
    for s in range(0, len(rows), batch):
        client.upsert_items([{
            "item_id": r["item_id"], "embedding": [float(r[k]) for k in dims],
            "features": {"genre": r["genre"], "price": float(items[r["item_id"]]["price"])}}
            for r in rows[s:s + batch]], timeout=30)
    return len(rows)


def clicked(demo_dir, users):
    """user_id -> set of item_ids the user clicked (events.csv)."""
    want = {u["user_id"] for u in users}
    out = {u: set() for u in want}
    with open(os.path.join(demo_dir, "events.csv")) as f:
        for r in csv.DictReader(f):
            if r["user_id"] in want:
                out[r["user_id"]].add(r["item_id"])
    return out


def replay_events(client, demo_dir, users):
    """AppendEvents: every click of the given users, in time order."""
    want = {u["user_id"] for u in users}
    batch, n = [], 0
    with open(os.path.join(demo_dir, "events.csv")) as f:
        for r in csv.DictReader(f):
            if r["user_id"] in want:
                batch.append((r["user_id"], r["item_id"], int(r["ts_ms"]), "click"))
                n += 1
                if len(batch) == 5000:
                    client.append_events(batch, timeout=30)
                    batch = []
    if batch:
        client.append_events(batch, timeout=30)
    return n


def replay_with_sdim(client, demo_dir, items, users, seed=1):
    """replay_events, with one user's hand-picked candidates scored before
    (no stored events: the SDIM long-behaviour block is zero) and after
    (the block reads the user's replayed history). Returns (events
    replayed, user, candidates, Score before, Score after); with a model
    without the block both answers are equal and behaviour_length is 0."""
    user = users[0]
    cands, _ = candidates_for(user, items, random.Random(seed))
    before = score(client, user, cands, debug=True)
    n = replay_events(client, demo_dir, users)
    return n, user, cands, before, score(client, user, cands, debug=True)


def show_sdim(user, cands, before, after):
    fav = set(user["favourite_genres"].split("|"))
    n0, n1 = before.debug.behaviour_length, after.debug.behaviour_length
    if n1 == 0:
        print("\nSDIM: this model has no long-behaviour block (model_sdim.json has one)")
        return
    print("\nSDIM long-behaviour block, user %s (likes %s): %d stored events before the replay, "
          "%d after" % (user["user_id"], " and ".join(sorted(fav)), n0, n1))
    print("   %-7s %-12s %9s %9s %7s" % ("item", "genre", "without", "with", "change"))
    rows = sorted(zip(cands, before.items, after.items), key=lambda p: -p[2].score)
    for it, b, w in rows:
        print(" %s %-7s %-12s %9.3f %9.3f %+7.3f" % ("*" if it["genre"] in fav else " ",
                                                    it["item_id"], it["genre"], b.score, w.score,
                                                    w.score - b.score))

    def lift(resp):
        f = [x.score for it, x in zip(cands, resp.items) if it["genre"] in fav]
        o = [x.score for it, x in zip(cands, resp.items) if it["genre"] not in fav]
        return sum(f) / len(f) - sum(o) / len(o)
    print("   favourite-genre lift in this user's scores: %+.3f without the block, %+.3f with it"
          % (lift(before), lift(after)))
    print("   (the block is SDIM's hashed long-interest vector over all %d events plus target "
          "attention over the last ones; its cost does not grow with the history)" % n1)


def mapped_tables(info):
    """GetModelInfo's tables whose rows come from a mapping (frequency,
    graph, double_graph, lsh)."""
    return [t for t in info.tables if t.mapping]


def show_tables(info):
    """The mapped embedding tables and their collision statistics, as
    GetModelInfo reports them."""
    tabs = mapped_tables(info)
    if not tabs:
        print("\nembedding tables: %s (no GraphHash or LSH table in this model; "
              "model_sdim.json has one)" % ", ".join("%s (%s, %d rows)" % (t.name, t.kind, t.rows)
                                                     for t in info.tables))
        return
    for t in tabs:
        print("\n%s table '%s' (GetModelInfo): %d rows x %d for %d mapped ids (mapping %s)"
              % ("GraphHash" if "graph" in t.kind else t.kind, t.name, t.rows, t.dim,
                 t.mapped_ids, t.mapping))
        print("   %d rows occupied; %.1f ids per occupied row on average, %d at most; %.0f%% of "
              "the ids share their row with another id" % (t.occupied_rows, t.mean_load,
                                                         t.max_load, 100 * t.shared_fraction))
        if "graph" in t.kind and t.shared_fraction > 0:
            print("   (Louvain clustered the user-item graph of the training rows, one edge per "
                  "impression, so the ids sharing a row were shown to the same users; an id "
                  "unseen when the mapping was built falls back to its hash row)")


def favourite_share(client, items, users, k=10, consumed=None):
    """Fraction of Recommend's top k in each user's favourite genres.

    consumed: a ConsumedFilter policy ("all", "last", "none") for every
    request; None keeps the server's default (which drops what the user
    already clicked, so a heavy clicker's favourites run out)."""
    genre = {i["item_id"]: i["genre"] for i in items}
    hit = total = 0
    for u in users:
        fav = set(u["favourite_genres"].split("|"))
        r = client.recommend(u["user_id"], k=k, consumed_filter=consumed)
        hit += sum(genre[x.item_id] in fav for x in r.items)
        total += len(r.items)
    return hit / total


def favourite_lift(client, items, users, n_users, seed=7):
    """Mean final score of favourite-genre candidates minus the others'."""
    rng = random.Random(seed)
    fav_s, other_s = [], []
    for user in users[:n_users]:
        cands, fav = candidates_for(user, items, rng)
        r = score(client, user, cands)
        for it, out in zip(cands, r.items):
            (fav_s if it["genre"] in fav else other_s).append(out.score)
    return sum(fav_s) / len(fav_s) - sum(other_s) / len(other_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="127.0.0.1:50051",
                    help="server address; several, comma-separated, are called round robin")
    ap.add_argument("--demo-dir", help="folder written by `moerec demo-data`")
    ap.add_argument("--users", type=int, default=3, help="demo users to rank for")
    a = ap.parse_args()
    with Client(a.target) as client:
        demo(client, a)


def demo(client, a):
    print("health Check:", client.health())
    print("health Watch, first message:", next(client.watch_health(timeout=10)))
    if a.demo_dir:
        info = client.get_model_info()
        print("model %s version %s: %s, %d experts, %s gates, tasks %s" % (
            info.model, info.version, info.architecture, info.experts, info.gate,
            ", ".join("%s (weight %.1f)" % (t.name, t.weight) for t in info.tasks)))
        items, users = read_world(a.demo_dir)
        n = load_catalogue(client, a.demo_dir)
        ev, su, sc, before, after = replay_with_sdim(client, a.demo_dir, items, users[:50])
        print("UpsertItems: %d items (vectors + features); AppendEvents: %d clicks of 50 users"
              % (n, ev))
        show_sdim(su, sc, before, after)
        show_tables(info)
        genre = {i["item_id"]: i["genre"] for i in items}
        for user in users[:a.users]:
            fav = set(user["favourite_genres"].split("|"))
            r = client.recommend(user["user_id"], k=10, debug=True)
            print("\nRecommend for user %s (likes %s), top %d of %d retrieved:" % (
                user["user_id"], " and ".join(sorted(fav)), len(r.items), 200))
            print("   %-7s %-12s %6s %6s %6s  %s" % ("item", "genre", "score", "click", "like",
                                                     "retrieved by"))
            for x in r.items:
                t = {y.task: y.value for y in x.tasks}
                print(" %s %-7s %-12s %6.3f %6.3f %6.3f  %s" % (
                    "*" if genre[x.item_id] in fav else " ", x.item_id, genre[x.item_id],
                    x.score, t["click"], t["like"], ",".join(x.retrievers)))
            routed = sorted((y for y in r.debug.routes if y.selected), key=lambda y: -y.weight)
            print("   routed to: %s" % ", ".join("%s (%.2f, %d asked)" % (y.retriever, y.weight,
                                                                      y.budget) for y in routed))
            st = {y.stage: y.micros for y in r.debug.timings}
            print("   retrieve %d us, rank %d us" % (st.get("retrieve", 0), st.get("rank", 0)))
        print("\nfavourite genres in Recommend's top 10 over 50 users: %.0f%% (2 of 8 genres: "
              "25%% by chance)" % (100 * favourite_share(client, items, users[:50])))
        r = client.recommend("new-user", k=5)
        print("a user with no history gets the fallback expert: %s" % ", ".join(
            "%s (%s)" % (x.item_id, ",".join(x.retrievers)) for x in r.items))
        rng = random.Random(1)
        for user in users[:1]:
            cands, fav = candidates_for(user, items, rng)
            r = score(client, user, cands, debug=True)
            ranked = sorted(zip(cands, r.items), key=lambda p: -p[1].score)
            print("\nScore: user %s (age %s) likes %s — %d hand-picked candidates, best first:" % (
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
              favourite_lift(client, items, users, 50))
    st = client.stats()
    calls = {m.method.rsplit("/", 1)[1]: m for m in st.methods if m.calls}
    print("Admin/Stats: version %s; %s" % (st.version, ", ".join(
        "%s %d calls p50 %d us" % (k, m.calls, m.p50_micros) for k, m in calls.items())))


if __name__ == "__main__":
    main()
