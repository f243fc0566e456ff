#!/usr/bin/env bash
# crash — SIGKILL rounds through the real server; every acknowledged write read back
#
# Client threads drive AppendEvents and UpsertItems against `moerec serve`
# (model, retrievers, store), recording every acknowledged write; the
# server is SIGKILLed at a random moment in each round, restarted on the
# same data dir, and the acknowledged writes are read back through
# Retrieve (tests/integration/test_crash_safety.py; ctest runs 5 rounds).
# Usage: bench/run crash [--rounds 200] [--seed 1]
# JSON last: {"bench":"crash","rounds":..,"acked":..,"lost":..}
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib/build.sh"
bench_build moerec
build=$MOEREC_BUILD
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$root/tests/integration/test_crash_safety.py" --bench \
  --bin "$build/tools/moerec" --proto-dir "$root/proto" "$@"
