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
. "$here/lib/build.sh"
bench_build moerec
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$here/overload.py" --bin "$MOEREC_BUILD/tools/moerec" \
  --proto-dir "$MOEREC_ROOT/proto" "$@"
