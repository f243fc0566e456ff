#!/bin/sh
# test_index_embeddings_import.sh — `moerec index embeddings --import`
# (issue 13): item vectors from a .npy (float32, and float64 for users)
# with an ids file, and from a CSV (id,v0,v1,...), written as the same
# items/users files the BPR path writes (values exact: %.9g of the float);
# .npy and CSV of the same vectors give identical files; the store's item
# table is created with the vectors' dim; `moerec index retrievers` reads
# the items file; malformed .npy headers and data, id and CSV errors exit 1
# with a message and write nothing; flags that belong to training exit 2.
# usage: test_index_embeddings_import.sh MOEREC_BIN
set -u
BIN=$1
T=$(mktemp -d /tmp/moerec-embimp-XXXXXX)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
/usr/bin/python3 - "$T" <<'PY'
import numpy as np, struct, sys
d = sys.argv[1]
rng = np.random.default_rng(4)
V = rng.standard_normal((50, 6)).astype(np.float32)
U = rng.standard_normal((7, 6))                         # float64
np.save(d + "/items.npy", V)
np.save(d + "/users.npy", U)
with open(d + "/ids.csv", "w") as f:
    f.write("movieId\n" + "".join("%d\n" % (1000 + i) for i in range(50)))
with open(d + "/uids.csv", "w") as f:
    f.write("userId,name\n" + "".join("%d,x\n" % (100 + i) for i in range(7)))
with open(d + "/items_in.csv", "w") as f:                # the same vectors as CSV
    f.write("id," + ",".join("v%d" % c for c in range(6)) + "\n")
    for i in range(50):
        f.write("%d," % (1000 + i) + ",".join(repr(float(x)) for x in V[i]) + "\n")
with open(d + "/want_items.csv", "w") as f:              # what the items file must hold
    f.write("movieId," + ",".join("e%d" % c for c in range(6)) + "\n")
    for i in range(50):
        f.write("%d," % (1000 + i) + ",".join("%.9g" % float(x) for x in V[i]) + "\n")
with open(d + "/want_users.csv", "w") as f:
    f.write("userId," + ",".join("e%d" % c for c in range(6)) + "\n")
    for i in range(7):
        f.write("%d," % (100 + i) + ",".join("%.9g" % float(np.float32(x)) for x in U[i]) + "\n")
# malformed .npy files: (name, header dict or None for raw bytes, data)
def npy(name, hdr, data, major=1):
    h = hdr.encode() + b" " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + b"\n"
    with open(d + "/" + name, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<H", len(h)) + h + data)
raw = V[:2].tobytes()
npy("be.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 6), }", raw)
npy("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 6), }", raw)
npy("int.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 6), }", raw)
npy("3d.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 2), }", raw)
npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 6), }", raw)
npy("nokey.npy", "{'descr': '<f4', 'shape': (2, 6), }", raw)
npy("syntax.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 6], }", raw)
npy("nan.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 6), }",
    np.array([[1, 2, 3, 4, 5, 6], [1, 2, np.inf, 4, 5, 6]], np.float32).tobytes())
with open(d + "/ids2.csv", "w") as f:
    f.write("id\na\nb\n")
with open(d + "/dup.csv", "w") as f:
    f.write("id,v0\na,1\nb,2\na,3\n")
with open(d + "/hole.csv", "w") as f:
    f.write("id,v0,v1\na,1,2\nb,,2\n")
with open(d + "/text.csv", "w") as f:
    f.write("id,v0,v1\na,1,2\nb,x,2\n")
PY
E="$BIN index embeddings"
$E --import "$T/items.npy" --import-ids "$T/ids.csv" --import-users "$T/users.npy" \
    --import-users-ids "$T/uids.csv" --items-out "$T/items.csv" --users-out "$T/users.csv" \
    --store "$T/store" >"$T/o" 2>"$T/e" || fail "npy import ($(cat "$T/e"))"
/usr/bin/python3 -c 'import json,sys; j=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert j["items"]==50 and j["users"]==7 and j["dim"]==6, j' "$T/o" ||
    fail "summary: $(cat "$T/o")"
cmp -s "$T/items.csv" "$T/want_items.csv" || fail "items file from .npy differs from the vectors"
cmp -s "$T/users.csv" "$T/want_users.csv" || fail "users file from float64 .npy differs"
$E --import "$T/items_in.csv" --items-out "$T/items_c.csv" >/dev/null 2>"$T/e" || fail "csv import ($(cat "$T/e"))"
cmp -s "$T/items_c.csv" "$T/want_items.csv" || fail "items file from CSV differs from the .npy one"
# the store's table took dim 6: other vectors of dim 4 are refused by it
printf 'id,a,b,c,d\nz,1,2,3,4\n' > "$T/d4.csv"
$E --import "$T/d4.csv" --store "$T/store" >/dev/null 2>"$T/e"
[ $? -eq 1 ] && grep -q "table 'item' has dim 6, the vectors 4" "$T/e" || fail "store dim: $(cat "$T/e")"
"$BIN" index retrievers --items "$T/items.csv" --id-column movieId --out "$T/ret" --quiet >/dev/null 2>"$T/e" ||
    fail "retrievers on the imported items file: $(cat "$T/e")"
# malformed .npy: exit 1, a message naming the file and the fault, no output
check1() { # check1 PATTERN args...
    pat=$1
    shift
    rm -f "$T/x.csv"
    $E "$@" --items-out "$T/x.csv" >/dev/null 2>"$T/e"
    rc=$?
    [ $rc -eq 1 ] && grep -qF -- "$pat" "$T/e" && [ ! -e "$T/x.csv" ] || fail "rc $rc for $*: $(cat "$T/e") (want: $pat)"
}
check1 "be.npy: .npy dtype '>f4'" --import "$T/be.npy" --import-ids "$T/ids2.csv"
check1 "fortran.npy: .npy data in Fortran order" --import "$T/fortran.npy" --import-ids "$T/ids2.csv"
check1 "int.npy: .npy dtype '<i4'" --import "$T/int.npy" --import-ids "$T/ids2.csv"
check1 "3d.npy: .npy shape has 3 dimensions" --import "$T/3d.npy" --import-ids "$T/ids2.csv"
check1 "short.npy: .npy data is 48 bytes, shape (3, 6) of 4-byte floats needs 72" --import "$T/short.npy" --import-ids "$T/ids2.csv"
check1 "nokey.npy: .npy header lacks 'fortran_order'" --import "$T/nokey.npy" --import-ids "$T/ids2.csv"
check1 "syntax.npy: .npy header: expected '('" --import "$T/syntax.npy" --import-ids "$T/ids2.csv"
check1 "nan.npy: .npy value at row 1, column 2 is inf" --import "$T/nan.npy" --import-ids "$T/ids2.csv"
check1 "its ids need --import-ids FILE" --import "$T/items.npy"
check1 "ids2.csv: 2 ids for the matrix's 50 rows" --import "$T/items.npy" --import-ids "$T/ids2.csv"
check1 "dup.csv:4: id 'a' repeated (first on row 1)" --import "$T/dup.csv"
check1 "hole.csv:3: column 'v0' is missing" --import "$T/hole.csv"
check1 "text.csv:3: column 'v0' (2): 'x' is not a finite number" --import "$T/text.csv"
check1 "is CSV (ids in its first column): no --import-ids" --import "$T/dup.csv" --import-ids "$T/ids2.csv"
# training flags do not apply to imported vectors: usage errors
for fl in "--log $T/ids2.csv" "--epochs 3" "--dim 6" "--test $T/ids2.csv"; do
    $E --import "$T/items_in.csv" --items-out "$T/x.csv" $fl >/dev/null 2>"$T/e"
    [ $? -eq 2 ] && grep -q "does not apply to imported vectors" "$T/e" || fail "$fl with --import: $(cat "$T/e")"
done
$E --import "$T/items_in.csv" --users-out "$T/x.csv" --items-out "$T/y.csv" >/dev/null 2>"$T/e"
[ $? -eq 2 ] || fail "--users-out without --import-users"
$E --help | grep -q -- "--import-ids" || fail "--help"
[ $FAILS -eq 0 ] && echo "test_index_embeddings_import: ok" || exit 1
