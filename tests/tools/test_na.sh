#!/usr/bin/env bash
# test_na.sh — the --na missing-value set of the commands that read CSV
# (docs/operations.md, input files): a numeric cell spelled `null` is an
# error naming file, line and column by default; with `--na null` it is a
# missing value exactly like an empty cell — train writes the same weights
# and score the same output as for the file with those cells empty; a bad
# --na list is a usage error (exit 2) naming the flag.
# Usage: test_na.sh PATH/TO/moerec
set -euo pipefail
moerec=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 400 rows; every 7th price and every 11th label are missing: `null` in
# one file, empty in the other
/usr/bin/python3 - "$dir" <<'PY'
import random, sys
random.seed(5)
rows = []
for i in range(400):
    item = random.randrange(20)
    price = "%.3f" % random.random()
    click = str(int(item % 2 == 0))
    rows.append(["u%d" % random.randrange(30), "i%d" % item, price, click, str(i)])
for name, na in (("null.csv", "null"), ("empty.csv", "")):
    with open("%s/%s" % (sys.argv[1], name), "w") as f:
        f.write("user,item,price,click,ts\n")
        for i, r in enumerate(rows):
            r = list(r)
            if i % 7 == 3: r[2] = na
            if i % 11 == 5: r[3] = na
            f.write(",".join(r) + "\n")
PY
cat > "$dir/model.json" <<'JSON'
{"tables": [{"name": "user", "rows": 32, "dim": 4}, {"name": "item", "rows": 32, "dim": 4}],
 "features": {"categorical": [{"name": "user", "table": "user"}, {"name": "item", "table": "item"}],
              "numeric": [{"name": "price"}]},
 "tasks": [{"name": "click"}],
 "arch": {"type": "mmoe", "experts": 2, "expert_hidden": [8], "tower_hidden": [4]},
 "train": {"epochs": 2, "batch": 64, "lr": 0.01}}
JSON

# train: null is an error by default, missing with --na
if "$moerec" train --model-json "$dir/model.json" --data "$dir/null.csv" --out "$dir/m0" --quiet \
     > /dev/null 2> "$dir/err"; then fail "train read 'null' as a number"; fi
grep -q "null.csv:5: column 'price' (3): 'null' is not a finite number" "$dir/err" \
  || fail "train message: $(cat "$dir/err")"
"$moerec" train --model-json "$dir/model.json" --data "$dir/null.csv" --out "$dir/mn" --quiet --threads 1 \
  --seed 3 --na NA,null > "$dir/train_null.json"
"$moerec" train --model-json "$dir/model.json" --data "$dir/empty.csv" --out "$dir/me" --quiet --threads 1 \
  --seed 3 > "$dir/train_empty.json"
cmp -s "$dir/mn/1/weights.safetensors" "$dir/me/1/weights.safetensors" \
  || fail "train --na null and empty cells gave different weights"
grep -q '"train_rows"' "$dir/train_null.json" || fail "train summary"

# score: the same rule, and the same output as for empty cells
if "$moerec" score --model "$dir/me" --data "$dir/null.csv" --out "$dir/s0.csv" --quiet 2> "$dir/err"; then
  fail "score read 'null' as a number"
fi
grep -q "null.csv:5: column 'price' (3): 'null' is not a finite number" "$dir/err" \
  || fail "score message: $(cat "$dir/err")"
[ ! -e "$dir/s0.csv" ] || fail "score left output after an error"
"$moerec" score --model "$dir/me" --data "$dir/null.csv" --out "$dir/sn.csv" --quiet --keep user,item --na null
"$moerec" score --model "$dir/me" --data "$dir/empty.csv" --out "$dir/se.csv" --quiet --keep user,item
cmp -s "$dir/sn.csv" "$dir/se.csv" || fail "score --na null and empty cells differ"
[ "$(wc -l < "$dir/sn.csv")" -eq 401 ] || fail "score rows"

# index features: a label cell `null` is no label with --na, an error without
if "$moerec" index features --log "$dir/null.csv" --out "$dir/f0.csv" --user-column user --item-column item \
     --time-column ts --task c:click > /dev/null 2> "$dir/err"; then fail "features read 'null' as a label"; fi
grep -q "'null'" "$dir/err" || fail "features message: $(cat "$dir/err")"
"$moerec" index features --log "$dir/null.csv" --out "$dir/fn.csv" --user-column user --item-column item \
  --time-column ts --task c:click --na null > /dev/null
"$moerec" index features --log "$dir/empty.csv" --out "$dir/fe.csv" --user-column user --item-column item \
  --time-column ts --task c:click > /dev/null
# the feature columns agree (the copied input cells keep their spelling)
/usr/bin/python3 - "$dir/fn.csv" "$dir/fe.csv" <<'PY' || fail "features --na null and empty cells differ"
import csv, sys
a, b = (list(csv.reader(open(p))) for p in sys.argv[1:3])
assert a[0] == b[0] and len(a) == len(b) == 401, (a[0], len(a), len(b))
for ra, rb in zip(a[1:], b[1:]):
    assert ra[5:] == rb[5:], (ra, rb)
PY

# a bad list is a usage error naming the flag, for every command
for cmd in "train --model-json m --data d --out o" "score --model m --data d" \
           "index retrievers --items i --out o" "index graphhash --interactions i --out o" \
           "index tables --model-json m --data d --out o" "index features --log l --out o --task a:b" \
           "index embeddings --log l --items-out o"; do
  # shellcheck disable=SC2086
  if "$moerec" $cmd --na "NA,,x" > /dev/null 2> "$dir/err"; then fail "$cmd accepted --na NA,,x"; fi
  rc=0; "$moerec" $cmd --na "NA,,x" > /dev/null 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || fail "$cmd --na NA,,x exit $rc"
  grep -q -- "--na: 'NA,,x'" "$dir/err" || fail "$cmd message: $(cat "$dir/err")"
  "$moerec" $cmd --help | grep -q -- "--na LIST" || fail "$cmd --help has no --na"
done
echo "test_na: all checks passed"
