#!/usr/bin/env bash
# replicas — 3 replicas fed by a 3-node JetStream log: convergence, log vs local writes, kill -9
#
# Runs bench/replicas.py (Debian's python3-grpcio) against a 3-node NATS
# JetStream cluster and three `moerec serve` replicas on loopback, and
# against one server with no log for the local-write peer. Reports
# convergence p50/p99 (ack to visible on all replicas), writes/s through
# the log vs local, Score QPS and CPU per replica, lost / applied-twice
# counts and the store digests. One JSON line last.
# Usage: bench/run replicas [--writes N] [--local-writes N] [--writers T] [--poll-ms MS] [--no-kill] [--no-request-id]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/build.sh"
bench_build moerec
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$here/replicas.py" --bin "$MOEREC_BUILD/tools/moerec" \
  --proto-dir "$MOEREC_ROOT/proto" "$@"
