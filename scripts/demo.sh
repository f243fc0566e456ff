#!/usr/bin/env bash
# demo.sh — set up everything and run moerec's main job on its embedded default.
#
#   scripts/demo.sh          install, build, serve on 127.0.0.1:50051 until Ctrl-C
#   scripts/demo.sh --once   the same, but stop after the client calls
#   scripts/demo.sh --port N serve on another port (0 picks a free one)
#
# What it shows today: the gRPC server starting, and an independent client
# (Debian's python3-grpcio) calling health Check/Watch and Admin/Stats. The
# demo catalogue and model that Recommend/Score/Retrieve need arrive with
# the service issues; until then those RPCs answer UNIMPLEMENTED, and the
# client shows that too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
once=0; port=50051
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --port) port=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
"$root/scripts/install-deps.sh"
build="$root/build"
cmake -S "$root" -B "$build" >/dev/null
cmake --build "$build" -j"$(nproc)" --target moerec >/dev/null
out=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$out"' EXIT
"$build/tools/moerec" serve --port "$port" > "$out/port" &
pid=$!
for _ in $(seq 100); do grep -q listening "$out/port" 2>/dev/null && break; sleep 0.1; done
target=$(sed -n 's/^listening on //p' "$out/port")
[ -n "$target" ] || { echo "demo: server did not start" >&2; exit 1; }
echo "moerec is serving on $target"
/usr/bin/python3 "$root/scripts/demo_client.py" --target "$target" --proto-dir "$root/proto"
if [ $once -eq 1 ]; then exit 0; fi
echo "serving until Ctrl-C (SIGTERM/SIGINT drain in-flight calls and exit 0)"
wait $pid
