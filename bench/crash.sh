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
build=${MOEREC_BUILD:-$root/build-bench}
if ! cmake --build "$build" -j"$(nproc)" --target moerec > "$build/crash-build.log" 2>&1; then
  grep -E -A3 "error|Error" "$build/crash-build.log" | head -40 >&2
  echo "crash: build failed; log in $build/crash-build.log" >&2
  exit 1
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
exec /usr/bin/python3 "$root/tests/integration/test_crash_safety.py" --bench \
  --bin "$build/tools/moerec" --proto-dir "$root/proto" "$@"
