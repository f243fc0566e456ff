#!/usr/bin/env bash
# overload — Score at twice the server's capacity with max_inflight_calls vs without a bound
#
# Runs bench/overload.py (Debian's python3-grpcio, open loop, raw bytes)
# against two `moerec serve` processes with one worker thread each: one
# with max_inflight_calls = --bound (default 8), one unbounded. Reports
# accepted p50/p99, refusals, RSS start/peak/end per run and the p99
# ratio. One JSON line last.
# Usage: bench/run overload [--seconds S] [--rate X] [--bound N] [--candidates N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${MOEREC_BUILD:-$root/build-bench}
if ! cmake --build "$build" -j"$(nproc)" --target moerec > "$build/overload-build.log" 2>&1; then
  grep -E -A3 "error|Error" "$build/overload-build.log" | head -40 >&2
  echo "overload: build failed; log in $build/overload-build.log" >&2
  exit 1
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$here/overload.py" --bin "$build/tools/moerec" --proto-dir "$root/proto" "$@"
