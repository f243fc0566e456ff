#!/usr/bin/env bash
# freshness — UpsertItems ack to Retrieve visibility, and Retrieve QPS with 1,000 upserts/s vs none
#
# Builds the demo world (moerec demo-data with 2,000 items, train, index
# retrievers: one FAISS expert per genre + popularity) in a temp dir,
# starts `moerec serve` (model, retrievers, store) on 127.0.0.1 and runs
# bench_freshness against it (see bench/freshness.c). One JSON line last.
# Usage: bench/run freshness [--seconds S] [--clients N] [--rate R] [--pool P] [--move]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
. "$here/lib/demo_serve.sh"
bench_build bench_freshness moerec
build=$MOEREC_BUILD
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
demo_serve 1 --items 2000
"$build/bench/bench_freshness" --target "$target" "$@"
