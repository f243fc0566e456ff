#!/usr/bin/env bash
# test_cmd_train_sdim.sh — `moerec synth` + `moerec train --sdim-*` end to
# end: on synthetic long-behaviour data whose clicks depend on the users'
# histories, the MoE ranker with the SDIM extra block (joined from
# events.csv strictly before each sample) must beat the same ranker with
# ids only by a wide validation-AUC margin; bad SDIM options are clear
# errors. Usage: test_cmd_train_sdim.sh PATH/TO/moerec
set -euo pipefail
moerec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$moerec" synth --help | grep -q -- "--out" || fail "synth --help"
"$moerec" train --help | grep -q -- "--sdim-events" || fail "train --help lacks --sdim-events"
"$moerec" synth --out "$dir" --users 500 --len 400 --items 4000 --clusters 40 --quiet
head -1 "$dir/samples.csv" | grep -q "user_id,item_id,ts_ms,label" || fail "samples.csv header"

cat > "$dir/model.json" <<'JSON'
{"tables": [{"name": "user", "rows": 1024, "dim": 8}, {"name": "item", "rows": 8192, "dim": 8}],
 "features": {"categorical": [{"name": "user", "column": "user_id", "table": "user"},
                              {"name": "item", "column": "item_id", "table": "item"}],
              "extra_dim": 64},
 "tasks": [{"name": "click", "label": "label"}],
 "arch": {"type": "mmoe", "experts": 3, "expert_hidden": [64], "tower_hidden": [16]},
 "train": {"epochs": 8, "batch": 128, "lr": 0.002, "patience": 3}}
JSON
auc() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["tasks"]["click"]["auc"])'; }
base=$("$moerec" train --model-json "$dir/model.json" --data "$dir/samples.csv" --out "$dir/m" --quiet | auc)
sdim=$("$moerec" train --model-json "$dir/model.json" --data "$dir/samples.csv" --out "$dir/m" --quiet \
       --sdim-events "$dir/events.csv" --sdim-items "$dir/items.csv" --sdim-params 48,3,23834,1024,50 | auc)
echo "validation AUC: ids only $base, with SDIM $sdim"
/usr/bin/python3 -c "import sys; b, s = $base, $sdim; sys.exit(0 if s > 0.7 and s > b + 0.1 else 1)" \
  || fail "SDIM block did not help: $base -> $sdim"

# Errors: items file missing, a bad parameter list, extra_dim not 2 d.
if "$moerec" train --model-json "$dir/model.json" --data "$dir/samples.csv" --out "$dir/m" --quiet \
     --sdim-events "$dir/events.csv" 2>"$dir/err"; then fail "accepted --sdim-events alone"; fi
grep -q "item-vectors" "$dir/err" || fail "no message for a missing items file: $(cat "$dir/err")"
set +e
"$moerec" train --model-json "$dir/model.json" --data "$dir/samples.csv" --out "$dir/m" \
  --sdim-params 48,3 2>"$dir/err"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q -- "--sdim-params" "$dir/err" || fail "bad --sdim-params: rc $rc $(cat "$dir/err")"
sed 's/"extra_dim": 64/"extra_dim": 10/' "$dir/model.json" > "$dir/model10.json"
if "$moerec" train --model-json "$dir/model10.json" --data "$dir/samples.csv" --out "$dir/m" --quiet \
     --sdim-events "$dir/events.csv" --sdim-items "$dir/items.csv" 2>"$dir/err"; then fail "accepted extra_dim 10"; fi
grep -q "extra_dim" "$dir/err" || fail "extra_dim mismatch message: $(cat "$dir/err")"
echo "ok"
