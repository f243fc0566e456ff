# moe_movielens — multi-task MovieLens (like = rating >= 4, love >= 4.5), time split: shared-bottom, MMoE, PLE vs XGBoost
#
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
bench_build bench_moe_movielens
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
"$build/bench/bench_moe_movielens" "$work" "$@" > "$work/moe.json"
/usr/bin/python3 "$here/moe_movielens_peer.py" xgb "$work" > "$work/xgb.json"
/usr/bin/python3 - "$work/moe.json" "$work/xgb.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); x = json.load(open(sys.argv[2]))
out = {"bench": "moe_movielens", "split": "per-user latest 20% = test", "moerec": m["models"],
       "xgboost": x["tasks"], "xgboost_version": x["xgboost_version"], "auc_minus_xgboost": {}}
for name, r in m["models"].items():
    out["auc_minus_xgboost"][name] = {t: round(r[t]["auc"] - x["tasks"][t]["auc"], 4) for t in ("like", "love")}
# inference precision (issue 10): each trained model scored in every
# precision; the largest |AUC change| per task and |score diff| over models
out["auc_change"] = {p: max(r["precision"][p]["max_abs_auc_change"] for r in m["models"].values())
                     for p in ("fp32", "bf16", "int8")}
out["max_abs_score_diff"] = {p: max(r["precision"][p]["max_abs_score_diff"] for r in m["models"].values())
                             for p in ("fp32", "bf16", "int8")}
print(json.dumps(out))
PY
