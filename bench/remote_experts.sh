#!/usr/bin/env bash
# remote_experts — Retrieve through a router with two remote experts vs the same set all local
#
# Runs bench/remote_experts.py (Debian's python3-grpcio, closed loop):
# the test world of tests/integration/moerec_world.py (four FAISS experts
# and a popularity fallback) served whole by a holder, and a router whose
# set has group_2 and group_3 remote on that holder (loopback). Times
# Retrieve on each with one and with two remote experts named (the two
# remote calls run in parallel), then the router again with the holder
# killed (the remote calls fail fast, group_0 takes the budget). One JSON
# line last.
# Usage: bench/run remote_experts [--calls N] [--k K]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build moerec
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$here/remote_experts.py" --bin "$MOEREC_BUILD/tools/moerec" \
  --proto-dir "$MOEREC_ROOT/proto" "$@"
