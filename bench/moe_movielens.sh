# moe_movielens — multi-task MovieLens (like = rating >= 4, love >= 4.5), time split: shared-bottom, MMoE, PLE vs XGBoost
#
# Three inputs: "raw" (ids, genres, year; XGBoost gets the ids as
# categoricals), "features" (+ the counting features of `moerec index
# features --mode oof --no-recency`: computed once in this run on the
# training rows out-of-fold, for test rows from every training row, read by
# both sides; XGBoost gets them with year and genres, no ids, as a CTR team
# would feed it) and "features + history" (moerec only: + the SDIM block
# over the user's earlier training events, item vectors from `moerec index
# embeddings` on the training log). Recency is left out: test rows read the
# training state at their own time, where an item's last training event is
# often later than the row (clipped to 0), a skew training rows never show.
# "features + history + history actions" (moerec only) adds the served
# history actions (model.json features.history_actions like, love,
# dislike; chosen on the selection split below): the short attention's
# share of liked, loved and disliked events among the user's last 50
# earlier training events, from the events file's action column (love:
# rating >= 4.5, like: >= 4, dislike: <= 2.5, else rated), as the server
# computes it from Event.action. (The offline history-label columns of earlier runs:
# bench_moe_movielens --hist-labels after moe_movielens_peer.py hist.)
# Seeds 1..$MOE_ML_SEEDS (3) for the feature sets, seed 1 for raw.
# MOE_ML_SELECT=1: the selection run. The same pipeline on the training
# rows only: each user's latest 20% of TRAINING rows play the test set
# (features, vectors and history from the earlier 80%), so a choice is
# made on a split built like the test split (the test rows' history lacks
# the user's earlier test events; random validation rows do not) without
# reading a test row. Its "test" figures are validation figures.
# Usage: bench/run moe_movielens [--epochs N]   (MOE_ML_SEEDS=N seeds, MOE_ML_SELECT=1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_moe_movielens moerec
root=$MOEREC_ROOT
build=$MOEREC_BUILD
tmp=$(mktemp -d)
work=$tmp
trap 'rm -rf "$tmp"' EXIT
src="$root/../shared/data/movielens.csv"
if [ ! -f "$src" ]; then
  echo "moe_movielens: making movielens.csv from r-cran-dslabs" >&2
  command -v Rscript >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq r-base-core r-cran-dslabs >/dev/null
  (cd "$work" && Rscript -e 'e<-new.env();lazyLoad("/usr/lib/R/site-library/dslabs/data/Rdata",envir=e);write.csv(e$movielens,"movielens.csv",row.names=FALSE)')
  src="$work/movielens.csv"
fi
if ! /usr/bin/python3 -c 'import xgboost' 2>/dev/null; then
  echo "moe_movielens: installing python3-xgboost (bench-only)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-xgboost >/dev/null
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2
/usr/bin/python3 "$here/moe_movielens_peer.py" prep "$src" "$work"
split="per-user latest 20% = test"
if [ "${MOE_ML_SELECT:-0}" = 1 ]; then # selection: split the training rows again, drop the test rows
  mkdir "$work/sel"
  /usr/bin/python3 "$here/moe_movielens_peer.py" prep "$work/train.csv" "$work/sel"
  rm "$work/train.csv" "$work/test.csv"
  work=$work/sel
  split="selection: per-user latest 20% of the training rows = validation; no test row read"
fi
"$build/tools/moerec" index features --log "$work/train.csv" --out "$work/train_feat.csv" \
  --apply "$work/test.csv" --apply-out "$work/test_feat.csv" --user-column userId --item-column movieId \
  --time-column timestamp --category-column genres --task like:rating\>=4 --task love:rating\>=4.5 \
  --task rating:rating --mode oof --folds 5 --seed 1 --prior-strength 10 --no-recency > "$work/features.json"
"$build/tools/moerec" index embeddings --log "$work/train.csv" --test "$work/test.csv" --user-column userId \
  --item-column movieId --items-out "$work/items.csv" --dim 32 --epochs 20 --seed 1 --quiet > "$work/embeddings.json"
# the SDIM join's file layouts: events (user_id, item_id, ts_ms, action), items (item_id, e0..)
/usr/bin/python3 - "$work" <<'PY'
import csv, sys
w = sys.argv[1]
with open(w + "/train.csv", newline="") as f, open(w + "/events.csv", "w", newline="") as o:
    out = csv.writer(o)
    out.writerow(["user_id", "item_id", "ts_ms", "action"])
    for r in csv.DictReader(f):
        x = float(r["rating"])
        out.writerow([r["userId"], r["movieId"], r["timestamp"],
                      "love" if x >= 4.5 else "like" if x >= 4 else "dislike" if x <= 2.5 else "rated"])
PY
sed '1s/^movieId,/item_id,/' "$work/items.csv" > "$work/items_sdim.csv"
"$build/bench/bench_moe_movielens" "$work" "$@" > "$work/moe-raw.json"
/usr/bin/python3 "$here/moe_movielens_peer.py" xgb "$work" > "$work/xgb-raw.json"
for seed in $(seq 1 "${MOE_ML_SEEDS:-3}"); do
  "$build/bench/bench_moe_movielens" "$work" --features --seed "$seed" "$@" > "$work/moe-feat-$seed.json"
  "$build/bench/bench_moe_movielens" "$work" --features --history --seed "$seed" "$@" > "$work/moe-hist-$seed.json"
  "$build/bench/bench_moe_movielens" "$work" --features --history --hist-actions --seed "$seed" "$@" > "$work/moe-hact-$seed.json"
  /usr/bin/python3 "$here/moe_movielens_peer.py" xgb "$work" --features --seed "$seed" > "$work/xgb-feat-$seed.json"
done
/usr/bin/python3 - "$work" "${MOE_ML_SEEDS:-3}" "$split" <<'PY'
import json, sys
w, nseeds, split = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ld = lambda n: json.load(open("%s/%s.json" % (w, n)))
feat = json.load(open(w + "/features.json"))
m, x = ld("moe-raw"), ld("xgb-raw")
out = {"bench": "moe_movielens", "split": split, "features": {"columns": feat["columns"], "mode": feat["mode"]},
       "raw": {"moerec": m["models"], "xgboost": x["tasks"], "auc_minus_xgboost": {}}, "with_features": {}}
for name, r in m["models"].items():
    out["raw"]["auc_minus_xgboost"][name] = {t: round(r[t]["auc"] - x["tasks"][t]["auc"], 4) for t in ("like", "love")}
# inference precision (issue 10): each trained model scored in every
# precision; the largest |AUC change| per task and |score diff| over models
out["raw"]["auc_change"] = {p: max(r["precision"][p]["max_abs_auc_change"] for r in m["models"].values())
                     for p in ("fp32", "bf16", "int8")}
out["raw"]["max_abs_score_diff"] = {p: max(r["precision"][p]["max_abs_score_diff"] for r in m["models"].values())
                             for p in ("fp32", "bf16", "int8")}
diff = lambda models, x: {name: {t: round(r[t]["auc"] - x[t]["auc"], 4) for t in ("like", "love")}
                          for name, r in models.items()}
for s in range(1, nseeds + 1):
    mf, mh, ma, x = ld("moe-feat-%d" % s), ld("moe-hist-%d" % s), ld("moe-hact-%d" % s), ld("xgb-feat-%d" % s)
    out["with_features"]["seed%d" % s] = {"xgboost": x["tasks"], "moerec": mf["models"], "moerec_history": mh["models"],
                                          "moerec_history_actions": ma["models"],
                                          "auc_minus_xgboost": diff(mf["models"], x["tasks"]),
                                          "history_auc_minus_xgboost": diff(mh["models"], x["tasks"]),
                                          "history_actions_auc_minus_xgboost": diff(ma["models"], x["tasks"])}
emb = json.load(open(w + "/embeddings.json"))
out["embeddings"] = {"dim": emb["dim"], "recall20": round(emb["recall20"], 4)}
out["xgboost_version"] = x["xgboost_version"]
print(json.dumps(out))
PY
