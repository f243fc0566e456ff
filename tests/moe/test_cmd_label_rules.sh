#!/usr/bin/env bash
# test_cmd_label_rules.sh — label rules of `moerec train` and `moerec score
# --auc` (issue 13): a text label column trains with --label-positive
# TASK=VALUE, a rating with --label-threshold TASK=X; without a rule a text
# label is an error naming file, line and column; bad rule specs are usage
# errors (2); the trained model.json records the rule, and `score --auc`
# applies it (or the command line's) and reports the AUC a reference
# computation gives on its own output. Usage: test_cmd_label_rules.sh moerec
set -euo pipefail
moerec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1500 rows: CARAVAN = insurance when the item id is even; rating 1..5, high for item%3==0
/usr/bin/python3 - "$dir/data.csv" <<'PY'
import random, sys
random.seed(5)
with open(sys.argv[1], "w") as f:
    f.write("user,item,price,CARAVAN,rating\n")
    for i in range(1500):
        item = random.randrange(40)
        ins = "insurance" if item % 2 == 0 else "noinsurance"
        r = random.choice([4, 5]) if item % 3 == 0 else random.choice([1, 2, 3])
        f.write("u%d,i%d,%.3f,%s,%s\n" % (random.randrange(30), item, random.random(), ins,
                                         "NA" if i % 50 == 7 else r))
PY
cat > "$dir/model.json" <<'JSON'
{"tables": [{"name": "user", "rows": 64, "dim": 4}, {"name": "item", "rows": 128, "dim": 8}],
 "features": {"categorical": [{"name": "user", "table": "user"}, {"name": "item", "table": "item"}],
              "numeric": [{"name": "price"}]},
 "tasks": [{"name": "buy", "label": "CARAVAN"}, {"name": "like", "label": "rating"}],
 "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [16], "tower_hidden": [8]},
 "train": {"epochs": 4, "batch": 64, "lr": 0.01, "emb_lr": 0.05, "patience": 4}}
JSON
expect_err() { # expect_err RC PATTERN cmd...: exit code RC and PATTERN on stderr
  local want=$1 pat=$2 rc=0
  shift 2
  "$@" > /dev/null 2> "$dir/err" || rc=$?
  [ "$rc" -eq "$want" ] || fail "rc $rc (want $want) for: $* -- $(cat "$dir/err")"
  grep -qF -- "$pat" "$dir/err" || fail "message for $*: $(cat "$dir/err") (want: $pat)"
}
T=("$moerec" train --model-json "$dir/model.json" --data "$dir/data.csv" --quiet --threads 2)
# without a rule: the text label is an error naming file, line and column (exit 1, nothing trained)
expect_err 1 "data.csv:2: column 'CARAVAN' (4): 'noinsurance' is not a finite number (task 'buy': label column 'CARAVAN' is not a number; for text labels pass --label-positive buy=VALUE" \
  "${T[@]}" --out "$dir/none" --label-threshold like=4
[ ! -e "$dir/none/1" ] || fail "a model was written without a label rule"
# a rating without a threshold on a binary task: named, with the flag to use
expect_err 1 "data.csv:2: task 'like' is binary but label is 5; pass --label-threshold like=X" \
  "${T[@]}" --out "$dir/none" --label-positive buy=insurance
# bad specs: usage errors naming the flag
expect_err 2 "--label-positive 'buy': expected TASK=VALUE" "${T[@]}" --out "$dir/x" --label-positive buy
expect_err 2 "--label-positive 'click=1': the model has no task 'click'" "${T[@]}" --out "$dir/x" --label-positive click=1
expect_err 2 "--label-threshold 'like=four': 'four' is not a finite number" "${T[@]}" --out "$dir/x" --label-threshold like=four
expect_err 2 "--label-positive 'buy=': the value is empty" "${T[@]}" --out "$dir/x" --label-positive buy=
# with both rules it trains on every labelled row (NA ratings are no label)
out=$("${T[@]}" --out "$dir/m" --label-positive buy=insurance --label-threshold like=4)
/usr/bin/python3 - "$out" <<'PY' || fail "metrics: $out"
import json, sys
j = json.loads(sys.argv[1])
assert j["train_rows"] + j["val_rows"] == 1500, j
b, l = j["tasks"]["buy"], j["tasks"]["like"]
assert b["count"] == j["val_rows"] and 0 < l["count"] < j["val_rows"], j  # 30 NA ratings are unlabelled
assert b["auc"] > 0.9 and l["auc"] > 0.9, j
assert j["train_loss"] > 0, j
PY
/usr/bin/python3 - "$dir/m/1/model.json" <<'PY' || fail "rules not recorded in the model"
import json, sys
t = {x["name"]: x for x in json.load(open(sys.argv[1]))["tasks"]}
assert t["buy"]["positive"] == "insurance" and "threshold" not in t["buy"], t
assert t["like"]["threshold"] == 4 and "positive" not in t["like"], t
PY
# score --auc with the model's recorded rules: the AUC of its own output
S=("$moerec" score --model "$dir/m" --data "$dir/data.csv" --quiet --keep CARAVAN,rating)
"${S[@]}" --auc --out "$dir/scored.csv" 2> "$dir/sum"
/usr/bin/python3 - "$dir/scored.csv" "$dir/sum" 4 <<'PY' || fail "score --auc: $(cat "$dir/sum")"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
s = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
thr = float(sys.argv[3])
def auc(p, y):  # average ranks, ties half
    o = sorted(range(len(p)), key=lambda i: p[i]); r = [0.0] * len(p); i = 0
    while i < len(o):
        j = i
        while j + 1 < len(o) and p[o[j + 1]] == p[o[i]]: j += 1
        for k in range(i, j + 1): r[o[k]] = (i + j) / 2 + 1
        i = j + 1
    npos = sum(y); nneg = len(y) - npos
    return (sum(r[i] for i in range(len(y)) if y[i]) - npos * (npos + 1) / 2) / (npos * nneg)
pb = [float(r["buy"]) for r in rows]; yb = [r["CARAVAN"] == "insurance" for r in rows]
lab = [r for r in rows if r["rating"] != "NA"]
pl = [float(r["like"]) for r in lab]; yl = [float(r["rating"]) >= thr for r in lab]
assert s["labelled"] == {"buy": 1500, "like": len(lab)}, s
assert abs(s["auc"]["buy"] - auc(pb, yb)) < 2e-6, (s, auc(pb, yb))
assert abs(s["auc"]["like"] - auc(pl, yl)) < 2e-6, (s, auc(pl, yl))
assert s["mse"] == {}, s
PY
# the command line's rule replaces the model's: like = rating >= 5
"${S[@]}" --auc --label-threshold like=5 --out "$dir/scored5.csv" 2> "$dir/sum5"
/usr/bin/python3 - "$dir/scored5.csv" "$dir/sum5" <<'PY' || fail "score --label-threshold: $(cat "$dir/sum5")"
import csv, json, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["rating"] != "NA"]
s = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
pos = [float(r["like"]) for r in rows if float(r["rating"]) >= 5]
neg = [float(r["like"]) for r in rows if float(r["rating"]) < 5]
a = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
assert abs(s["auc"]["like"] - a) < 2e-6, (s, a)
PY
# score: a text label without a rule is an error naming the column; rules need --auc; a label column must exist
mkdir -p "$dir/norule/1" && cp "$dir/m/1/weights.safetensors" "$dir/norule/1/"
/usr/bin/python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
for t in j["tasks"]: t.pop("positive", None)
json.dump(j, open(sys.argv[2], "w"))' "$dir/m/1/model.json" "$dir/norule/1/model.json"
grep -q '"positive"' "$dir/norule/1/model.json" && fail "test setup: positive rule still present"
expect_err 1 "data.csv:2: column 'CARAVAN' (4): 'noinsurance' is not a finite number (task 'buy': label column 'CARAVAN' is not a number" \
  "$moerec" score --model "$dir/norule" --data "$dir/data.csv" --quiet --auc --out "$dir/o.csv"
[ ! -e "$dir/o.csv" ] || fail "partial output left"
"$moerec" score --model "$dir/norule" --data "$dir/data.csv" --quiet --auc --label-positive buy=insurance \
  --out "$dir/o.csv" 2> /dev/null || fail "--label-positive on score"
expect_err 2 "need --auc" "$moerec" score --model "$dir/m" --data "$dir/data.csv" --label-threshold like=4
cut -d, -f1-4 "$dir/data.csv" > "$dir/nolabel.csv"
expect_err 1 "--auc: " "$moerec" score --model "$dir/m" --data "$dir/nolabel.csv" --quiet --auc --out "$dir/o2.csv"
grep -qF "has no label column 'rating' (task 'like')" "$dir/err" || fail "no label column: $(cat "$dir/err")"
"$moerec" score --model "$dir/m" --data "$dir/nolabel.csv" --quiet --out /dev/null 2> /dev/null || fail "plain score needs no labels"
echo "test_cmd_label_rules: ok"
