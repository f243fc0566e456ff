#!/usr/bin/python3
"""Helper of bench/moe_movielens.sh (numpy + xgboost only).

  prep SRC OUTDIR   split MovieLens by time: each user's latest 20% of
                    ratings -> OUTDIR/test.csv, the rest -> OUTDIR/train.csv
                    (columns userId, movieId, genres, year, rating, timestamp)
  xgb OUTDIR [--features] [--seed N]
                    XGBoost per task (like = rating >= 4, love = rating >= 4.5):
                    userId and movieId as categorical features, year,
                    multi-hot genres; with --features instead year, genres and
                    every counting-feature column of OUTDIR/train_feat.csv and
                    test_feat.csv (made by `moerec index features`, the same
                    values moerec trains on; empty = missing), as a CTR team
                    would feed it. Prints one JSON line with test AUC and
                    logloss per task.
"""
import csv
import json
import sys
import time

import numpy as np


def prep(src, out):
    rows = []
    with open(src, newline="") as f:
        for r in csv.DictReader(f):
            rows.append((int(r["userId"]), int(r["timestamp"]), r["movieId"], r["genres"], r["year"], r["rating"]))
    rows.sort()
    by_user = {}
    for r in rows:
        by_user.setdefault(r[0], []).append(r)
    cols = ["userId", "movieId", "genres", "year", "rating", "timestamp"]
    ftr, fte = open(out + "/train.csv", "w", newline=""), open(out + "/test.csv", "w", newline="")
    wtr, wte = csv.writer(ftr), csv.writer(fte)
    wtr.writerow(cols)
    wte.writerow(cols)
    ntr = nte = 0
    for u, rs in by_user.items():
        cut = len(rs) - max(1, len(rs) // 5)
        for i, r in enumerate(rs):
            row = [r[0], r[2], r[3], r[4], r[5], r[1]]
            if i < cut:
                wtr.writerow(row)
                ntr += 1
            else:
                wte.writerow(row)
                nte += 1
    ftr.close()
    fte.close()
    print("prep: %d train rows, %d test rows" % (ntr, nte), file=sys.stderr)


def load(path, genres_index, users, items, feats=False):
    X, y = [], []
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        extra = rd.fieldnames[rd.fieldnames.index("timestamp") + 1:] if feats else []
        for r in rd:
            u = users.setdefault(r["userId"], len(users))
            it = items.setdefault(r["movieId"], len(items))
            g = np.zeros(len(genres_index))
            for name in r["genres"].split("|"):
                if name in genres_index:
                    g[genres_index[name]] = 1
            year = float(r["year"]) if r["year"] not in ("", "NA") else np.nan
            fx = [float(r[c]) if r[c] != "" else np.nan for c in extra]
            X.append(([year] if feats else [u, it, year]) + list(g) + fx)
            y.append(float(r["rating"]))
    return np.array(X, dtype=np.float32), np.array(y)


def auc(s, y):
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        ranks[i:j] = (i + 1 + j) / 2.0
        i = j
    npos = y.sum()
    nneg = len(y) - npos
    return (ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg)


def xgb(out, feats=False, seed=1):
    import xgboost as xgb
    genres = set()
    with open(out + "/train.csv", newline="") as f:
        for r in csv.DictReader(f):
            genres.update(r["genres"].split("|"))
    gi = {g: i for i, g in enumerate(sorted(genres))}
    users, items = {}, {}
    suffix = "_feat" if feats else ""
    Xtr, rtr = load(out + "/train%s.csv" % suffix, gi, users, items, feats)
    Xte, rte = load(out + "/test%s.csv" % suffix, gi, users, items, feats)
    ftypes = ["q"] * Xtr.shape[1] if feats else ["c", "c", "q"] + ["q"] * len(gi)
    res = {"bench": "moe_movielens_xgboost", "features": feats, "seed": seed, "xgboost_version": xgb.__version__, "tasks": {}}
    t0 = time.time()
    for task, thr in (("like", 4.0), ("love", 4.5)):
        ytr, yte = (rtr >= thr).astype(float), (rte >= thr).astype(float)
        # validation for early stopping: a random 10% of the training rows
        rng = np.random.RandomState(seed)
        perm = rng.permutation(len(ytr))
        nv = len(ytr) // 10
        va, tr = perm[:nv], perm[nv:]
        dtr = xgb.DMatrix(Xtr[tr], label=ytr[tr], feature_types=ftypes, enable_categorical=True)
        dva = xgb.DMatrix(Xtr[va], label=ytr[va], feature_types=ftypes, enable_categorical=True)
        dte = xgb.DMatrix(Xte, label=yte, feature_types=ftypes, enable_categorical=True)
        params = {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
                  "max_depth": 8, "eta": 0.1, "max_cat_to_onehot": 1, "nthread": 2, "seed": seed}
        bst = xgb.train(params, dtr, num_boost_round=500, evals=[(dva, "val")], early_stopping_rounds=20,
                        verbose_eval=False)
        p = bst.predict(dte, iteration_range=(0, bst.best_iteration + 1))
        pc = np.clip(p, 1e-7, 1 - 1e-7)
        ll = float(-np.mean(yte * np.log(pc) + (1 - yte) * np.log(1 - pc)))
        res["tasks"][task] = {"auc": round(float(auc(p, yte)), 4), "logloss": round(ll, 4),
                              "rounds": int(bst.best_iteration + 1)}
        print("xgboost %s: test auc %.4f logloss %.4f (%d rounds)" % (task, res["tasks"][task]["auc"], ll,
                                                                      bst.best_iteration + 1), file=sys.stderr)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    if sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3])
    else:
        a = sys.argv[3:]
        xgb(sys.argv[2], "--features" in a, int(a[a.index("--seed") + 1]) if "--seed" in a else 1)
