# graphhash_ranker — MovieLens multi-task AUC with user and item tables at 25% of full rows: full, random hash, double, frequency, GraphHash, DoubleGraphHash, LSH
#
# Data: $MOEREC_ROOT/../shared/data/movielens.csv (as bench/moe_movielens.sh).
# Split: each user's latest 20% of ratings are the test set (per-user time
# split, moe_movielens_peer.py prep). bench_graphhash_ranker trains the same
# MMoE once per table kind; mapped tables are built from the training rows
# only. Test AUC per task on all test rows and on the "cold" test rows whose
# movie never occurs in training. The item content vectors of the lsh
# variant (multi-hot genres + scaled year) come from the movie catalogue,
# not from ratings.
# The *_balanced variants take "balance": "degree" and per-table
# resolutions (users 1, movies 20) chosen on a validation split:
# --validate replaces the test set by each user's latest 20% of their
# training rows (the same rule, applied inside train.csv) and trains on the
# rest, so settings are chosen without looking at the test rows.
# graphhash_hubs adds "hubs" (--user-hubs, default 120, chosen on the same
# validation split) to the balanced user table.
# Usage: bench/run graphhash_ranker [--validate] [--epochs N] [--seed N] [--resolution R]
#        [--variants a,b,..] [--user-graph JSON] [--item-graph JSON] [--user-hubs N]
set -euo pipefail
validate=0
if [ "${1:-}" = --validate ]; then validate=1; shift; fi
here=$(cd "$(dirname "$0")" && pwd)
root=${MOEREC_ROOT:-$(dirname "$here")}
. "$here/lib/build.sh"
bench_build bench_graphhash_ranker
build=$MOEREC_BUILD
src="$root/../shared/data/movielens.csv"
[ -f "$src" ] || { echo "graphhash_ranker: $src missing (bench/moe_movielens.sh makes it from r-cran-dslabs)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OPENBLAS_NUM_THREADS=1
/usr/bin/python3 "$here/moe_movielens_peer.py" prep "$src" "$work"
/usr/bin/python3 - "$src" "$work" "$validate" <<'PY'
import csv, sys
src, out, validate = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
if validate:  # each user's latest 20% of training rows become the test set
    with open(out + "/train.csv", newline="") as f:
        rd = csv.DictReader(f); cols = rd.fieldnames; by_user = {}
        for r in rd:
            by_user.setdefault(r["userId"], []).append(r)
    with open(out + "/train.csv", "w", newline="") as f, open(out + "/test.csv", "w", newline="") as g:
        wtr, wte = csv.DictWriter(f, cols), csv.DictWriter(g, cols)
        wtr.writeheader(); wte.writeheader()
        for u, rs in by_user.items():
            rs.sort(key=lambda r: int(r["timestamp"]))
            cut = len(rs) - max(1, len(rs) // 5)
            wtr.writerows(rs[:cut]); wte.writerows(rs[cut:])
    print("graphhash_ranker: --validate: test.csv is the validation split of train.csv", file=sys.stderr)
train_items = set()
users = set()
with open(out + "/train.csv", newline="") as f:
    for r in csv.DictReader(f):
        train_items.add(r["movieId"]); users.add(r["userId"])
with open(out + "/test.csv", newline="") as f, open(out + "/test_cold.csv", "w", newline="") as g:
    rd = csv.DictReader(f); w = csv.writer(g); w.writerow(rd.fieldnames); n = 0
    for r in rd:
        users.add(r["userId"])
        if r["movieId"] not in train_items:
            w.writerow([r[c] for c in rd.fieldnames]); n += 1
movies = {}
with open(src, newline="") as f:
    for r in csv.DictReader(f):
        movies[r["movieId"]] = (r["genres"], r["year"])
genres = sorted({g for gs, _ in movies.values() for g in gs.split("|") if g})
with open(out + "/vectors.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["movieId"] + ["g%d" % i for i in range(len(genres))] + ["year"])
    for m, (gs, y) in sorted(movies.items()):
        s = set(gs.split("|"))
        yr = (float(y) - 1990.0) / 20.0 if y not in ("", "NA") else 0.0
        w.writerow([m] + [1 if g in s else -1 for g in genres] + ["%.3f" % yr])
with open(out + "/counts", "w") as f:
    f.write("%d %d %d\n" % (len(users), len(movies), n))
print("graphhash_ranker: %d users, %d movies, %d cold test rows" % (len(users), len(movies), n), file=sys.stderr)
PY
read -r nusers nitems ncold < "$work/counts"
"$build/bench/bench_graphhash_ranker" "$work" "$nusers" "$nitems" "$@"
