#!/usr/bin/env bash
# serve — Score and Recommend through the real gRPC server vs the same ranking in process
#
# Builds the demo world (moerec demo-data, train, index retrievers) in a
# temp dir, starts `moerec serve` with model, retrievers and a store on
# 127.0.0.1, loads the catalogue and 50 users' clicks, then runs
# bench_serve: C clients on loopback (1 and N concurrent) against the
# in-process scorer on identical requests. One JSON line last.
# Usage: bench/run serve [--seconds S] [--clients N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build bench_serve moerec
root=$MOEREC_ROOT
build=$MOEREC_BUILD
moerec="$build/tools/moerec"
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
"$moerec" demo-data --out "$dir" 2>/dev/null
"$moerec" train --model-json "$dir/model.json" --data "$dir/interactions.csv" \
  --out "$dir/models/demo" --epochs 3 --quiet > /dev/null 2>&1
"$moerec" index retrievers --items "$dir/item_vectors.csv" --expert-column genre \
  --events "$dir/events.csv" --popularity --pilots 2 --quiet \
  --out "$dir/models/demo/1/retrievers" > /dev/null 2>&1
"$moerec" serve --port 0 --log-level warn --model-dir "$dir/models" --data-dir "$dir/db" \
  --item-dim 16 > "$dir/port" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/port" 2>/dev/null && break; sleep 0.1; done
target=$(sed -n 's/^listening on //p' "$dir/port")
"$root/tests/integration/install_python_client.sh" "$root" "$build/pyclient-venv" >/dev/null
"$build/pyclient-venv/bin/python" - "$target" "$root" "$dir" <<'PY'
import sys
target, root, d = sys.argv[1:4]
sys.path.insert(0, root + "/scripts")
import demo_client
from moerec_client import Client
with Client(target) as client:
    items, users = demo_client.read_world(d)
    demo_client.load_catalogue(client, d)
    demo_client.replay_events(client, d, users[:50])
PY
"$build/bench/bench_serve" --target "$target" --model "$dir/models/demo/1" --demo "$dir" "$@"
