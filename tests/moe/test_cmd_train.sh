#!/usr/bin/env bash
# test_cmd_train.sh — `moerec train` end to end: --help, a small generated
# CSV (quoted multi-valued field, a time column), training with a time
# split, the JSON metrics line on stdout, the version directory it writes
# (a second run writes version 2), and clear errors for a missing column
# and an unknown option. Usage: test_cmd_train.sh PATH/TO/moerec
set -euo pipefail
moerec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$moerec" train --help | grep -q -- "--model-json" || fail "--help"

# 2000 rows: click = (item id is even), like = (price > 0.5); genres quoted
/usr/bin/python3 - "$dir/data.csv" <<'PY'
import random, sys
random.seed(3)
with open(sys.argv[1], "w") as f:
    f.write("user,item,genres,price,click,like,ts\n")
    for i in range(2000):
        item = random.randrange(40)
        price = random.random()
        g = '"a|b"' if item % 3 == 0 else "c"
        f.write("u%d,i%d,%s,%.3f,%d,%d,%d\n" % (random.randrange(50), item, g, price, item % 2 == 0, price > 0.5, i))
PY
cat > "$dir/model.json" <<'JSON'
{"tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 128, "dim": 8},
            {"name": "genre", "rows": 16, "dim": 4}],
 "features": {"categorical": [{"name": "user", "table": "user"}, {"name": "item", "table": "item"},
                              {"name": "genres", "table": "genre", "separator": "|", "combiner": "mean"}],
              "numeric": [{"name": "price"}]},
 "tasks": [{"name": "click"}, {"name": "like"}],
 "arch": {"type": "mmoe", "experts": 3, "expert_hidden": [16], "tower_hidden": [8],
          "gate": {"type": "topk", "k": 2}},
 "train": {"epochs": 6, "batch": 64, "lr": 0.01, "emb_lr": 0.05, "patience": 6}}
JSON
out=$("$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --out "$dir/models" \
      --split time --time-column ts --quiet)
echo "$out"
/usr/bin/python3 - "$out" <<'PY' || fail "metrics"
import json, sys
r = json.loads(sys.argv[1])
assert r["train_rows"] == 1800 and r["val_rows"] == 200, r
assert r["tasks"]["click"]["auc"] > 0.9 and r["tasks"]["like"]["auc"] > 0.9, r["tasks"]
assert 0 < r["active_expert_fraction"] <= 1, r
assert r["model_dir"].endswith("/models/1")
PY
[ -s "$dir/models/1/weights.safetensors" ] && [ -s "$dir/models/1/model.json" ] || fail "model files"
grep -q '"train"' "$dir/models/1/model.json" || fail "train section kept"
"$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --out "$dir/models" --epochs 1 --quiet \
  --init "$dir/models/1" | grep -q '/models/2"' || fail "second version / --init"

# train.seed in model.json seeds the initialisation exactly as --seed does
sed 's/"patience": 6}/"patience": 6, "seed": 7}/' "$dir/model.json" > "$dir/model_s7.json"
"$moerec" train --model-json "$dir/model_s7.json" --data "$dir/data.csv" --out "$dir/s7a" --epochs 1 --quiet \
  --threads 1 > /dev/null
"$moerec" train --model-json "$dir/model_s7.json" --data "$dir/data.csv" --out "$dir/s7b" --epochs 1 --quiet \
  --threads 1 --seed 7 > /dev/null
"$moerec" train --model-json "$dir/model_s7.json" --data "$dir/data.csv" --out "$dir/s1" --epochs 1 --quiet \
  --threads 1 --seed 1 > /dev/null
cmp -s "$dir/s7a/1/weights.safetensors" "$dir/s7b/1/weights.safetensors" || fail "train.seed 7 != --seed 7"
cmp -s "$dir/s7a/1/weights.safetensors" "$dir/s1/1/weights.safetensors" && fail "--seed 1 == train.seed 7"

# a mistyped train option is refused, not silently replaced by a default
sed 's/"patience": 6}/"patience": 6, "emb_opt": "sgd"}/' "$dir/model.json" > "$dir/model_sgd.json"
if "$moerec" train --model-json "$dir/model_sgd.json" --data "$dir/data.csv" --out "$dir/bad" --quiet 2> "$dir/err"; then
  fail "train.emb_opt sgd accepted"
fi
grep -q "train.emb_opt 'sgd'" "$dir/err" || fail "emb_opt message: $(cat "$dir/err")"
sed 's/"epochs": 6/"epochs": "6"/' "$dir/model.json" > "$dir/model_str.json"
if "$moerec" train --model-json "$dir/model_str.json" --data "$dir/data.csv" --out "$dir/bad" --quiet 2> "$dir/err"; then
  fail "train.epochs as a string accepted"
fi
grep -q "train.epochs must be a number" "$dir/err" || fail "epochs message: $(cat "$dir/err")"
# train values get their flags' ranges (a negative thread count or a
# fractional seed was accepted from model.json, refused as a flag)
for kv in '"threads": -3|train.threads: -3 is not an integer in [0, 4096]' \
          '"seed": 1.7|train.seed: 1.7 is not an integer' \
          '"patience": -1|train.patience: -1 is not an integer in [0, 1e+06]'; do
  sed "s/\"patience\": 6}/\"patience\": 6, ${kv%%|*}}/" "$dir/model.json" > "$dir/model_rng.json"
  if "$moerec" train --model-json "$dir/model_rng.json" --data "$dir/data.csv" --out "$dir/bad" --quiet 2> "$dir/err"; then
    fail "train ${kv%%|*} accepted"
  fi
  grep -qF -- "${kv#*|}" "$dir/err" || fail "range message for ${kv%%|*}: $(cat "$dir/err")"
done

sed 's/"experts": 3/"experts": 4/' "$dir/model.json" > "$dir/model4.json"
if "$moerec" train --model-json "$dir/model4.json" --data "$dir/data.csv" --out "$dir/models" --epochs 1 \
     --quiet --init "$dir/models/1" 2> "$dir/err"; then
  fail "--init with another architecture accepted"
fi
grep -q "does not match" "$dir/err" || fail "--init mismatch message: $(cat "$dir/err")"

sed 's/^user,/usr,/' "$dir/data.csv" > "$dir/bad.csv"
if "$moerec" train --model-json "$dir/model.json" --data "$dir/bad.csv" --out "$dir/m2" 2> "$dir/err"; then
  fail "missing column accepted"
fi
grep -q "no column 'user'" "$dir/err" || fail "missing column message: $(cat "$dir/err")"
set +e
"$moerec" train --bogus 2> "$dir/err"
rc=$?
set -e
[ $rc -eq 2 ] && grep -q "unknown option '--bogus'" "$dir/err" || fail "unknown option"
# --val-frac 0: no validation rows, so metrics are null, not 0.0 (issue 13)
out0=$("$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --out "$dir/m0" --val-frac 0 \
       --epochs 1 --quiet)
/usr/bin/python3 - "$out0" <<'PY' || fail "--val-frac 0 metrics: $out0"
import json, sys
j = json.loads(sys.argv[1])
assert j["val_rows"] == 0 and j["val_loss"] is None, j
assert all(t["auc"] is None and t["logloss"] is None and t["count"] == 0 for t in j["tasks"].values()), j
PY
# --val-data: every --data row trains, the other file validates (issue 13)
head -n 1501 "$dir/data.csv" > "$dir/tr.csv"
{ head -n 1 "$dir/data.csv"; tail -n 500 "$dir/data.csv"; } > "$dir/va.csv"
outv=$("$moerec" train --model-json "$dir/model.json" --data "$dir/tr.csv" --val-data "$dir/va.csv" \
       --out "$dir/mv" --epochs 1 --quiet)
/usr/bin/python3 -c "import json,sys; j=json.loads(sys.argv[1]); assert j['train_rows']==1500 and j['val_rows']==500 and j['tasks']['click']['count']==500, j" "$outv" ||
  fail "--val-data: $outv"
# --split user-time: each user's latest 20% (at least 1) by time validate
outu=$("$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --split user-time \
       --user-column user --time-column ts --val-frac 0.2 --out "$dir/mu" --epochs 1 --quiet)
/usr/bin/python3 - "$dir/data.csv" "$outu" <<'PY' || fail "--split user-time: $outu"
import collections, csv, json, sys
cnt = collections.Counter(r["user"] for r in csv.DictReader(open(sys.argv[1])))
want = sum(max(1, int(0.2 * c)) for c in cnt.values() if c >= 2)  # times are distinct: no ties
j = json.loads(sys.argv[2])
assert j["val_rows"] == want and j["train_rows"] == 2000 - want, (j, want)
PY
if "$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --split user-time --out "$dir/mx" \
   2> "$dir/err"; then fail "--split user-time without --time-column accepted"; fi
grep -q "needs --time-column" "$dir/err" || fail "user-time message: $(cat "$dir/err")"
# a text label column is an error naming the line, not a run on nothing
sed '2s/,\([01]\),\([01]\),\([0-9]*\)$/,yes,\2,\3/' "$dir/data.csv" > "$dir/text.csv"
if "$moerec" train --model-json "$dir/model.json" --data "$dir/text.csv" --out "$dir/m3" 2> "$dir/err"; then
  fail "text label accepted"
fi
grep -q "text.csv:2: column 'click' (5): 'yes' is not a finite number (task 'click': label column 'click' is not a number; for text labels pass --label-positive click=VALUE" "$dir/err" ||
  fail "text label message: $(cat "$dir/err")"
echo "test_cmd_train: ok"
