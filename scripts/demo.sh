#!/usr/bin/env bash
# demo.sh — set up everything and run moerec's main job on its embedded default.
#
#   scripts/demo.sh          install, build, make the demo world, train, serve on
#                            127.0.0.1:50051 and call it; then serve until Ctrl-C
#   scripts/demo.sh --once   the same, but stop after the client calls
#   scripts/demo.sh --port N serve on another port (0 picks a free one)
#
# The embedded default: `moerec demo-data` writes a seeded catalogue (2,000
# items in 8 genres, with item vectors), 300 users with favourite genres and
# 150,000 impressions with clicks and likes; `moerec index tables` builds
# the GraphHash item table's mapping (Louvain clusters of the user-item
# click graph of the training rows: 2,000 items on 512 rows);
# `moerec train` fits an MMoE ranker with top-p gates, that table and the
# SDIM long-behaviour block (over each impression's earlier clicks) on it
# (half a minute); `moerec index retrievers` builds
# one FAISS expert per genre, k-means pilots and a popularity fallback
# beside the model version; `moerec serve` serves model + retrievers + a
# RocksDB store. The Python client package (clients/python, installed into
# the venv build/pyclient-venv) then loads the catalogue
# (UpsertItems), replays users' clicks (AppendEvents; one user's scores
# before and after show what the SDIM block contributed), shows the
# GraphHash table's rows and collision statistics (GetModelInfo), and asks
# Recommend: routed retrieval + MoE ranking, favourite genres on top. The
# world lives in build/demo (MOEREC_DEMO_DIR); the store is fresh on every
# run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
once=0; port=50051
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --port) port=${2:?demo.sh: --port needs a number (0 picks a free port)}; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
"$root/scripts/install-deps.sh"
build="$root/build"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target moerec >/dev/null
moerec="$build/tools/moerec"
demo=${MOEREC_DEMO_DIR:-$build/demo}
if [ ! -f "$demo/models/demo/1/retrievers/retrievers.json" ] || [ ! -f "$demo/tables/item.map" ]; then
  rm -rf "$demo"
  "$moerec" demo-data --out "$demo"
  mkdir -p "$demo/models/demo"
  # the GraphHash item table's mapping from the training rows: train below
  # validates on the latest 10% by time (--split time), and the rows are in
  # time order, so the first 90% are exactly its training rows
  rows=$(( $(wc -l < "$demo/interactions.csv") - 1 ))
  "$moerec" index tables --model-json "$demo/model_sdim.json" --data "$demo/interactions.csv" \
    --max-rows $(( rows - rows / 10 )) --out "$demo/tables" > "$demo/tables.json"
  echo "GraphHash table: $(cat "$demo/tables.json")"
  # the ranker with that table and the SDIM long-behaviour block over each
  # row's earlier clicks
  "$moerec" train --model-json "$demo/model_sdim.json" --data "$demo/interactions.csv" \
    --mappings "$demo/tables" --split time --time-column ts_ms \
    --sdim-events "$demo/events.csv" --sdim-items "$demo/item_vectors.csv" \
    --out "$demo/models/demo" --epochs 10 > "$demo/train.json"
  echo "trained: $(cat "$demo/train.json")"
  "$moerec" index retrievers --items "$demo/item_vectors.csv" --expert-column genre \
    --events "$demo/events.csv" --popularity --pilots 2 \
    --out "$demo/models/demo/1/retrievers" > "$demo/index.json"
  echo "indexed: $(cut -c1-160 "$demo/index.json")..."
fi
rm -rf "$demo/db"
out=$(mktemp -d)
"$moerec" serve --port "$port" --drain-grace 0 --model-dir "$demo/models" --data-dir "$demo/db" --item-dim 16 \
  > "$out/port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out/port" 2>/dev/null && break; sleep 0.1; done
target=$(sed -n 's/^listening on //p' "$out/port")
[ -n "$target" ] || { echo "demo: server did not start" >&2; exit 1; }
echo "moerec is serving on $target"
venv="$build/pyclient-venv"
"$root/tests/integration/install_python_client.sh" "$root" "$venv" >/dev/null
"$venv/bin/python" "$root/scripts/demo_client.py" --target "$target" --demo-dir "$demo"
if [ $once -eq 1 ]; then exit 0; fi
echo "serving until Ctrl-C (SIGTERM/SIGINT drain in-flight calls and exit 0)"
wait $pid
