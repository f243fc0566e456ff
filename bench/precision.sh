# precision — the demo model's AUC and scores in every inference precision (fp32, bf16, int8 vs OpenBLAS fp32)
#
# Builds the demo world (moerec demo-data, moerec train --epochs 3) in a
# temp dir, then runs bench_precision on the trained version with the
# demo's interactions.csv: every row scored in openblas_fp32 (the training
# path, the bound), fp32, bf16 and int8. One JSON line last, with
# "auc_change" and "max_abs_score_diff" per precision. (MovieLens: the same
# figures are in bench/run moe_movielens.)
# Usage: bench/run precision
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib/build.sh"
bench_build bench_precision moerec
build=$MOEREC_BUILD
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"$build/tools/moerec" demo-data --out "$dir" > /dev/null 2>&1
"$build/tools/moerec" train --model-json "$dir/model.json" --data "$dir/interactions.csv" \
  --out "$dir/models/demo" --epochs 3 --quiet > /dev/null 2>&1
"$build/bench/bench_precision" "$dir/models/demo/1" "$dir/interactions.csv" > "$dir/p.json"
/usr/bin/python3 - "$dir/p.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["precision"]
r["auc_change"] = {k: p[k]["max_abs_auc_change"] for k in ("fp32", "bf16", "int8")}
r["max_abs_score_diff"] = {k: p[k]["max_abs_score_diff"] for k in ("fp32", "bf16", "int8")}
print(json.dumps(r))
PY
