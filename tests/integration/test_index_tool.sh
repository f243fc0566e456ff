#!/bin/sh
# test_index_tool.sh — end to end: `moerec synth` (small) -> `moerec index
# retrievers` (per-cluster FAISS experts, popularity fallback, MinHash) ->
# the set directory and JSON summary; a rebuild replaces the set; `moerec
# index graphhash` on the synth events (deterministic per seed); usage and
# data errors exit 2 / 1 with a message.
# usage: test_index_tool.sh MOEREC_BIN
set -u
BIN=$1
T=$(mktemp -d /tmp/moerec-indextool-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# json FILE EXPR: evaluate a Python expression over the last stdout line (j).
json() { /usr/bin/python3 -c "import json,sys; j=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print($2)" "$1"; }
check() { [ "$(json "$1" "$2")" = "True" ] || fail "$1: $2 (got: $(tail -n 1 "$1"))"; }

"$BIN" synth --out "$T/d" --users 120 --len 60 --items 1500 --clusters 6 --dim 8 --quiet ||
    { echo "FAIL: synth"; exit 1; }

# 1. retrievers: 6 cluster experts + cooc + popular, into a folder whose parent is absent
OUT=$T/models/m/1/retrievers
"$BIN" index retrievers --items "$T/d/items.csv" --out "$OUT" --expert-column cluster \
    --events "$T/d/events.csv" --popularity --minhash --pilots 4 --top-p 0.7 --merge rrf \
    >"$T/r1.out" 2>"$T/r1.err"
rc=$?
[ $rc -eq 0 ] || fail "index retrievers exit $rc ($(cat "$T/r1.err"))"
check "$T/r1.out" "len(j['experts']) == 8 and j['items'] == 1500 and j['dim'] == 8"
check "$T/r1.out" "sum(x['items'] for x in j['experts'] if x['kind'] == 'faiss') == 1500"
check "$T/r1.out" "j['fallback'] == 'popular' and j['events'] == 120 * 60 and j['merge'] == 'rrf'"
check "$T/r1.out" "all(x['pilots'] == 4 for x in j['experts'] if x['kind'] == 'faiss')"
check "$T/r1.out" "j['verify_candidates'] == 10 and abs(j['top_p'] - 0.7) < 1e-6"
for f in retrievers.json router.bin cluster_0.faiss cluster_0.faiss.meta cluster_5.faiss \
         popular.pop cooc.minhash; do
    [ -s "$OUT/$f" ] || fail "missing $OUT/$f"
done
ls "$T/models/m/1" | grep -q tmp && fail "temporary folder left in $T/models/m/1"
grep -q '"format": "moerec-retrievers"' "$OUT/retrievers.json" || fail "manifest format"
grep -q 'read items' "$T/r1.err" || fail "no progress line on stderr"

# 2. rebuilding replaces the set: one "all" expert, L2, old expert files gone
"$BIN" index retrievers --items "$T/d/items.csv" --out "$OUT" --metric l2 --quiet >"$T/r2.out" ||
    fail "index retrievers (all) exit $?"
check "$T/r2.out" "[x['name'] for x in j['experts']] == ['all'] and j['metric'] == 'l2'"
[ -e "$OUT/cluster_0.faiss" ] && fail "old expert file survived the rebuild"
grep -q '"metric": "l2"' "$OUT/retrievers.json" || fail "manifest metric"

# 3. graphhash on the synth events, twice with one seed: identical files
"$BIN" index graphhash --interactions "$T/d/events.csv" --out "$T/gh1.bin" --seed 3 \
    >"$T/g1.out" 2>"$T/g1.err" || fail "index graphhash exit $? ($(cat "$T/g1.err"))"
check "$T/g1.out" "j['users'] == 120 and j['items'] > 0 and j['edges'] <= 120 * 60"
check "$T/g1.out" "len(j['levels']) >= 1 and 0 < j['modularity'] <= 1"
check "$T/g1.out" "j['user_rows'] >= 1 and j['item_rows'] >= 1 and j['communities'] >= 2"
grep -q "louvain level 0: modularity" "$T/g1.err" || fail "no per-level modularity on stderr"
[ "$(head -c 7 "$T/gh1.bin")" = "MRGHASH" ] || fail "mappings file magic"
"$BIN" index graphhash --interactions "$T/d/events.csv" --out "$T/gh2.bin" --seed 3 --quiet \
    >/dev/null || fail "index graphhash (2) exit $?"
cmp -s "$T/gh1.bin" "$T/gh2.bin" || fail "graphhash not deterministic for one seed"

# 4. errors: usage -> 2, bad data -> 1, each with a message
expect() {  # expect CODE NEEDLE ARGS...
    code=$1 needle=$2
    shift 2
    "$BIN" "$@" >"$T/e.out" 2>"$T/e.err"
    rc=$?
    [ $rc -eq "$code" ] || fail "$* exited $rc, expected $code"
    grep -q -- "$needle" "$T/e.err" || fail "$*: '$needle' not in: $(cat "$T/e.err")"
}
expect 2 "required" index retrievers --items "$T/d/items.csv"
expect 2 "unknown option" index retrievers --items x --out y --shards 3
expect 2 "--merge" index retrievers --items x --out y --merge max
expect 2 "--events" index retrievers --items x --out y --popularity
expect 2 "unknown target" index bogus
expect 1 "nope.csv" index retrievers --items "$T/nope.csv" --out "$T/x"
expect 1 "no column 'genre'" index retrievers --items "$T/d/items.csv" --out "$T/x" --expert-column genre
expect 1 "no column 'user_id'" index graphhash --interactions "$T/d/items.csv" --out "$T/x.bin"
expect 1 "Number of training points" index retrievers --items "$T/d/items.csv" --out "$T/x" \
    --expert-column cluster --factory IVF1024,Flat --quiet
[ -e "$T/x" ] && fail "a failed build left $T/x"
expect 1 "not a retriever set" index retrievers --items "$T/d/items.csv" --out "$T/d" --quiet
[ -s "$T/d/items.csv" ] || fail "--out on a data folder removed its files"
printf 'item_id,e0,e1\n1,0.5,zz\n' >"$T/bad.csv"
expect 1 "bad.csv:2" index retrievers --items "$T/bad.csv" --out "$T/x"
"$BIN" index retrievers --help | grep -q "usage: moerec index retrievers" || fail "--help"
"$BIN" index graphhash --help | grep -q "usage: moerec index graphhash" || fail "--help"

[ $FAILS -eq 0 ] && echo "test_index_tool: all checks passed"
exit $((FAILS > 0))
