# routing — MovieLens genre experts: routed top-p vs all experts vs one global index, recall@100 of held-out next items and cost
#
# Finds ../shared/data/movielens.csv or makes it from r-cran-dslabs
# (bench/lib/movielens_data.sh), then runs bench_routing (bench/routing.c)
# seven times: MovieLens with item pilots, with user pilots, with item
# pilots + the popularity fallback (merge NORM: popularity counts are not
# on the inner-product scale), k-means experts of the ALS vectors, BPR
# vectors (moe/bpr.h) with k-means and with genre experts, and the
# synthetic multi-domain catalogue.
# The last line is one JSON object holding the runs. Extra arguments go to
# every run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
. "$here/lib/movielens_data.sh"
movielens_csv
bench_build bench_routing
b="$MOEREC_BUILD/bench/bench_routing"
items=$("$b" --csv "$MOVIELENS" --pilots items --temperature 0.1 --max-experts 8 "$@" | tail -1)
users=$("$b" --csv "$MOVIELENS" --pilots users --temperature 0.1 --max-experts 8 "$@" | tail -1)
fallb=$("$b" --csv "$MOVIELENS" --pilots items --temperature 0.1 --max-experts 8 --fallback --merge norm "$@" | tail -1)
kmals=$("$b" --csv "$MOVIELENS" --pilots items --temperature 0.1 --max-experts 8 --experts kmeans "$@" | tail -1)
kmbpr=$("$b" --csv "$MOVIELENS" --pilots items --temperature 0.1 --max-experts 8 --embeddings bpr --experts kmeans "$@" | tail -1)
gnbpr=$("$b" --csv "$MOVIELENS" --pilots items --temperature 0.1 --max-experts 8 --embeddings bpr "$@" | tail -1)
synth=$("$b" --data synthetic --pilots items --temperature 0.1 --max-experts 6 "$@" | tail -1)
echo "{\"bench\":\"routing\",\"movielens_item_pilots\":$items,\"movielens_user_pilots\":$users,\"movielens_fallback_norm\":$fallb,\"movielens_kmeans_experts\":$kmals,\"movielens_bpr_kmeans_experts\":$kmbpr,\"movielens_bpr_genre_experts\":$gnbpr,\"synthetic\":$synth}"
