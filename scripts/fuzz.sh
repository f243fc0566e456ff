#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (clang, build-fuzz/) and run each one.
#
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--only 'a b'] [--fork K]
#   scripts/fuzz.sh --seeds      write the fixture-file seeds into fuzz/corpus
#   scripts/fuzz.sh --list       list the targets
#
# Each target runs N seconds (default 30), J targets at a time (default 2),
# from its committed seeds (fuzz/corpus/NAME) plus a working corpus kept in
# build-fuzz/corpus/NAME between runs. --fork K runs K libFuzzer worker
# processes per target (-fork=K). Crash inputs land in build-fuzz/crashes/.
# Prints one JSON line last: {"bench":"fuzz","seconds":N,"targets":{NAME:
# {"execs":..,"crashes":..}}}; exits 1 when any target crashed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MOEREC_FUZZ_BUILD:-$root/build-fuzz}
seconds=30 jobs=2 only= fork=0 mode=run
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --only) only=$2; shift ;;
    --fork) fork=$2; shift ;;
    --seeds) mode=seeds ;;
    --list) mode=list ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$mode" = run ] && "$root/scripts/install-deps.sh" >&2   # clang + libclang-rt among them
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DMOEREC_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ > /dev/null
fi
if ! cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" > "$build/build.log" 2>&1; then
  grep -E -A3 "error|Error" "$build/build.log" | head -40 >&2
  echo "fuzz.sh: build failed; log in $build/build.log" >&2
  exit 1
fi
targets=$(cd "$build/fuzz" && ls fuzz_* | grep -v '\.' | sed 's/^fuzz_//' | sort)
[ -n "$only" ] && targets=$only
case $mode in
  list) echo "$targets"; exit 0 ;;
  seeds)
    for t in retr_set faiss_index safetensors; do
      mkdir -p "$root/fuzz/corpus/$t"
      MOEREC_FUZZ_SEEDS_OUT="$root/fuzz/corpus/$t" "$build/fuzz/fuzz_$t" -runs=0 > /dev/null 2>&1
    done
    ls "$root"/fuzz/corpus/{retr_set,faiss_index,safetensors}; exit 0 ;;
esac
# Files the targets write go to memory when it can (5x faster than disk).
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out="$build/fuzz-run"
mkdir -p "$out" "$build/crashes"
run_one() {
  local t=$1 dict= args=()
  for d in "$root/fuzz/dict/$t.dict" "$root/fuzz/dict/${t#rpc_}.dict"; do
    [ -f "$d" ] && dict=$d && break
  done
  [ -n "$dict" ] && args+=(-dict="$dict")
  [ "$fork" -gt 0 ] && args+=(-fork="$fork" -ignore_crashes=0)
  mkdir -p "$build/corpus/$t"
  local seeds=()
  [ -d "$root/fuzz/corpus/$t" ] && seeds=("$root/fuzz/corpus/$t")
  local rc=0
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/crashes/$t-" "${args[@]}" \
    "$build/corpus/$t" "${seeds[@]}" > "$out/$t.log" 2>&1 || rc=$?
  echo "$rc" > "$out/$t.rc"
}
export -f run_one
export build root seconds fork out
# only this run's targets: another run may be writing the other logs
for t in $targets; do rm -f "$out/$t.rc" "$out/$t.log"; done
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one {}'
json='{"bench":"fuzz","seconds":'"$seconds"',"jobs":'"$jobs"',"targets":{' sep= bad=0
for t in $targets; do
  # -fork prints its own totals as "#N ... exec/s"; plain runs print stat::
  execs=$(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || true)
  [ -z "$execs" ] && execs=$(grep -o '^#[0-9]*' "$out/$t.log" | tail -1 | tr -d '#' || true)
  rc=$(cat "$out/$t.rc")
  crashes=$(ls "$build/crashes" | grep -c "^$t-" || true)
  if [ "$rc" != 0 ]; then
    bad=1
    [ "$crashes" = 0 ] && crashes=1
    echo "fuzz.sh: $t failed (rc $rc); log $out/$t.log" >&2
    grep -E -m5 "ERROR|SUMMARY|runtime error|fuzz fixture" "$out/$t.log" >&2 || true
  fi
  json+="$sep\"$t\":{\"execs\":${execs:-0},\"crashes\":$crashes}"
  sep=,
done
echo "$json}}"
exit $bad
