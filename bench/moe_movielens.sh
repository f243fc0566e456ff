# moe_movielens — multi-task MovieLens (like = rating >= 4, love >= 4.5), time split: shared-bottom, MMoE, PLE vs XGBoost
#
# Two feature sets, both sides alike: "raw" (ids, genres, year; XGBoost gets
# the ids as categoricals) and "features" (the counting features of
# `moerec index features`, out-of-fold on training rows, from all training
# rows for test rows, computed once in this run and read by both sides;
# XGBoost gets them with year and genres, as a CTR team would feed it).
# Seeds 1..$MOE_ML_SEEDS (3) for the features set, seed 1 for raw.
# Data: $MOEREC_ROOT/../shared/data/movielens.csv when present, otherwise
# made from Debian's r-cran-dslabs (shared/data/README.md). Split: each
# user's latest 20% of ratings are the test set. moerec (bench_moe_movielens)
# and XGBoost (python3-xgboost, installed with apt-get when missing: a
# bench-only dependency) train on the same features; one JSON line with test
# AUC/logloss per task and the AUC differences vs XGBoost.
# Usage: bench/run moe_movielens [--epochs N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_moe_movielens moerec
root=$MOEREC_ROOT
build=$MOEREC_BUILD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
"$build/tools/moerec" index features --log "$work/train.csv" --out "$work/train_feat.csv" \
  --apply "$work/test.csv" --apply-out "$work/test_feat.csv" --user-column userId --item-column movieId \
  --time-column timestamp --category-column genres --task like:rating\>=4 --task love:rating\>=4.5 \
  --task rating:rating --mode oof --folds 5 --seed 1 --prior-strength 10 > "$work/features.json"
"$build/bench/bench_moe_movielens" "$work" "$@" > "$work/moe-raw.json"
/usr/bin/python3 "$here/moe_movielens_peer.py" xgb "$work" > "$work/xgb-raw.json"
for seed in $(seq 1 "${MOE_ML_SEEDS:-3}"); do
  "$build/bench/bench_moe_movielens" "$work" --features --seed "$seed" "$@" > "$work/moe-feat-$seed.json"
  /usr/bin/python3 "$here/moe_movielens_peer.py" xgb "$work" --features --seed "$seed" > "$work/xgb-feat-$seed.json"
done
/usr/bin/python3 - "$work" "${MOE_ML_SEEDS:-3}" <<'PY'
import json, sys
w, nseeds = sys.argv[1], int(sys.argv[2])
ld = lambda n: json.load(open("%s/%s.json" % (w, n)))
feat = json.load(open(w + "/features.json"))
m, x = ld("moe-raw"), ld("xgb-raw")
out = {"bench": "moe_movielens", "split": "per-user latest 20% = test", "features": {"columns": feat["columns"], "mode": feat["mode"]},
       "raw": {"moerec": m["models"], "xgboost": x["tasks"], "auc_minus_xgboost": {}}, "with_features": {}}
for name, r in m["models"].items():
    out["raw"]["auc_minus_xgboost"][name] = {t: round(r[t]["auc"] - x["tasks"][t]["auc"], 4) for t in ("like", "love")}
# inference precision (issue 10): each trained model scored in every
# precision; the largest |AUC change| per task and |score diff| over models
out["raw"]["auc_change"] = {p: max(r["precision"][p]["max_abs_auc_change"] for r in m["models"].values())
                     for p in ("fp32", "bf16", "int8")}
out["raw"]["max_abs_score_diff"] = {p: max(r["precision"][p]["max_abs_score_diff"] for r in m["models"].values())
                             for p in ("fp32", "bf16", "int8")}
for s in range(1, nseeds + 1):
    m, x = ld("moe-feat-%d" % s), ld("xgb-feat-%d" % s)
    out["with_features"]["seed%d" % s] = {"moerec": m["models"], "xgboost": x["tasks"], "auc_minus_xgboost": {
        name: {t: round(r[t]["auc"] - x["tasks"][t]["auc"], 4) for t in ("like", "love")} for name, r in m["models"].items()}}
out["xgboost_version"] = x["xgboost_version"]
print(json.dumps(out))
PY
