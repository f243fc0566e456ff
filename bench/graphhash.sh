# graphhash — BPR-MF on MovieLens with full, random, double, frequency, GraphHash and DoubleGraphHash tables at equal k
#
# Finds ../shared/data/movielens.csv or makes it from r-cran-dslabs
# (bench/lib/movielens_data.sh), then runs bench_graphhash (bench/graphhash.c).
# Arguments are passed through (--resolution, --epochs, --seed, ...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_graphhash
. "$here/lib/movielens_data.sh"
movielens_csv
exec "$MOEREC_BUILD/bench/bench_graphhash" --csv "$MOVIELENS" "$@"
