#!/usr/bin/python3
"""Helper of bench/moe_movielens.sh (numpy + xgboost only).

  prep SRC OUTDIR   split MovieLens by time: each user's latest 20% of
                    ratings -> OUTDIR/test.csv, the rest -> OUTDIR/train.csv
                    (columns userId, movieId, genres, year, rating, timestamp)
  xgb OUTDIR [--features] [--seed N] [--val random|user-time]
                    XGBoost per task (like = rating >= 4, love = rating >= 4.5):
                    userId and movieId as categorical features, year,
                    multi-hot genres; with --features instead year, genres and
                    every counting-feature column of OUTDIR/train_feat.csv and
                    test_feat.csv (made by `moerec index features`, the same
                    values moerec trains on; empty = missing), as a CTR team
                    would feed it. Early stopping on a random 10% of the
                    training rows, or with --val user-time on each user's
                    latest 10% of training rows by time (ties with the
                    boundary to validation; moerec's --split user-time).
                    Prints one JSON line with test AUC and logloss per task.
  hist OUTDIR [--last N]
                    the history's labels as target-attention values (moerec's
                    history variant only): OUTDIR/train_hist.csv and
                    test_hist.csv = the _feat files plus, per row, over the
                    user's last N (50) training events strictly before the
                    row's time, attention weights a_j = softmax_j(<c, h_j> /
                    sqrt(d)) of the candidate's item vector c against the
                    events' item vectors h_j (OUTDIR/items.csv, BPR on the
                    training log) and the values sum_j a_j like_j, sum_j a_j
                    love_j, sum_j a_j (rating_j - the mean of those N
                    ratings); empty (missing) without history or vectors.
                    A row's own label is never used (only earlier events).
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
    X, y, ut = [], [], []
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
            ut.append((int(r["userId"]), int(r["timestamp"])))
    return np.array(X, dtype=np.float32), np.array(y), ut


def user_time_val(ut, frac=0.1):
    """Row indices of each user's latest floor(frac * rows) rows (>= 1 for
    two rows or more; rows tied with the boundary time too), as
    moe_dataset_split_groups."""
    by_user = {}
    for i, (u, t) in enumerate(ut):
        by_user.setdefault(u, []).append((t, i))
    va = []
    for rows in by_user.values():
        rows.sort()
        k = int(frac * len(rows))
        if k < 1 and len(rows) >= 2:
            k = 1
        if k == 0:
            continue
        cut = len(rows) - k
        while cut > 0 and rows[cut - 1][0] == rows[cut][0]:
            cut -= 1
        va.extend(i for _, i in rows[cut:])
    return np.array(sorted(va))


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


def xgb(out, feats=False, seed=1, user_val=False):
    import xgboost as xgb
    genres = set()
    with open(out + "/train.csv", newline="") as f:
        for r in csv.DictReader(f):
            genres.update(r["genres"].split("|"))
    gi = {g: i for i, g in enumerate(sorted(genres))}
    users, items = {}, {}
    suffix = "_feat" if feats else ""
    Xtr, rtr, ut = load(out + "/train%s.csv" % suffix, gi, users, items, feats)
    Xte, rte, _ = load(out + "/test%s.csv" % suffix, gi, users, items, feats)
    ftypes = ["q"] * Xtr.shape[1] if feats else ["c", "c", "q"] + ["q"] * len(gi)
    res = {"bench": "moe_movielens_xgboost", "features": feats, "seed": seed,
           "val": "user-time" if user_val else "random", "xgboost_version": xgb.__version__, "tasks": {}}
    t0 = time.time()
    for task, thr in (("like", 4.0), ("love", 4.5)):
        ytr, yte = (rtr >= thr).astype(float), (rte >= thr).astype(float)
        # validation for early stopping: a random 10% of the training rows,
        # or each user's latest 10% by time
        if user_val:
            va = user_time_val(ut)
            tr = np.setdiff1d(np.arange(len(ytr)), va)
        else:
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
        pv = bst.predict(dva, iteration_range=(0, bst.best_iteration + 1))
        res["tasks"][task] = {"auc": round(float(auc(p, yte)), 4), "logloss": round(ll, 4),
                              "val_auc": round(float(auc(pv, ytr[va])), 4),
                              "rounds": int(bst.best_iteration + 1)}
        print("xgboost %s: test auc %.4f logloss %.4f (%d rounds)" % (task, res["tasks"][task]["auc"], ll,
                                                                      bst.best_iteration + 1), file=sys.stderr)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res))


def hist(out, last=50):
    vec = {}
    with open(out + "/items.csv", newline="") as f:
        rd = csv.reader(f)
        next(rd)
        for r in rd:
            vec[r[0]] = np.array([float(x) for x in r[1:]], dtype=np.float64)
    d = len(next(iter(vec.values())))
    by_user = {}  # user -> (ts, vectors, like, love, rating) of training events with a vector, by time
    with open(out + "/train.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["movieId"] in vec:
                by_user.setdefault(r["userId"], []).append((int(r["timestamp"]), r["movieId"], float(r["rating"])))
    hu = {}
    for u, ev in by_user.items():
        ev.sort(key=lambda x: x[0])  # stable: ties keep the log order
        ts = np.array([x[0] for x in ev])
        H = np.stack([vec[x[1]] for x in ev])
        rt = np.array([x[2] for x in ev])
        hu[u] = (ts, H, (rt >= 4.0).astype(float), (rt >= 4.5).astype(float), rt)
    cols = ["h_att_like", "h_att_love", "h_att_rating"]
    for part in ("train", "test"):
        with open(out + "/%s_feat.csv" % part, newline="") as f, \
                open(out + "/%s_hist.csv" % part, "w", newline="") as g:
            rd, w = csv.reader(f), csv.writer(g)
            hdr = next(rd)
            iu, ii, it = hdr.index("userId"), hdr.index("movieId"), hdr.index("timestamp")
            w.writerow(hdr + cols)
            for r in rd:
                h, c = hu.get(r[iu]), vec.get(r[ii])
                k = int(np.searchsorted(h[0], int(r[it]), side="left")) if h is not None else 0
                if c is None or k == 0:
                    w.writerow(r + [""] * len(cols))
                    continue
                lo = max(0, k - last)
                z = h[1][lo:k] @ c / np.sqrt(d)
                a = np.exp(z - z.max())
                a /= a.sum()
                rt = h[4][lo:k]
                w.writerow(r + ["%.6g" % float(a @ h[2][lo:k]), "%.6g" % float(a @ h[3][lo:k]),
                                "%.6g" % float(a @ (rt - rt.mean()))])
    print("hist: columns %s over the last %d events" % (",".join(cols), last), file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "prep":
        prep(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "hist":
        a = sys.argv[3:]
        hist(sys.argv[2], int(a[a.index("--last") + 1]) if "--last" in a else 50)
    else:
        a = sys.argv[3:]
        xgb(sys.argv[2], "--features" in a, int(a[a.index("--seed") + 1]) if "--seed" in a else 1,
            "--val" in a and a[a.index("--val") + 1] == "user-time")
