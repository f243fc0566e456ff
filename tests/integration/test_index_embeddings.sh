#!/bin/sh
# test_index_embeddings.sh — `moerec index embeddings` end to end on a
# planted two-group log: the items and users files (header, one row per id,
# dim values), Recall@20 on held-out rows far above chance, identical files
# for 1 and 2 threads, the store's item table written (a second run with
# another dim is refused), `moerec index retrievers` reads the items file;
# usage and data errors exit 2 / 1 with a message.
# usage: test_index_embeddings.sh MOEREC_BIN
set -u
BIN=$1
T=$(mktemp -d /tmp/moerec-emb-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
/usr/bin/python3 - "$T" <<'PY'
import random, sys
random.seed(2)
d = sys.argv[1]
tr, te = open(d + "/train.csv", "w"), open(d + "/test.csv", "w")
for f in (tr, te):
    f.write("user,item\n")
for u in range(80):
    items = random.sample(range(u % 2, 100, 2), 15)  # users see items of their parity
    for k, it in enumerate(items):
        (te if k >= 12 else tr).write("u%d,%d\n" % (u, it))
PY
"$BIN" index embeddings --log "$T/train.csv" --test "$T/test.csv" --user-column user --item-column item \
    --items-out "$T/items.csv" --users-out "$T/users.csv" --dim 8 --epochs 30 --threads 1 \
    --store "$T/store" --item-table item >"$T/o1" 2>"$T/e" || fail "embeddings ($(cat "$T/e"))"
/usr/bin/python3 - "$T/o1" <<'PY' || fail "summary: $(cat "$T/o1")"
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert j["users"] == 80 and j["dim"] == 8 and j["interactions"] == 80 * 12, j
assert j["recall20"] > 0.4, j  # chance 20/88 = 0.23; knowing the group alone: about 20/38 = 0.53
PY
head -n 1 "$T/items.csv" | grep -q '^item,e0,e1,e2,e3,e4,e5,e6,e7$' || fail "items header: $(head -n 1 "$T/items.csv")"
head -n 1 "$T/users.csv" | grep -q '^user,e0,' || fail "users header"
[ "$(grep -c . "$T/users.csv")" -eq 81 ] || fail "users rows"
grep -q "epoch 30/30 loss" "$T/e" || fail "progress lines: $(cat "$T/e")"
"$BIN" index embeddings --log "$T/train.csv" --user-column user --item-column item \
    --items-out "$T/items2.csv" --dim 8 --epochs 30 --threads 2 --quiet >/dev/null 2>"$T/e" || fail "2 threads"
cmp -s "$T/items.csv" "$T/items2.csv" || fail "1 and 2 threads differ"
[ ! -s "$T/e" ] || fail "--quiet printed: $(cat "$T/e")"
"$BIN" index embeddings --log "$T/train.csv" --user-column user --item-column item --dim 4 \
    --store "$T/store" --item-table item >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "table 'item' has dim 8, the vectors 4" "$T/e" || fail "dim mismatch: $(cat "$T/e")"
"$BIN" index retrievers --items "$T/items.csv" --id-column item --out "$T/ret" --quiet >"$T/r" 2>"$T/e" ||
    fail "retrievers on the items file: $(cat "$T/e")"
"$BIN" index embeddings --log "$T/train.csv" --items-out "$T/x.csv" >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "no column 'userId'" "$T/e" || fail "missing column: $(cat "$T/e")"
"$BIN" index embeddings --log "$T/train.csv" --items-out "$T/x.csv" --dim abc >/dev/null 2>"$T/e"
[ $? -eq 2 ] || fail "bad --dim"
"$BIN" index embeddings --help | grep -q "BPR" || fail "--help"
[ $FAILS -eq 0 ] && echo "test_index_embeddings: ok" || exit 1
