#!/bin/sh
# test_index_features.sh — `moerec index features` end to end on a small
# hand-made log: columns and names, past-mode values checked by hand (the
# row's own label and rows tied in time are never counted), the apply file
# read from every log event, a text label with COLUMN=VALUE, out-of-fold
# mode, train on the output, and usage / data errors (exit 2 / 1, message).
# usage: test_index_features.sh MOEREC_BIN
set -u
BIN=$1
T=$(mktemp -d /tmp/moerec-features-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# val FILE ROW COLUMN: a cell (ROW 1 = the first data row)
val() { /usr/bin/python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(r[int(sys.argv[2])-1][sys.argv[3]])" "$@"; }
close() { /usr/bin/python3 -c "import sys,math; sys.exit(0 if abs(float(sys.argv[1])-float(sys.argv[2]))<1e-6 else 1)" "$1" "$2" ||
    fail "$3: got $1, want $2"; }

cat > "$T/log.csv" <<'CSV'
user,item,ts,rating,kind,genres
u1,10,100,5,"buy",A|B
u1,11,100,1,"view",B
u1,10,200,4,"buy",A
u2,10,300,2,"view",C
u1,12,400,,"view",A
CSV
cat > "$T/next.csv" <<'CSV'
user,item,ts,genres
u1,10,500,A
u3,99,500,
CSV
"$BIN" index features --log "$T/log.csv" --out "$T/f.csv" --apply "$T/next.csv" --apply-out "$T/n.csv" \
    --user-column user --item-column item --time-column ts --category-column genres \
    --task like:rating\>=4 --task buy:kind=buy --prior-strength 2 >"$T/o.json" 2>"$T/e"
rc=$?
[ $rc -eq 0 ] || fail "features exit $rc ($(cat "$T/e"))"
head -n 1 "$T/f.csv" | grep -q '^user,item,ts,rating,kind,genres,u_cnt_all,u_like_rate_all,u_buy_rate_all,u_recency,i_cnt_all,' ||
    fail "header: $(head -n 1 "$T/f.csv")"
/usr/bin/python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j['rows']==5 and j['users']==2 and j['items']==3 and j['columns']==12 else 1)" "$T/o.json" ||
    fail "summary $(cat "$T/o.json")"
# rows 1 and 2 are tied at t=100: neither sees the other
close "$(val "$T/f.csv" 2 u_cnt_all)" 0 "tied row 2 count"
[ "$(val "$T/f.csv" 1 u_recency)" = "" ] || fail "first row recency should be empty"
# row 3 (u1 at 200) sees rows 1-2: count 2, like 1 of 2; prior like = (0+1)/(0+2)
# (global before t=200: 1 like of 2 -> (1+1)/(2+2) = 0.5); rate = (1 + 2*0.5)/(2 + 2) = 0.5
close "$(val "$T/f.csv" 3 u_cnt_all)" "$(/usr/bin/python3 -c 'import math; print(math.log1p(2))')" "row 3 user count"
close "$(val "$T/f.csv" 3 u_like_rate_all)" 0.5 "row 3 like rate"
close "$(val "$T/f.csv" 3 u_recency)" "$(/usr/bin/python3 -c 'import math; print(math.log1p(100))')" "row 3 recency"
# row 3's item 10 saw row 1 (buy): buy rate (1 + 2*0.5)/(1 + 2) (prior (1+1)/(2+2))
close "$(val "$T/f.csv" 3 i_buy_rate_all)" "$(/usr/bin/python3 -c 'print(2/3)')" "row 3 item buy rate"
# (user, category) of row 4: u2 never seen in C: count 0
close "$(val "$T/f.csv" 4 uc_cnt_all)" 0 "row 4 user-category count"
# row 5 has no rating: counted (count 4), but the like rate uses the 3 labelled rows of u1
close "$(val "$T/f.csv" 5 u_cnt_all)" "$(/usr/bin/python3 -c 'import math; print(math.log1p(3))')" "row 5 count"
# apply: u1 at 500 sees all 4 of its events; u3 unknown: count 0, recency empty
close "$(val "$T/n.csv" 1 u_cnt_all)" "$(/usr/bin/python3 -c 'import math; print(math.log1p(4))')" "apply count"
close "$(val "$T/n.csv" 2 u_cnt_all)" 0 "apply unknown user"
[ "$(val "$T/n.csv" 2 u_recency)" = "" ] || fail "unknown user recency should be empty"
[ "$(val "$T/n.csv" 2 user)" = "u3" ] || fail "apply rows keep their columns"

# out-of-fold: runs, same columns; decayed windows are refused there
"$BIN" index features --log "$T/log.csv" --out "$T/oof.csv" --user-column user --item-column item \
    --time-column ts --task like:rating\>=4 --mode oof --folds 2 >/dev/null 2>"$T/e" || fail "oof ($(cat "$T/e"))"
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --user-column user --item-column item \
    --time-column ts --task like:rating\>=4 --mode oof --windows all,7d >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "all-time windows" "$T/e" || fail "oof with a decay window: $(cat "$T/e")"

# a task name holding the delimiter: its columns' names are quoted like any
# cell, so the header has as many cells as the rows (it had 2 more)
"$BIN" index features --log "$T/log.csv" --out "$T/q.csv" --user-column user --item-column item \
    --time-column ts --task 'a,b:rating>=4' >/dev/null 2>"$T/e" || fail "task with a comma ($(cat "$T/e"))"
/usr/bin/python3 - "$T/q.csv" <<'PY' || fail "quoted task columns"
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
assert all(len(r) == len(rows[0]) for r in rows), [len(r) for r in rows]
assert "u_a,b_rate_all" in rows[0], rows[0]
PY

# a text label without a rule is an error naming the line
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --user-column user --item-column item \
    --time-column ts --task k:kind >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "log.csv:2: column 'kind' (5): 'buy' is not a finite number (task 'k': for text labels give COLUMN=VALUE)" "$T/e" ||
    fail "text label: $(cat "$T/e")"
# usage errors
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --task bad >/dev/null 2>"$T/e"
[ $? -eq 2 ] && grep -q "\-\-task bad" "$T/e" || fail "bad --task: $(cat "$T/e")"
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --task l:rating --windows 7x >/dev/null 2>"$T/e"
[ $? -eq 2 ] || fail "bad --windows"
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --task l:rating >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "no column 'userId'" "$T/e" || fail "missing column: $(cat "$T/e")"
[ ! -e "$T/x.csv" ] && [ -z "$(ls "$T" | grep 'x.csv.tmp')" ] || fail "a failed run left output"
"$BIN" index features --log "$T/log.csv" --out "$T/x.csv" --task l:rating --folds 1 >/dev/null 2>"$T/e"
[ $? -eq 2 ] && grep -q "\-\-folds: '1' is not an integer in \[2, 64\]" "$T/e" || fail "--folds 1: $(cat "$T/e")"

# the input rules of every file (common/csv): a TSV log with a BOM, CRLF, a
# quoted id holding a tab and an NA label; the output keeps the tab and quotes
printf '\357\273\277user\titem\tts\trating\r\n"u\t1"\t10\t100\t5\r\nu2\t10\t200\tNA\r\n"u\t1"\t10\t300\t4\r\n' > "$T/log.tsv"
"$BIN" index features --log "$T/log.tsv" --out "$T/f.tsv" --user-column user --item-column item \
    --time-column ts --task like:rating\>=4 >/dev/null 2>"$T/e" || fail "tsv log: $(cat "$T/e")"
/usr/bin/python3 - "$T/f.tsv" <<'PY' || fail "tsv output: $(cat "$T/f.tsv")"
import csv, math, sys
r = list(csv.DictReader(open(sys.argv[1], newline=""), delimiter="\t"))
assert [x["user"] for x in r] == ["u\t1", "u2", "u\t1"], r
assert r[1]["rating"] == "NA" and abs(float(r[2]["u_cnt_all"]) - math.log1p(1)) < 1e-6, r
# u2's NA row is counted but unlabelled: item 10's like rate at row 3 uses 1 labelled event
assert abs(float(r[2]["i_cnt_all"]) - math.log1p(2)) < 1e-6, r
PY
printf 'user,item,ts,rating\nu1,10,1;5,5\n' > "$T/bad.csv"
"$BIN" index features --log "$T/bad.csv" --out "$T/x.csv" --user-column user --item-column item \
    --time-column ts --task like:rating >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "bad.csv:2: column 'ts' (3): '1;5' is not a finite number" "$T/e" || fail "bad time: $(cat "$T/e")"
"$BIN" index features --help | grep -q "prior-strength" || fail "--help"

[ $FAILS -eq 0 ] && echo "test_index_features: ok" || exit 1
